# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what verification asks the cluster and Azure.

Read-only, or without effect: a server-side dry run creates no pod, a TokenRequest stores nothing, a vault is asked
for its secrets' names or for a secret that cannot exist (never a value). The ServiceAccount token and the tokens it
is exchanged for live in memory only, for the duration of one workload's check; they are never returned, logged or
written.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._azure_client import Connection
from ._azure_errors import azure_call
from ._azure_role_assignment import read_permissions
from ._kube_client import KubeClient
from ._kube_patch import dig
from ._kube_paths import CONTROLLERS, Paths
from ._limits import DEFAULT_AUDIENCE
from ._retry import RetryPolicy

# The shortest lifetime the API server issues (it raises anything lower to 10 minutes).
TOKEN_SECONDS = 600


class KubeProbe:
    """The cluster side: the account, the pod templates, a dry-run pod, a token for the account."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.paths = Paths(client)

    def account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.client.get(Paths.service_account(namespace, name), f"read ServiceAccount {namespace}/{name}")

    def template(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.client.get(self.paths.controller(kind, namespace, name), f"read {kind} {namespace}/{name}")
        return dict(dig(found, *CONTROLLERS[kind][2]) or {}) if found is not None else None

    def dry_run(self, namespace: str, pod: dict[str, Any], what: str) -> dict[str, Any]:
        """The pod as admission (the webhook among it) would make it; nothing is stored."""
        return self.client.dry_run_create(f"/api/v1/namespaces/{namespace}/pods", pod, f"dry-run a pod of {what}")

    def token(self, namespace: str, name: str) -> str:
        """A short-lived token for the account, with the audience Entra's exchange expects (as the kubelet projects)."""
        return self.client.token(namespace, name, DEFAULT_AUDIENCE, TOKEN_SECONDS)


class ArmProbe:
    """Azure as the workload itself: ARM's permissions API, with the workload's own token."""

    def __init__(self, connection: Connection, policy: RetryPolicy) -> None:
        self.connection = connection
        self.policy = policy

    def permissions(self, credential: Any, scope: str) -> list[dict[str, Any]]:
        """What the caller may do at ``scope``: one block per role it holds there or above (actions, notActions,
        dataActions, notDataActions), every page."""
        return read_permissions(self.connection.client("authorization", credential), scope, self.policy)

    def vault_read(self, credential: Any, vault_uri: str, list_names: bool) -> tuple[int, str]:
        """One harmless read on a key vault's data plane, as the workload: its secrets' names (``list_names``), or a
        secret no one has (a 404 says the read was allowed). Returns the status and the vault's own message."""
        from azure.core import PipelineClient
        from azure.core.pipeline import policies
        from azure.core.rest import HttpRequest

        base = vault_uri.rstrip("/")
        # The vault's audience is its cloud's Key Vault domain (https://vault.azure.net for the public cloud).
        audience = "https://vault." + base.split(".vault.", 1)[1] if ".vault." in base else "https://vault.azure.net"
        client: Any = PipelineClient(
            base_url=base, policies=[policies.BearerTokenCredentialPolicy(credential, f"{audience}/.default")]
        )
        path = "/secrets?maxresults=1&" if list_names else f"/secrets/wi-verify-probe-{uuid.uuid4().hex}?"
        verify = {"connection_verify": self.connection.ca_bundle} if self.connection.ca_bundle else {}

        def send() -> tuple[int, str]:
            from azure.core.exceptions import ServiceRequestError

            try:
                response = client.send_request(HttpRequest("GET", f"{base}{path}api-version=7.4"), **verify)
            except ServiceRequestError as exc:
                if not _unresolved(exc):
                    raise  # retried by the policy
                # Not a blip: this machine has no way to the vault's name (a private endpoint's zone, a proxy).
                return 0, f"{base.split('://', 1)[-1]} does not resolve from where the playbook runs"
            if response.status_code < 400:
                return response.status_code, ""
            try:
                message = str((response.json().get("error") or {}).get("message") or "")
            except ValueError:
                message = response.text()[:300]
            if response.status_code in (429, 500, 502, 503, 504):
                response.raise_for_status()  # retried by the policy
            return response.status_code, message.splitlines()[0] if message else ""

        return azure_call(f"read key vault {base} as the workload", send, self.policy)


def _unresolved(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "failed to resolve" in text or "name or service not known" in text or "nodename nor servname" in text


def exchange_error(exc: BaseException) -> str | None:
    """Entra's refusal of a token exchange, as text; None for anything else."""
    from azure.core.exceptions import ClientAuthenticationError

    return str(exc.message or exc) if isinstance(exc, ClientAuthenticationError) else None
