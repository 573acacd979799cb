# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): an AKS API server reached with the Azure credential alone.

The bridge between the two sides: it uses the Azure side's credential and ARM client to configure the Kubernetes
side's connection, which never imports Azure's (it is handed a factory).

``kube_auth: azure``: the cluster's address and CA come from ARM (``listClusterUserCredential``, or
``listClusterAdminCredential`` when asked for and local accounts are on). On a cluster with Entra ID
integration that kubeconfig names kubelogin's exec plugin and the AKS server application; instead of running
kubelogin, the same azure-identity credential the Azure modules use gets a token for that application, in
memory, refreshed before it expires (a long module outlives a token). Nothing is written to disk but the
cluster's CA (public) in a private temporary file.

Failures say what to do: the admin credential of a cluster without local accounts, a missing Azure RBAC for
Kubernetes role (naming the data action refused and the built-in role that grants it), a private cluster's
API server out of reach.
"""

from __future__ import annotations

import atexit
import base64
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ._azure_client import Connection, params_from_environment
from ._azure_errors import azure_call
from ._errors import AzureApiError, KubeApiError, ValidationError
from ._ids import cluster_id
from ._kube_client import KubeConnection, KubeModule
from ._retry import RetryPolicy

# The AKS AAD server application (Azure Kubernetes Service AAD Server): the audience of AKS's Entra tokens.
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# A token is replaced this long before it expires (azure-identity's own margin).
REFRESH_MARGIN = 300
DATA_ACTION_PREFIX = "Microsoft.ContainerService/managedClusters"
CLUSTER_USER_ROLE = "Azure Kubernetes Service Cluster User Role"
READER = "Azure Kubernetes Service RBAC Reader"
WRITER = "Azure Kubernetes Service RBAC Writer"
CLUSTER_ADMIN = "Azure Kubernetes Service RBAC Cluster Admin"
LOCAL_ACCOUNTS_DISABLED = "disable local accounts"
_VERBS = {"GET": "read", "POST": "write", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
# What the Reader role reads, and the Writer role writes: the namespaced objects the rollout touches.
_WRITER_RESOURCES = {
    "serviceaccounts",
    "secrets",
    "configmaps",
    "services",
    "pods",
    "apps/deployments",
    "apps/statefulsets",
    "apps/daemonsets",
    "apps/replicasets",
    "batch/jobs",
    "batch/cronjobs",
}


class ClusterRef:
    """An AKS cluster: its resource id, or ``<resource group>/<name>`` in the credential's subscription."""

    def __init__(self, value: str, subscription_id: str | None) -> None:
        parts = [p for p in str(value).strip().split("/") if p]
        low = [p.lower() for p in parts]
        if len(parts) == 8 and low[0] == "subscriptions" and low[2] == "resourcegroups" and low[6] == "managedclusters":
            self.subscription_id, self.resource_group, self.name = parts[1], parts[3], parts[7]
        elif len(parts) == 2 and not str(value).startswith("/"):
            if not subscription_id:
                raise ValidationError([f"aks_cluster {value}: subscription_id is required (or AZURE_SUBSCRIPTION_ID)"])
            self.subscription_id, self.resource_group, self.name = subscription_id, parts[0], parts[1]
        else:
            raise ValidationError(
                [
                    f"aks_cluster {value!r} is neither <resource group>/<cluster name> nor an AKS cluster's "
                    "resource id "
                    "(/subscriptions/.../resourceGroups/.../providers/Microsoft.ContainerService/managedClusters/...): "
                    "with workload_identity_kube_auth azure, set workload_identity_cluster_resource_group"
                ]
            )

    @property
    def id(self) -> str:
        return cluster_id(self.subscription_id, self.resource_group, self.name)


def request_data_action(method: str, path: str) -> tuple[str, str | None]:
    """The Azure RBAC data action a Kubernetes request needs, and its namespace (None: cluster scope)."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    group = ""
    if segments[:1] == ["api"]:
        rest = segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:
        group, rest = segments[1], segments[3:]
    else:
        return "/".join([DATA_ACTION_PREFIX, *segments, _VERBS.get(method, "read")]), None
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]
        rest = rest[2:] or ["namespaces"]
    resource = rest[0] if rest else ""
    return "/".join(p for p in (DATA_ACTION_PREFIX, group, resource, _VERBS.get(method, "read")) if p), namespace


def least_role(action: str, namespace: str | None) -> str:
    """The least built-in AKS RBAC role that grants ``action`` at its scope."""
    path = action[len(DATA_ACTION_PREFIX) + 1 :].rsplit("/", 1)[0]
    if namespace is None or path == "namespaces" and not action.endswith("/read"):
        return CLUSTER_ADMIN
    if action.endswith("/read") and path != "secrets":
        return READER
    return WRITER if path in _WRITER_RESOURCES else CLUSTER_ADMIN


def _private_file(content: bytes, suffix: str) -> str:
    """A file only this user can read, removed when the process ends."""
    handle, path = tempfile.mkstemp(prefix="workload-identity-aks-", suffix=suffix)
    with os.fdopen(handle, "wb") as stream:
        stream.write(content)
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


class AksAccess:
    """One AKS cluster's API server, its CA, and a bearer token kept fresh, from the Azure credential."""

    def __init__(
        self,
        connection: Any,
        cluster: ClusterRef,
        credential_kind: str = "user",
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.cluster = cluster
        self.credential_kind = credential_kind
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.server = ""
        self.ca_pem = b""
        self.server_id: str | None = None  # an Entra application to get tokens for; None: a static token
        self.static_token: str | None = None
        self.client_cert: tuple[bytes, bytes] | None = None
        self.private = False
        self._token: str | None = None
        self._expires_on = 0.0
        self.tokens_fetched = 0

    # -- ARM -----------------------------------------------------------------------------------------
    def load(self) -> AksAccess:
        """Read the cluster's kubeconfig from ARM (one POST); nothing of it is written anywhere."""
        import yaml

        client = self.connection.client("containerservice")
        ops = client.managed_clusters
        rg, name = self.cluster.resource_group, self.cluster.name
        admin = self.credential_kind == "admin"
        operation = f"list the {'admin' if admin else 'user'} credential of cluster {name}"
        fetch = ops.list_cluster_admin_credentials if admin else ops.list_cluster_user_credentials
        try:
            results = azure_call(operation, lambda: fetch(rg, name), self.policy)
        except AzureApiError as exc:
            raise self._explain_arm(exc) from None
        kubeconfig = yaml.safe_load(results.kubeconfigs[0].value)
        context = _named(kubeconfig, "contexts", kubeconfig.get("current-context")) or {}
        cluster = _named(kubeconfig, "clusters", context.get("cluster")) or {}
        user = _named(kubeconfig, "users", context.get("user")) or {}
        self.server = str(cluster.get("server") or "")
        self.private = ".privatelink." in self.server
        if self.private:
            self._check_reachable()
        if cluster.get("certificate-authority-data"):
            self.ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        if user.get("token"):
            self.static_token = str(user["token"])
        elif user.get("client-certificate-data"):
            self.client_cert = (
                base64.b64decode(user["client-certificate-data"]),
                base64.b64decode(user["client-key-data"]),
            )
        elif user.get("exec"):
            args = [str(a) for a in user["exec"].get("args") or []]
            # kubelogin's --server-id names the application (AKS's, or a legacy AAD cluster's own server app).
            self.server_id = args[args.index("--server-id") + 1] if "--server-id" in args[:-1] else AKS_SERVER_APP_ID
        else:
            raise KubeApiError(
                f"the {self.credential_kind} credential of cluster {name} has no token, certificate or exec plugin",
                code="NoCredentials",
                operation="connect",
            )
        return self

    def _check_reachable(self) -> None:
        """A private API server's name resolves only inside its network: say so now rather than retry for minutes."""
        import socket
        from urllib.parse import urlsplit

        host = urlsplit(self.server).hostname or ""
        try:
            socket.getaddrinfo(host, None)
        except OSError as exc:
            error = KubeApiError(f"{host} does not resolve here ({exc})", code="ConnectionError", operation="connect")
            self.explain(error, "GET", "/")
            raise error from None

    def _explain_arm(self, exc: AzureApiError) -> AzureApiError:
        name = self.cluster.name
        if exc.status == 400 and LOCAL_ACCOUNTS_DISABLED in exc.message:
            exc.message = (
                f"cluster {name} has local accounts disabled (disableLocalAccounts), so it has no admin credential: "
                "set workload_identity_kube_credential to user (the default) and give the automation's principal an "
                f"Azure RBAC for Kubernetes role on the cluster ({CLUSTER_ADMIN} for a whole rollout). {exc.message}"
            )
        elif exc.status == 403:
            role = (
                "Azure Kubernetes Service Cluster Admin Role" if self.credential_kind == "admin" else CLUSTER_USER_ROLE
            )
            exc.message = (
                f"the automation's principal may not read cluster {name}'s {self.credential_kind} credential: assign "
                f"it '{role}' on {self.cluster.id} (or a role with that action). {exc.message}"
            )
        return exc

    # -- the token ---------------------------------------------------------------------------------
    def token(self) -> str | None:
        """The bearer token to send now: the static one, or an Entra token replaced before it expires."""
        if self.server_id is None:
            return self.static_token
        if self._token is None or self._expires_on - self.clock() < REFRESH_MARGIN:
            from azure.core.exceptions import ClientAuthenticationError

            try:
                access = self.connection.credential().get_token(f"{self.server_id}/.default")
            except ClientAuthenticationError as exc:
                raise KubeApiError(
                    f"cannot get an Entra token for cluster {self.cluster.name}'s API server (application "
                    f"{self.server_id}): {str(exc).splitlines()[0] if str(exc) else exc}",
                    code="NoCredentials",
                    operation="connect",
                ) from None
            self._token, self._expires_on = access.token, float(access.expires_on)
            self.tokens_fetched += 1
        return self._token

    def ca_file(self) -> str | None:
        return _private_file(self.ca_pem, ".ca.pem") if self.ca_pem else None

    def configure(self, configuration: Any) -> None:
        """A kubernetes client Configuration for this API server, its token refreshed before each request."""
        configuration.host = self.server
        configuration.ssl_ca_cert = self.ca_file()
        if self.client_cert:
            configuration.cert_file = _private_file(self.client_cert[0], ".crt")
            configuration.key_file = _private_file(self.client_cert[1], ".key")
        token = self.token()
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}

        def refresh(conf: Any) -> None:
            current = self.token()
            if current:
                conf.api_key = {"authorization": f"Bearer {current}"}

        if self.server_id is not None:
            configuration.refresh_api_key_hook = refresh

    # -- what failures mean ---------------------------------------------------------------------------
    def explain(self, exc: KubeApiError, method: str, path: str) -> None:
        """Add what to do to a refusal (403: the data action and the role) or an unreachable private server."""
        if exc.status == 403 and self.server_id is not None:
            action, namespace = request_data_action(method, path)
            scope = f"{self.cluster.id}/namespaces/{namespace}" if namespace else self.cluster.id
            where = f"namespace {namespace}" if namespace else "the cluster"
            exc.message = (
                f"{exc.message} Azure RBAC for Kubernetes: the automation's principal needs the data action {action} "
                f"on {where}: assign it '{least_role(action, namespace)}' "
                f"at {scope} (a rollout needs '{CLUSTER_ADMIN}' on the cluster to create namespaces and install the "
                f"webhook, '{WRITER}' on each workload's namespace to bind workloads)."
            )
        elif exc.code == "ConnectionError" and self.private:
            exc.message = (
                f"cluster {self.cluster.name} is a private cluster: its API server ({self.server}) is reachable from "
                "its virtual network only (or a peered one, through its private DNS zone), not from where the "
                "playbook runs. Run the playbook there (an AWX execution node or container group in that network). "
                f"{exc.message}"
            )


def _named(config: dict[str, Any], kind: str, name: Any) -> dict[str, Any] | None:
    for entry in config.get(kind) or []:
        if entry.get("name") == name:
            return dict(entry.get(kind[:-1]) or {})
    entries = config.get(kind) or []
    return dict(entries[0].get(kind[:-1]) or {}) if len(entries) == 1 else None


def access_factory(azure: Any) -> Callable[[str, str, RetryPolicy | None], AksAccess]:
    """For KubeConnection: (cluster, credential kind, policy) -> its access, loaded from ARM."""

    def build(cluster: str, kind: str, policy: RetryPolicy | None) -> AksAccess:
        return AksAccess(azure, ClusterRef(cluster, azure.subscription_id), kind, policy).load()

    return build


def kube_connection(params: dict[str, Any], azure: Any) -> KubeConnection:
    """A module's Kubernetes connection, able to reach the cluster through Azure when kube_auth is azure."""
    return KubeConnection(params, access_factory=access_factory(azure) if params.get("kube_auth") == "azure" else None)


def environment_access() -> Callable[[str, str, RetryPolicy | None], AksAccess]:
    """kube_auth azure's access, signing in to Azure as the environment says (AZURE_*, as the lookup and the roles'
    Azure tasks): how the Kubernetes side reaches an AKS cluster, whichever module plans or binds it."""
    return access_factory(Connection(params_from_environment()))


def aks_kube_module(argument_spec: dict[str, Any], **kwargs: Any) -> KubeModule:
    """A Kubernetes module that can reach an AKS cluster through Azure (kube_auth azure, ``environment_access``): its
    own options stay Kubernetes ones. The bridge is handed to the KubeModule as its access factory, not built into a
    subclass of it."""
    return KubeModule(argument_spec=argument_spec, access_factory=lambda _params: environment_access(), **kwargs)
