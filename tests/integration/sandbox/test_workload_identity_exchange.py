"""A workload's federated token exchanged for an ARM token, and every way the exchange fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import WorkloadIdentityCredential

from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox import jwt

AUDIENCE = "api://AzureADTokenExchange"
SUBJECT = "system:serviceaccount:orders:orders-api"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


@pytest.fixture()
def federated(sandbox: Sandbox) -> dict[str, str]:
    """A cluster with its issuer on, an identity, a FIC trusting orders/orders-api, Reader on rg-app."""
    cluster = sandbox.control.seed_cluster("rg-aks", "aks-dev", oidc_issuer_enabled=True)
    sandbox.resource_group("rg-app")
    msi = sandbox.msi()
    identity = msi.user_assigned_identities.create_or_update("rg-app", "orders-api", {"location": "westeurope"})
    msi.federated_identity_credentials.create_or_update(
        "rg-app",
        "orders-api",
        "aks-dev",
        {"issuer": cluster["issuer_url"], "subject": SUBJECT, "audiences": [AUDIENCE]},
    )
    sandbox.authz().role_assignments.create(
        sandbox.rg_id("rg-app"),
        "0f0e0d0c-0b0a-4909-8807-060504030201",
        {
            "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": identity.principal_id,
            "principal_type": "ServicePrincipal",
        },
    )
    return {
        "client_id": identity.client_id,
        "principal_id": identity.principal_id,
        "issuer": cluster["issuer_url"],
        "key": cluster["signing_key_pem"],
    }


def _credential(sandbox: Sandbox, tmp_path: Path, client_id: str, assertion: str) -> WorkloadIdentityCredential:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(assertion)
    return WorkloadIdentityCredential(
        tenant_id=sandbox.tenant_id,
        client_id=client_id,
        token_file_path=str(token_file),
        authority=sandbox.url,
        connection_verify=sandbox.ca,
    )


def test_exchange_then_arm_within_the_granted_scope_only(
    sandbox: Sandbox, federated: dict[str, str], tmp_path: Path
) -> None:
    assertion = sandbox.sign_assertion(federated["key"], federated["issuer"], SUBJECT)
    credential = _credential(sandbox, tmp_path, federated["client_id"], assertion)
    token = credential.get_token(sandbox.url + "/.default")
    assert token.token
    msi = sandbox.msi(credential)
    assert [i.name for i in msi.user_assigned_identities.list_by_resource_group("rg-app")] == ["orders-api"]
    sandbox.resource_group("rg-sibling")
    with pytest.raises(HttpResponseError) as denied:
        list(msi.user_assigned_identities.list_by_resource_group("rg-sibling"))
    assert denied.value.status_code == 403 and denied.value.error.code == "AuthorizationFailed"
    with pytest.raises(HttpResponseError) as write:
        msi.user_assigned_identities.create_or_update("rg-app", "other", {"location": "westeurope"})
    assert write.value.status_code == 403


@pytest.mark.parametrize(
    ("case", "issuer_edit", "subject", "audience", "code"),
    [
        ("wrong subject", None, "system:serviceaccount:orders:someone-else", AUDIENCE, "AADSTS700213"),
        ("subject in other case", None, SUBJECT.upper(), AUDIENCE, "AADSTS7002138"),
        ("wrong audience", None, SUBJECT, "api://SomethingElse", "AADSTS700212"),
        ("issuer without trailing slash", "strip", SUBJECT, AUDIENCE, "AADSTS700211"),
        ("issuer in other case", "upper", SUBJECT, AUDIENCE, "AADSTS700211"),
    ],
)
def test_mismatches_name_what_did_not_match(
    sandbox: Sandbox,
    federated: dict[str, str],
    tmp_path: Path,
    case: str,
    issuer_edit: str | None,
    subject: str,
    audience: str,
    code: str,
) -> None:
    """Exact matching, each part with its own code, as Entra answers: issuer, then subject, then audience."""
    issuer = federated["issuer"]
    if issuer_edit == "strip":
        issuer = issuer.rstrip("/")
    elif issuer_edit == "upper":
        issuer = issuer.replace(sandbox.tenant_id, sandbox.tenant_id.upper())
    assertion = sandbox.sign_assertion(federated["key"], issuer, subject, audience)
    with pytest.raises(ClientAuthenticationError, match=rf"{code}\b"):
        _credential(sandbox, tmp_path, federated["client_id"], assertion).get_token(sandbox.url + "/.default")


def test_deleted_fic_no_longer_matches(sandbox: Sandbox, federated: dict[str, str], tmp_path: Path) -> None:
    sandbox.msi().federated_identity_credentials.delete("rg-app", "orders-api", "aks-dev")
    assertion = sandbox.sign_assertion(federated["key"], federated["issuer"], SUBJECT)
    with pytest.raises(ClientAuthenticationError, match=r"AADSTS70021\b"):  # no credential at all
        _credential(sandbox, tmp_path, federated["client_id"], assertion).get_token(sandbox.url + "/.default")


def test_forged_expired_and_unpublished(sandbox: Sandbox, federated: dict[str, str], tmp_path: Path) -> None:
    forged = sandbox.sign_assertion(jwt.private_pem(jwt.new_key()), federated["issuer"], SUBJECT)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        _credential(sandbox, tmp_path, federated["client_id"], forged).get_token(sandbox.url + "/.default")
    expired = sandbox.sign_assertion(federated["key"], federated["issuer"], SUBJECT, lifetime=-60)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700024"):
        _credential(sandbox, tmp_path, federated["client_id"], expired).get_token(sandbox.url + "/.default")
    # An issuer whose cluster has not enabled it: the FIC can name it, but nothing is published.
    dark = sandbox.control.seed_cluster("rg-aks", "aks-dark")
    assert (
        requests.get(dark["issuer_url"] + ".well-known/openid-configuration", verify=sandbox.ca, timeout=10).status_code
        == 404
    )
    sandbox.msi().federated_identity_credentials.create_or_update(
        "rg-app", "orders-api", "aks-dark", {"issuer": dark["issuer_url"], "subject": SUBJECT, "audiences": [AUDIENCE]}
    )
    unpublished = sandbox.sign_assertion(dark["signing_key_pem"], dark["issuer_url"], SUBJECT)
    with pytest.raises(ClientAuthenticationError, match="AADSTS50166"):
        _credential(sandbox, tmp_path, federated["client_id"], unpublished).get_token(sandbox.url + "/.default")


def test_new_fic_propagation_delay(sandbox: Sandbox, federated: dict[str, str], tmp_path: Path) -> None:
    sandbox.control.configure({"fic_propagation_seconds": 30})
    sandbox.msi().federated_identity_credentials.create_or_update(
        "rg-app",
        "orders-api",
        "second",
        {"issuer": federated["issuer"], "subject": "system:serviceaccount:orders:worker", "audiences": [AUDIENCE]},
    )
    assertion = sandbox.sign_assertion(federated["key"], federated["issuer"], "system:serviceaccount:orders:worker")
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        _credential(sandbox, tmp_path, federated["client_id"], assertion).get_token(sandbox.url + "/.default")
