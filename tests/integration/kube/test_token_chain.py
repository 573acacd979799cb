"""Kubernetes service-account token -> Entra token exchange -> ARM, with real signatures at every link.

The API server signs with the cluster's issuer key; the Entra emulator verifies against the JWKS the
Azure emulator publishes for that issuer once the cluster's OIDC issuer is enabled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import WorkloadIdentityCredential
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox import jwt

AUDIENCE = "api://AzureADTokenExchange"
READER = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"


@pytest.fixture(scope="module")
def chain(kube_sandbox: Sandbox) -> Iterator[dict[str, str]]:
    """Cluster issuer enabled through ARM; namespace + service account; identity, FIC and Reader on rg-granted."""
    kube_sandbox.control.seed_cluster("rg-chain", "aks-chain", kube=True)
    clusters = kube_sandbox.aks().managed_clusters
    cluster = clusters.get("rg-chain", "aks-chain")
    issuer = kube_sandbox.control.cluster("rg-chain", "aks-chain")["issuer_url"]
    assert (
        requests.get(issuer + ".well-known/openid-configuration", verify=kube_sandbox.ca, timeout=10).status_code == 404
    )
    cluster.oidc_issuer_profile.enabled = True
    cluster = clusters.begin_create_or_update("rg-chain", "aks-chain", cluster, polling_interval=0.2).result()
    assert cluster.oidc_issuer_profile.issuer_url == issuer
    core = k8s.CoreV1Api(
        k8s_config.new_client_from_config(str(kube_sandbox.state_dir / "kubeconfig"), context="aks-chain")
    )
    core.create_namespace({"metadata": {"name": "orders"}})
    for name in ("orders-api", "intruder"):
        core.create_namespaced_service_account("orders", {"metadata": {"name": name}})
    kube_sandbox.resource_group("rg-granted")
    kube_sandbox.resource_group("rg-sibling")
    msi = kube_sandbox.msi()
    identity = msi.user_assigned_identities.create_or_update("rg-granted", "orders-api", {"location": "westeurope"})
    msi.federated_identity_credentials.create_or_update(
        "rg-granted",
        "orders-api",
        "aks-chain",
        {"issuer": issuer, "subject": "system:serviceaccount:orders:orders-api", "audiences": [AUDIENCE]},
    )
    kube_sandbox.authz().role_assignments.create(
        kube_sandbox.rg_id("rg-granted"),
        "7c1f0e2a-5b4d-4c3e-8f9a-0b1c2d3e4f50",
        {"role_definition_id": READER, "principal_id": identity.principal_id, "principal_type": "ServicePrincipal"},
    )
    yield {"issuer": issuer, "client_id": identity.client_id}


def service_account_token(sandbox: Sandbox, name: str, audience: str = AUDIENCE) -> str:
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(str(sandbox.state_dir / "kubeconfig"), context="aks-chain"))
    request = core.create_namespaced_service_account_token(
        name, "orders", {"spec": {"audiences": [audience], "expirationSeconds": 3600}}
    )
    return str(request.status.token)


def credential(sandbox: Sandbox, tmp_path: Path, client_id: str, token: str) -> WorkloadIdentityCredential:
    path = tmp_path / "azure-identity-token"
    path.write_text(token)
    return WorkloadIdentityCredential(
        tenant_id=sandbox.tenant_id,
        client_id=client_id,
        token_file_path=str(path),
        authority=sandbox.url,
        connection_verify=sandbox.ca,
    )


def test_the_api_server_signs_with_the_published_issuer_key(kube_sandbox: Sandbox, chain: dict[str, str]) -> None:
    token = service_account_token(kube_sandbox, "orders-api")
    header, claims = jwt.unverified(token)
    keys = requests.get(chain["issuer"] + "openid/v1/jwks", verify=kube_sandbox.ca, timeout=10).json()["keys"]
    assert header["kid"] == keys[0]["kid"]
    assert jwt.verify(token, jwt.public_from_jwk(keys[0]))["sub"] == "system:serviceaccount:orders:orders-api"
    assert claims["iss"] == chain["issuer"] and claims["aud"] == [AUDIENCE]


def test_exchange_then_arm_inside_the_grant_only(kube_sandbox: Sandbox, chain: dict[str, str], tmp_path: Path) -> None:
    cred = credential(kube_sandbox, tmp_path, chain["client_id"], service_account_token(kube_sandbox, "orders-api"))
    msi = kube_sandbox.msi(cred)
    assert [i.name for i in msi.user_assigned_identities.list_by_resource_group("rg-granted")] == ["orders-api"]
    with pytest.raises(HttpResponseError) as sibling:
        list(msi.user_assigned_identities.list_by_resource_group("rg-sibling"))
    assert sibling.value.status_code == 403 and sibling.value.error.code == "AuthorizationFailed"


def test_wrong_subject(kube_sandbox: Sandbox, chain: dict[str, str], tmp_path: Path) -> None:
    token = service_account_token(kube_sandbox, "intruder")
    with pytest.raises(ClientAuthenticationError, match=r"AADSTS700213\b"):
        credential(kube_sandbox, tmp_path, chain["client_id"], token).get_token(kube_sandbox.url + "/.default")


def test_wrong_audience(kube_sandbox: Sandbox, chain: dict[str, str], tmp_path: Path) -> None:
    token = service_account_token(kube_sandbox, "orders-api", audience="api://SomethingElse")
    with pytest.raises(ClientAuthenticationError, match=r"AADSTS700212\b"):
        credential(kube_sandbox, tmp_path, chain["client_id"], token).get_token(kube_sandbox.url + "/.default")


def test_issuer_without_trailing_slash(kube_sandbox: Sandbox, chain: dict[str, str], tmp_path: Path) -> None:
    msi = kube_sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-granted", "no-slash", {"location": "westeurope"})
    client_id = msi.user_assigned_identities.get("rg-granted", "no-slash").client_id
    msi.federated_identity_credentials.create_or_update(
        "rg-granted",
        "no-slash",
        "aks-chain",
        {
            "issuer": chain["issuer"].rstrip("/"),
            "subject": "system:serviceaccount:orders:orders-api",
            "audiences": [AUDIENCE],
        },
    )
    token = service_account_token(kube_sandbox, "orders-api")
    with pytest.raises(ClientAuthenticationError, match=r"AADSTS700211\b"):
        credential(kube_sandbox, tmp_path, client_id, token).get_token(kube_sandbox.url + "/.default")


def test_deleted_fic(kube_sandbox: Sandbox, chain: dict[str, str], tmp_path: Path) -> None:
    msi = kube_sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-granted", "short-lived", {"location": "westeurope"})
    client_id = msi.user_assigned_identities.get("rg-granted", "short-lived").client_id
    msi.federated_identity_credentials.create_or_update(
        "rg-granted",
        "short-lived",
        "aks-chain",
        {"issuer": chain["issuer"], "subject": "system:serviceaccount:orders:orders-api", "audiences": [AUDIENCE]},
    )
    token = service_account_token(kube_sandbox, "orders-api")
    assert credential(kube_sandbox, tmp_path, client_id, token).get_token(kube_sandbox.url + "/.default").token
    msi.federated_identity_credentials.delete("rg-granted", "short-lived", "aks-chain")
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        credential(kube_sandbox, tmp_path, client_id, token).get_token(kube_sandbox.url + "/.default")


def test_the_collection_itself_can_run_as_a_workload(
    kube_sandbox: Sandbox, chain: dict[str, str], ansible_env: dict[str, str], tmp_path: Path
) -> None:
    """auth_source=workload_identity: a module signs in with a projected service-account token, as it
    would in a pod (an AWX execution pod, say) that has workload identity."""
    import subprocess
    import sys

    import yaml

    from tests.integration.sandbox_helpers import PROJECT

    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(service_account_token(kube_sandbox, "orders-api"))
    collections = tmp_path / "collections" / "ansible_collections" / "workload_identity"
    collections.mkdir(parents=True)
    (collections / "aks").symlink_to(PROJECT)
    env = {k: v for k, v in ansible_env.items() if not k.startswith(("AZURE_", "REQUESTS_CA"))}
    # What the webhook injects into a pod, plus where this cloud is.
    env.update(
        {
            "AZURE_CLIENT_ID": chain["client_id"],
            "AZURE_TENANT_ID": kube_sandbox.tenant_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZURE_AUTHORITY_HOST": kube_sandbox.url,
            "AZURE_SUBSCRIPTION_ID": kube_sandbox.subscription_id,
            "AZURE_RESOURCE_MANAGER_ENDPOINT": kube_sandbox.url,
            "AZURE_CA_BUNDLE": kube_sandbox.ca,
            "ANSIBLE_COLLECTIONS_PATH": f"{tmp_path / 'collections'}:{ansible_env['ANSIBLE_COLLECTIONS_PATH']}",
        }
    )
    book = tmp_path / "as-workload.yml"
    book.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "inside the grant",
                            "register": "inside",
                            "workload_identity.aks.user_assigned_identity_info": {"resource_group": "rg-granted"},
                        },
                        {
                            "name": "outside it",
                            "register": "outside",
                            "ignore_errors": True,
                            "workload_identity.aks.user_assigned_identity_info": {"resource_group": "rg-sibling"},
                        },
                        {
                            "ansible.builtin.assert": {
                                "that": [
                                    "'orders-api' in inside.identities | map(attribute='name')",
                                    "outside is failed and '403 AuthorizationFailed' in outside.msg",
                                ]
                            }
                        },
                    ],
                }
            ]
        )
    )
    done = subprocess.run(
        [str(PROJECT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(book)],
        env={**env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_an_app_registration_signs_in_with_a_real_service_account_token(
    kube_sandbox: Sandbox, chain: dict[str, str], tmp_path: Path
) -> None:
    """The app-registration way end to end: application + service principal + federated credential in Graph,
    a TokenRequest from the cluster's API server, Entra's exchange (oid = the service principal), ARM's RBAC."""
    graph = kube_sandbox.graph
    app = graph("POST", "/applications", {"displayName": "orders-api-app"}).json()
    principal = graph("POST", "/servicePrincipals", {"appId": app["appId"]}).json()
    trust = {
        "name": "aks-chain",
        "issuer": chain["issuer"],
        "subject": "system:serviceaccount:orders:orders-api",
        "audiences": [AUDIENCE],
    }
    assert graph("POST", f"/applications/{app['id']}/federatedIdentityCredentials", trust).status_code == 201
    kube_sandbox.authz().role_assignments.create(
        kube_sandbox.rg_id("rg-granted"),
        "8d2e1f3b-6c5d-4d4f-9a0b-1c2d3e4f5a61",
        {"role_definition_id": READER, "principal_id": principal["id"], "principal_type": "ServicePrincipal"},
    )
    signed_in = credential(kube_sandbox, tmp_path, app["appId"], service_account_token(kube_sandbox, "orders-api"))
    _header, claims = jwt.unverified(signed_in.get_token(kube_sandbox.url + "/.default").token)
    assert (claims["oid"], claims["appid"]) == (principal["id"], app["appId"])
    msi = kube_sandbox.msi(signed_in)
    assert "orders-api" in [i.name for i in msi.user_assigned_identities.list_by_resource_group("rg-granted")]
    with pytest.raises(HttpResponseError) as denied:
        list(msi.user_assigned_identities.list_by_resource_group("rg-sibling"))
    assert denied.value.status_code == 403
    # Another service account of the same cluster is not trusted by the application.
    intruder = credential(kube_sandbox, tmp_path, app["appId"], service_account_token(kube_sandbox, "intruder"))
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        intruder.get_token(kube_sandbox.url + "/.default")
