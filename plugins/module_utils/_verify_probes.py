# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what verification asks the cluster and Azure.

Read-only, or without effect: a server-side dry run creates no pod, a TokenRequest stores nothing, a vault is asked
for its secrets' names or for a secret that cannot exist (never a value). The ServiceAccount token and the tokens it
is exchanged for live in memory only, for the duration of one workload's check; they are never returned, logged or
written.
"""

from __future__ import annotations

import json
import re
import uuid
from email.utils import formatdate
from typing import Any

from ._azure_client import Connection
from ._azure_errors import azure_call
from ._azure_role_assignment import read_permissions
from ._kube_client import KubeClient
from ._kube_patch import dig
from ._kube_paths import CONTROLLERS, Paths
from ._limits import DEFAULT_AUDIENCE
from ._retry import RetryPolicy

# Blob storage: the audience of its Entra tokens, and a service version that takes them.
STORAGE_AUDIENCE = "https://storage.azure.com"
BLOB_VERSION = "2021-08-06"
# Cosmos DB's data plane: a REST version that takes Entra tokens.
COSMOS_VERSION = "2018-12-31"
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
        base = vault_uri.rstrip("/")
        # The vault's audience is its cloud's Key Vault domain (https://vault.azure.net for the public cloud).
        audience = "https://vault." + base.split(".vault.", 1)[1] if ".vault." in base else "https://vault.azure.net"
        path = "/secrets?maxresults=1&" if list_names else f"/secrets/wi-verify-probe-{uuid.uuid4().hex}?"
        return self._data_plane_read(credential, audience, f"{base}{path}api-version=7.4", {}, f"key vault {base}")

    def blob_list(self, credential: Any, account: str, container: str) -> tuple[int, str]:
        """One harmless read on a blob container, as the workload: at most one blob's name, never its content."""
        base = f"https://{account}.blob.core.windows.net"
        url = f"{base}/{container}?restype=container&comp=list&maxresults=1"
        return self._data_plane_read(credential, STORAGE_AUDIENCE, url, {"x-ms-version": BLOB_VERSION}, url)

    def cosmos_read(self, credential: Any, account: str, path: str, partition_paths: int = 0) -> tuple[int, str]:
        """One harmless read on a Cosmos DB account's data plane, as the workload: ``path`` (``/``, ``/dbs/<db>``,
        ``/dbs/<db>/colls/<c>``: metadata, what ``readMetadata`` allows), or with ``partition_paths`` an item no one
        has in that container (a 404 says ``items/read`` was allowed). Never an item's content."""
        base = f"https://{account}.documents.azure.com"
        headers = {"x-ms-version": COSMOS_VERSION, "x-ms-date": formatdate(usegmt=True)}
        if partition_paths:
            path = f"{path}/docs/wi-verify-probe-{uuid.uuid4().hex}"
            headers["x-ms-documentdb-partitionkey"] = json.dumps(["wi-verify-probe"] * partition_paths)
        return self._data_plane_read(credential, base, f"{base}{path}", headers, f"Cosmos DB {base}{path}", cosmos=True)

    def _data_plane_read(
        self, credential: Any, audience: str, url: str, headers: dict[str, str], what: str, cosmos: bool = False
    ) -> tuple[int, str]:
        """A GET with the workload's token for ``audience`` (with ``cosmos``, as Cosmos DB takes it:
        ``type=aad&ver=1.0&sig=``, not a bearer token): the status and the service's own message (JSON
        ``error.message`` or ``message``, or XML ``<Message>``, its first line); 0 when the host does not resolve."""
        from azure.core import PipelineClient
        from azure.core.exceptions import ServiceRequestError
        from azure.core.pipeline import policies
        from azure.core.rest import HttpRequest

        scope = f"{audience}/.default"
        bearer = policies.BearerTokenCredentialPolicy
        auth: Any = _cosmos_token_policy(bearer, credential, scope) if cosmos else bearer(credential, scope)
        client: Any = PipelineClient(base_url=url, policies=[auth])
        verify = {"connection_verify": self.connection.ca_bundle} if self.connection.ca_bundle else {}

        def send() -> tuple[int, str]:
            try:
                response = client.send_request(HttpRequest("GET", url, headers=headers), **verify)
            except ServiceRequestError as exc:
                if not _unresolved(exc):
                    raise  # retried by the policy
                # Not a blip: this machine has no way to the service's name (a private endpoint's zone, a proxy).
                return 0, f"{url.split('://', 1)[-1].split('/', 1)[0]} does not resolve from where the playbook runs"
            if response.status_code in (429, 500, 502, 503, 504):
                response.raise_for_status()  # retried by the policy
            if response.status_code < 400:
                return response.status_code, ""
            return response.status_code, _service_message(response)

        return azure_call(f"read {what} as the workload", send, self.policy)


def _cosmos_token_policy(bearer: Any, credential: Any, scope: str) -> Any:
    """azure-core's token policy, writing the token as Cosmos DB's data plane takes it (as its own SDK does)."""

    class CosmosTokenPolicy(bearer):  # type: ignore[misc]
        @staticmethod
        def _update_headers(headers: Any, token: str) -> None:
            headers["Authorization"] = f"type=aad&ver=1.0&sig={token}"

    return CosmosTokenPolicy(credential, scope)


def _service_message(response: Any) -> str:
    text = response.text() or ""
    try:
        body = response.json()
        message = str((body.get("error") or {}).get("message") or body.get("message") or "")
    except ValueError:
        found = re.search(r"<Message>(.*?)</Message>", text, re.S)
        message = found.group(1) if found else text[:300]
    code = response.headers.get("x-ms-error-code")
    first = message.strip().splitlines()[0] if message.strip() else ""
    return f"{code}: {first}" if code and code not in first else first


def _unresolved(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "failed to resolve" in text or "name or service not known" in text or "nodename nor servname" in text


def exchange_error(exc: BaseException) -> str | None:
    """Entra's refusal of a token exchange, as text; None for anything else."""
    from azure.core.exceptions import ClientAuthenticationError

    return str(exc.message or exc) if isinstance(exc, ClientAuthenticationError) else None
