# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what verification asks the cluster and Azure.

Read-only, or without effect: a server-side dry run creates no pod, a TokenRequest stores nothing.
The ServiceAccount token and the ARM token it is exchanged for live in memory only, for the
duration of one workload's check; they are never returned, logged or written.
"""

from __future__ import annotations

from typing import Any

from ._azure_client import Connection
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


def exchange_error(exc: BaseException) -> str | None:
    """Entra's refusal of a token exchange, as text; None for anything else."""
    from azure.core.exceptions import ClientAuthenticationError

    return str(exc.message or exc) if isinstance(exc, ClientAuthenticationError) else None
