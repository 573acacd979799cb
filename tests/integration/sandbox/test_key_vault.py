"""Key Vault in the sandbox, through real clients: azure-mgmt-keyvault (vaults, access policies) and
azure-keyvault-secrets (the data plane at https://<vault>.vault.azure.net, reached through the public-hostnames
proxy as any client behind a corporate proxy reaches it), and plain requests for what the SDKs hide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault.models import (
    AccessPolicyEntry,
    AccessPolicyUpdateKind,
    Permissions,
    Sku,
    VaultAccessPolicyParameters,
    VaultAccessPolicyProperties,
    VaultCreateOrUpdateParameters,
    VaultProperties,
)

from tests.integration.sandbox_helpers import Sandbox

from .test_rbac import assign


@pytest.fixture
def public_hosts(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The data plane's public host, through the sandbox's proxy (the SDK's transport honours HTTPS_PROXY)."""
    monkeypatch.setenv("HTTPS_PROXY", sandbox.env["SANDBOX_HTTPS_PROXY"])
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield


def keyvault(sandbox: Sandbox, credential: Any = None) -> KeyVaultManagementClient:
    return KeyVaultManagementClient(credential or sandbox.credential(), sandbox.subscription_id, **sandbox.arm_kwargs())


def make_vault(sandbox: Sandbox, name: str, rbac: bool | None, policies: list[AccessPolicyEntry] | None = None) -> Any:
    sandbox.resource_group("rg-kv")
    properties = VaultProperties(
        tenant_id=sandbox.tenant_id,
        sku=Sku(family="A", name="standard"),
        access_policies=policies or [],
        enable_rbac_authorization=rbac,
    )
    return (
        keyvault(sandbox)
        .vaults.begin_create_or_update(
            "rg-kv", name, VaultCreateOrUpdateParameters(location="westeurope", properties=properties)
        )
        .result()
    )


def entry(
    sandbox: Sandbox, object_id: str, keys: list[str] | None = None, **permissions: list[str]
) -> AccessPolicyEntry:
    # The SDK names the keys' permissions keys_property (keys is a mapping's method).
    granted = Permissions(keys_property=keys, **permissions)
    return AccessPolicyEntry(tenant_id=sandbox.tenant_id, object_id=object_id, permissions=granted)


def update(sandbox: Sandbox, vault: str, kind: str, *entries: AccessPolicyEntry) -> Any:
    parameters = VaultAccessPolicyParameters(properties=VaultAccessPolicyProperties(access_policies=list(entries)))
    return keyvault(sandbox).vaults.update_access_policy("rg-kv", vault, AccessPolicyUpdateKind(kind), parameters)


def secrets(sandbox: Sandbox, vault: Any, principal: dict[str, str]) -> SecretClient:
    credential = sandbox.credential(principal["client_id"], principal["client_secret"])
    return SecretClient(vault.properties.vault_uri, credential, connection_verify=sandbox.ca)


def test_a_vault_is_made_as_key_vault_requires_and_its_model_defaults_by_api_version(sandbox: Sandbox) -> None:
    vault = make_vault(sandbox, "kv-made", None)
    assert vault.properties.vault_uri == "https://kv-made.vault.azure.net/"
    # The SDK's api-version (2026-05-15) is from 2026-02-01 on: Azure RBAC unless said otherwise.
    assert vault.properties.enable_rbac_authorization is True
    scope = f"{sandbox.rg_id('rg-kv')}/providers/Microsoft.KeyVault/vaults/kv-old"
    sku = {"family": "A", "name": "standard"}
    body = {"location": "westeurope", "properties": {"tenantId": sandbox.tenant_id, "sku": sku}}
    # An older api-version: access policies, as every vault made before then.
    assert (
        sandbox.raw("PUT", scope, body, api_version="2023-07-01").json()["properties"]["enableRbacAuthorization"]
        is False
    )
    missing = sandbox.raw("PUT", scope, {"location": "westeurope", "properties": {}}, api_version="2023-07-01")
    assert missing.status_code == 400 and "tenantId" in missing.json()["error"]["message"]


def test_one_principals_entry_changes_and_every_other_stays(sandbox: Sandbox) -> None:
    team, ours = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    make_vault(sandbox, "kv-shared", False, [entry(sandbox, team, secrets=["get", "list", "set"])])
    update(sandbox, "kv-shared", "add", entry(sandbox, ours, secrets=["get"]))
    update(sandbox, "kv-shared", "add", entry(sandbox, ours, secrets=["list"], keys=["get"]))
    policies = keyvault(sandbox).vaults.get("rg-kv", "kv-shared").properties.access_policies
    held = {p.object_id: p.permissions for p in policies}
    assert sorted(held[ours].secrets) == ["get", "list"] and held[ours].keys_property == ["get"]  # add merges
    assert sorted(held[team].secrets) == ["get", "list", "set"]
    update(sandbox, "kv-shared", "replace", entry(sandbox, ours, secrets=["get"]))
    held = {
        p.object_id: p.permissions
        for p in keyvault(sandbox).vaults.get("rg-kv", "kv-shared").properties.access_policies
    }
    assert held[ours].secrets == ["get"] and not held[ours].keys_property
    update(sandbox, "kv-shared", "remove", entry(sandbox, ours, secrets=["get"]))
    left = keyvault(sandbox).vaults.get("rg-kv", "kv-shared").properties.access_policies
    assert [p.object_id for p in left] == [team]
    with pytest.raises(HttpResponseError) as refused:
        update(sandbox, "kv-shared", "add", entry(sandbox, ours, secrets=["read"]))
    assert refused.value.status_code == 400 and "read" in str(refused.value.message)


def test_a_vault_holds_at_most_1024_entries(sandbox: Sandbox) -> None:
    make_vault(sandbox, "kv-full", False)
    for batch in range(64):
        entries = [entry(sandbox, f"00000000-0000-0000-{batch:04d}-{n:012d}", secrets=["get"]) for n in range(16)]
        update(sandbox, "kv-full", "add", *entries)
    with pytest.raises(HttpResponseError) as refused:
        update(sandbox, "kv-full", "add", entry(sandbox, "33333333-3333-3333-3333-333333333333", secrets=["get"]))
    assert refused.value.status_code == 400 and "1024" in str(refused.value.message)


def test_the_data_plane_authorizes_by_the_vaults_own_model(sandbox: Sandbox, public_hosts: None) -> None:
    reader = sandbox.control.create_principal(display_name="reader")
    outsider = sandbox.control.create_principal(display_name="outsider")
    by_role = sandbox.control.create_principal(display_name="by-role")
    policies = make_vault(
        sandbox, "kv-policies", False, [entry(sandbox, reader["principal_id"], secrets=["get", "list"])]
    )
    rbac = make_vault(sandbox, "kv-rbac", True, [entry(sandbox, reader["principal_id"], secrets=["get", "list"])])
    admin = sandbox.control.create_principal(display_name="admin")
    update(sandbox, "kv-policies", "add", entry(sandbox, admin["principal_id"], secrets=["set"]))
    secrets(sandbox, policies, admin).set_secret("db-password", "s3cret")
    # The access policy entry is what the access-policy vault goes by (its SDK found the tenant in the challenge).
    assert secrets(sandbox, policies, reader).get_secret("db-password").value == "s3cret"
    assert [s.name for s in secrets(sandbox, policies, reader).list_properties_of_secrets()] == ["db-password"]
    with pytest.raises(HttpResponseError) as denied:
        secrets(sandbox, policies, outsider).get_secret("db-password")
    assert denied.value.status_code == 403 and "does not have secrets get permission" in str(denied.value.message)
    # A role assignment grants nothing on an access-policy vault's data, and an access policy nothing on an RBAC vault.
    for vault in (policies, rbac):
        assign(sandbox, vault.id, "Key Vault Secrets User", by_role["principal_id"])
    with pytest.raises(HttpResponseError):
        secrets(sandbox, policies, by_role).get_secret("db-password")
    with pytest.raises(HttpResponseError) as by_policy:
        secrets(sandbox, rbac, reader).get_secret("anything")
    assert by_policy.value.status_code == 403 and "Microsoft.KeyVault/vaults/secrets/getSecret/action" in str(
        by_policy.value.message
    )
    # The role is what the RBAC vault goes by: allowed, and nothing there.
    with pytest.raises(ResourceNotFoundError):
        secrets(sandbox, rbac, by_role).get_secret("anything")


def test_a_token_for_another_audience_or_none_is_refused_with_the_challenge(sandbox: Sandbox) -> None:
    make_vault(sandbox, "kv-auth", False)
    url = f"{sandbox.url}/dataplane/vault/kv-auth/secrets?api-version=7.4"
    anonymous = requests.get(url, verify=sandbox.ca, timeout=30)
    assert anonymous.status_code == 401 and "AKV10000" in anonymous.json()["error"]["message"]
    challenge = anonymous.headers["WWW-Authenticate"]
    assert f"/{sandbox.tenant_id}" in challenge and 'resource="https://vault.azure.net"' in challenge
    arm_token = sandbox.token()
    wrong = requests.get(url, verify=sandbox.ca, timeout=30, headers={"Authorization": f"Bearer {arm_token}"})
    assert wrong.status_code == 401 and "audience" in wrong.json()["error"]["message"].lower()
    vault_token = sandbox.credential().get_token("https://vault.azure.net/.default").token
    denied = requests.get(url, verify=sandbox.ca, timeout=30, headers={"Authorization": f"Bearer {vault_token}"})
    # The subscription's Owner may manage the vault, not read its data: no entry of its own.
    assert denied.status_code == 403 and denied.json()["error"]["innererror"]["code"] == "AccessDenied"
