"""_aks_access: an AKS API server from the Azure credential alone; tokens kept fresh; failures that say what to do."""

from __future__ import annotations

import base64
import os
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import (
    AKS_SERVER_APP_ID,
    AksAccess,
    ClusterRef,
    least_role,
    request_data_action,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import (
    AzureApiError,
    KubeApiError,
    ValidationError,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_client import KubeConnection
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import RetryPolicy

SUB = "00000000-0000-0000-0000-000000000001"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(user: dict[str, Any], server: str = "https://aks-x.hcp.westeurope.azmk8s.io:443") -> bytes:
    config = {
        "clusters": [
            {
                "name": "aks-x",
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(CA).decode()},
            }
        ],
        "users": [{"name": "clusterUser_rg_aks-x", "user": user}],
        "contexts": [{"name": "aks-x", "context": {"cluster": "aks-x", "user": "clusterUser_rg_aks-x"}}],
        "current-context": "aks-x",
    }
    return yaml.safe_dump(config).encode()


EXEC_USER = {
    "exec": {
        "command": "kubelogin",
        "args": ["get-token", "--server-id", "11111111-2222-3333-4444-555555555555", "--login", "devicecode"],
    }
}


class FakeCredential:
    def __init__(self, clock: list[float], lifetime: float = 3600) -> None:
        self.clock, self.lifetime, self.scopes = clock, lifetime, []

    def get_token(self, scope: str) -> Any:
        self.scopes.append(scope)
        return SimpleNamespace(token=f"token-{len(self.scopes)}", expires_on=self.clock[0] + self.lifetime)


class FakeConnection:
    """What AksAccess uses of _azure_client.Connection: the ARM client and the credential."""

    def __init__(self, answer: bytes | Exception, credential: FakeCredential) -> None:
        self.subscription_id = SUB
        self.answer, self._credential, self.calls = answer, credential, []

    def credential(self) -> FakeCredential:
        return self._credential

    def client(self, name: str) -> Any:
        assert name == "containerservice"

        def listing(kind: str) -> Any:
            def call(rg: str, name: str) -> Any:
                self.calls.append((kind, rg, name))
                if isinstance(self.answer, Exception):
                    raise self.answer
                return SimpleNamespace(kubeconfigs=[SimpleNamespace(name=kind, value=self.answer)])

            return call

        return SimpleNamespace(
            managed_clusters=SimpleNamespace(
                list_cluster_user_credentials=listing("user"), list_cluster_admin_credentials=listing("admin")
            )
        )


def access(answer: bytes | Exception, clock: list[float], kind: str = "user") -> tuple[AksAccess, FakeConnection]:
    connection = FakeConnection(answer, FakeCredential(clock))
    found = AksAccess(connection, ClusterRef("rg/aks-x", SUB), kind, RetryPolicy(budget=0), clock=lambda: clock[0])
    return found, connection


def test_a_cluster_is_named_by_resource_id_or_group_and_name() -> None:
    by_id = ClusterRef(
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/x", None
    )
    assert (by_id.subscription_id, by_id.resource_group, by_id.name) == (SUB, "rg", "x")
    assert ClusterRef("rg/x", SUB).id == by_id.id
    with pytest.raises(ValidationError, match="workload_identity_cluster_resource_group"):
        ClusterRef("/x", SUB)
    with pytest.raises(ValidationError, match="subscription_id"):
        ClusterRef("rg/x", None)


def test_an_entra_cluster_gets_a_token_for_its_server_app_kept_fresh_before_each_request() -> None:
    clock = [1000.0]
    found, connection = access(kubeconfig(EXEC_USER), clock)
    found.load()
    assert connection.calls == [("user", "rg", "aks-x")]
    from kubernetes import client

    configuration = client.Configuration()
    found.configure(configuration)
    assert configuration.host == "https://aks-x.hcp.westeurope.azmk8s.io:443"
    with open(configuration.ssl_ca_cert, "rb") as stream:
        assert stream.read() == CA
    assert oct(os.stat(configuration.ssl_ca_cert).st_mode & 0o777) == "0o600"
    # The application kubelogin was told about, not a hard-coded one.
    assert connection.credential().scopes == ["11111111-2222-3333-4444-555555555555/.default"]
    assert configuration.get_api_key_with_prefix("authorization") == "Bearer token-1"
    clock[0] += 3000  # still more than five minutes left: the same token
    assert configuration.get_api_key_with_prefix("authorization") == "Bearer token-1"
    clock[0] += 400  # less than five minutes left: replaced before the request
    assert configuration.get_api_key_with_prefix("authorization") == "Bearer token-2"
    assert found.tokens_fetched == 2


def test_a_kubelogin_config_without_server_id_means_the_aks_server_app() -> None:
    found, connection = access(kubeconfig({"exec": {"command": "kubelogin", "args": ["get-token"]}}), [0.0])
    found.load().token()
    assert connection.credential().scopes == [f"{AKS_SERVER_APP_ID}/.default"]


def test_a_local_account_token_is_used_as_given() -> None:
    found, connection = access(kubeconfig({"token": "static"}), [0.0], "admin")
    assert found.load().token() == "static"
    assert connection.calls == [("admin", "rg", "aks-x")] and connection.credential().scopes == []


@pytest.mark.parametrize(
    ("method", "path", "action", "namespace", "role"),
    [
        ("GET", "/api/v1/namespaces/team-a", "namespaces/read", "team-a", "Reader"),
        ("POST", "/api/v1/namespaces", "namespaces/write", None, "Cluster Admin"),
        ("POST", "/api/v1/namespaces/team-a/serviceaccounts", "serviceaccounts/write", "team-a", "Writer"),
        ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/web", "apps/deployments/write", "team-a", "Writer"),
        ("GET", "/api/v1/namespaces/team-a/secrets", "secrets/read", "team-a", "Writer"),
        (
            "GET",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            "admissionregistration.k8s.io/mutatingwebhookconfigurations/read",
            None,
            "Cluster Admin",
        ),
    ],
)
def test_a_request_needs_the_data_action_guard_checks(
    method: str, path: str, action: str, namespace: str | None, role: str
) -> None:
    found = request_data_action(method, path)
    assert found == (f"Microsoft.ContainerService/managedClusters/{action}", namespace)
    assert least_role(*found) == f"Azure Kubernetes Service RBAC {role}"


def test_a_refusal_names_the_data_action_the_role_and_the_scope() -> None:
    found, _connection = access(kubeconfig(EXEC_USER), [0.0])
    found.load()
    error = KubeApiError("forbidden", status=403, code="Forbidden")
    found.explain(error, "POST", "/api/v1/namespaces/team-b/serviceaccounts")
    assert "Microsoft.ContainerService/managedClusters/serviceaccounts/write on namespace team-b" in error.message
    assert f"'Azure Kubernetes Service RBAC Writer' at {found.cluster.id}/namespaces/team-b" in error.message


def test_the_admin_credential_of_a_cluster_without_local_accounts_says_to_use_the_user_one() -> None:
    refused = AzureApiError(
        "Getting static credential is not allowed because this cluster is set to disable local accounts.",
        status=400,
        code="BadRequest",
    )
    found, _connection = access(refused, [0.0], "admin")
    with pytest.raises(AzureApiError, match="workload_identity_kube_credential to user"):
        found.load()
    forbidden = AzureApiError("no", status=403, code="AuthorizationFailed")
    found, _connection = access(forbidden, [0.0])
    with pytest.raises(AzureApiError, match="Azure Kubernetes Service Cluster User Role"):
        found.load()


def test_a_private_cluster_out_of_reach_fails_at_once_saying_where_to_run_from() -> None:
    server = "https://aks-x-1.0000.privatelink.westeurope.azmk8s.io.invalid:443"
    found, _connection = access(kubeconfig(EXEC_USER, server), [0.0])
    with pytest.raises(KubeApiError, match="private cluster") as raised:
        found.load()
    assert raised.value.code == "ConnectionError"


def test_azure_access_needs_the_cluster_and_takes_nothing_from_a_kubeconfig_or_k8s_auth() -> None:
    with pytest.raises(ValidationError, match="aks_cluster"):
        KubeConnection({"kube_auth": "azure"}, environ={})
    connection = KubeConnection(
        {"kube_auth": "azure", "aks_cluster": "rg/x", "host": "https://other", "api_key": "t", "context": "c"},
        environ={},
        access_factory=lambda *_: None,
    )
    assert connection.source == "azure"
    assert (connection.host, connection.api_key, connection.context) == (None, None, None)
