"""Key Vault access policies through the batch module, against the sandbox's Key Vault: a workload's entry made,
kept, changed and removed with the vault's own operations (other principals' entries untouched), check mode's
prediction equal to the run, one read per vault, and what cannot work refused before any write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, auth, play
from .test_workload_identities import batch_task, result_of

TEAM = "11111111-2222-3333-4444-555555555555"  # another team's principal, with its own entry


def vault(sandbox: Sandbox, name: str, rbac: bool, policies: list[dict[str, Any]] | None = None) -> str:
    sandbox.resource_group("rg-vaults")
    scope = f"{sandbox.rg_id('rg-vaults')}/providers/Microsoft.KeyVault/vaults/{name}"
    properties = {
        "tenantId": sandbox.tenant_id,
        "sku": {"family": "A", "name": "standard"},
        "enableRbacAuthorization": rbac,
        "accessPolicies": policies or [],
    }
    answer = sandbox.raw("PUT", scope, {"location": "westeurope", "properties": properties}, api_version="2023-07-01")
    assert answer.status_code in (200, 201), answer.text
    return scope


def entries(sandbox: Sandbox, scope: str) -> dict[str, dict[str, list[str]]]:
    body = sandbox.raw("GET", scope, api_version="2023-07-01").json()
    return {e["objectId"]: e["permissions"] for e in body["properties"]["accessPolicies"]}


def writes(sandbox: Sandbox) -> list[str]:
    return [op for op in sandbox.control.stats()["operations"] if op.endswith((".put", ".delete", ".patch", ".add"))]


def run(sandbox: Sandbox, collections: str, tmp_path: Path, workloads: list[dict[str, Any]], *options: str, **kw: Any):
    task = batch_task(sandbox, "aks-vaults", workloads, **kw)
    done = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, options=options)
    return result_of(done.stdout)


def test_an_entry_is_made_kept_changed_and_removed_and_others_stay(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    team = {"tenantId": sandbox.tenant_id, "objectId": TEAM, "permissions": {"secrets": ["get", "list", "set"]}}
    orders_vault = vault(sandbox, "kv-orders", False, [team])
    audit_vault = vault(sandbox, "kv-audit", False)
    declared = [
        {"scope": orders_vault, "access_policy": {"secrets": ["List", "get"]}},
        {"scope": audit_vault, "access_policy": {"keys": ["get"], "secrets": ["get"]}},
        {"role": "Reader", "scope": sandbox.rg_id(RESOURCE_GROUP)},
    ]
    workload = {"name": "orders", "namespace": "orders", "service_account": "api", "roles": declared}

    sandbox.control.reset_stats()
    planned = run(sandbox, collections, tmp_path, [workload], "--check", "--diff")
    assert not writes(sandbox)
    rows = planned["workloads"][0]["access_policies"]
    assert [(r["action"], r["permissions"]) for r in rows] == [
        ("created", {"secrets": ["get", "list"]}),
        ("created", {"keys": ["get"], "secrets": ["get"]}),
    ]

    done = run(sandbox, collections, tmp_path, [workload])
    assert [r["action"] for r in done["workloads"][0]["access_policies"]] == ["created", "created"]
    principal = done["workloads"][0]["identity"]["principal_id"]
    held = entries(sandbox, orders_vault)
    assert held[principal] == {"secrets": ["get", "list"]} and held[TEAM] == team["permissions"]
    assert entries(sandbox, audit_vault)[principal] == {"keys": ["get"], "secrets": ["get"]}

    # Again: nothing changes, and each vault is read once.
    sandbox.control.reset_stats()
    again = run(sandbox, collections, tmp_path, [workload])
    assert again["changed"] is False
    assert {r["action"] for r in again["workloads"][0]["access_policies"]} == {"unchanged"}
    operations = sandbox.control.stats()["operations"]
    assert operations["vaults.get"]["total"] == 2 and not writes(sandbox)

    # Fewer permissions on one vault, and the other dropped (with prune): replaced, and removed.
    workload["roles"] = [{"scope": orders_vault, "access_policy": {"secrets": ["get"]}}, declared[2]]
    predicted = run(sandbox, collections, tmp_path, [workload], "--check", prune=True)
    changed = run(sandbox, collections, tmp_path, [workload], prune=True)
    summary = [(r["vault"].rsplit("/", 1)[1], r["action"]) for r in changed["workloads"][0]["access_policies"]]
    assert summary == [("kv-orders", "updated"), ("kv-audit", "deleted")]
    assert predicted["workloads"][0]["access_policies"] == changed["workloads"][0]["access_policies"]
    assert entries(sandbox, orders_vault)[principal] == {"secrets": ["get"]}
    assert principal not in entries(sandbox, audit_vault)

    # Teardown: the identity goes, and its entries with it; the other team's stays.
    gone = run(sandbox, collections, tmp_path, [workload], state="absent")
    assert [r["action"] for r in gone["workloads"][0]["access_policies"]] == ["deleted"]
    assert set(entries(sandbox, orders_vault)) == {TEAM}


def test_what_would_grant_nothing_or_too_much_is_refused_before_any_write(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    policies = vault(sandbox, "kv-policies", False)
    rbac = vault(sandbox, "kv-rbac", True)
    workloads = [
        {
            "name": "by-role",
            "namespace": "ns",
            "service_account": "a",
            "roles": [{"role": "Key Vault Secrets User", "scope": policies}],
        },
        {
            "name": "by-policy",
            "namespace": "ns",
            "service_account": "b",
            "roles": [{"scope": rbac, "access_policy": {"secrets": ["get"]}}],
        },
        {
            "name": "nowhere",
            "namespace": "ns",
            "service_account": "c",
            "roles": [{"scope": rbac.replace("kv-rbac", "kv-missing"), "access_policy": {"secrets": ["get"]}}],
        },
        {
            "name": "changer",
            "namespace": "ns",
            "service_account": "d",
            "roles": [{"role": "Contributor", "scope": policies}],
        },
    ]
    sandbox.control.reset_stats()
    task = batch_task(sandbox, "aks-refused", workloads)
    done = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, expect_ok=False)
    text = " ".join(done.stdout.split())
    assert (
        "workload 'by-role': roles[0]: role: key vault kv-policies uses access policies (enableRbacAuthorization is "
        "false), which ignore role assignments for its data: Key Vault Secrets User would grant nothing there. "
        f"Declare its entry instead: {{scope: {policies}, access_policy: {{secrets: [get, list]}}}}"
    ) in text
    assert "workload 'by-policy': roles[0]: access_policy: key vault kv-rbac uses Azure RBAC" in text
    assert "{role: Key Vault Secrets User, scope: " in text
    assert "workload 'nowhere': roles[0]: scope: key vault " in text and "kv-missing does not exist" in text
    assert "workload 'changer': roles[0]: role: Contributor may change key vault kv-policies" in text
    assert not writes(sandbox)


def test_a_bad_entry_is_named_before_any_request(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    rg = sandbox.rg_id("rg-vaults")
    workloads = [
        {
            "name": "typos",
            "namespace": "ns",
            "service_account": "a",
            "roles": [
                {"scope": f"{rg}/providers/Microsoft.KeyVault/vaults/kv", "access_policy": {"secrets": ["read"]}},
                {
                    "scope": f"{rg}/providers/Microsoft.Storage/storageAccounts/st",
                    "access_policy": {"secrets": ["get"]},
                },
                {"scope": f"{rg}/providers/Microsoft.KeyVault/vaults/kv2", "access_policy": {"blobs": ["get"]}},
                {"role": "Reader", "scope": rg, "access_policy": {"secrets": ["get"]}},
            ],
        }
    ]
    sandbox.control.reset_stats()
    task = batch_task(sandbox, "aks-typos", workloads)
    done = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, expect_ok=False)
    text = " ".join(done.stdout.split())
    assert "roles[0]: access_policy: secrets: read: not a Key Vault permission for secrets" in text
    assert "roles[1]: scope: an access_policy is given on a key vault" in text
    assert "roles[2]: access_policy: blobs: unknown kind" in text
    assert "roles[3]: role: not with access_policy" in text
    assert sandbox.control.stats()["totals"].get("arm", 0) == 0


def test_throttling_and_5xx_on_key_vault_are_waited_out_and_the_next_run_changes_nothing(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    scope = vault(sandbox, "kv-faults", False)
    workload = {
        "name": "faulted",
        "namespace": "ns",
        "service_account": "faulted",
        "roles": [{"scope": scope, "access_policy": {"secrets": ["get"]}}],
    }
    sandbox.control.reset_stats()
    sandbox.control.add_fault(operation="vaults.get", status=429, retry_after=1, count=2)
    sandbox.control.add_fault(operation="vaults.accessPolicies.add", status=503, count=2)
    try:
        (tmp_path / "faulted").mkdir()
        done = run(sandbox, collections, tmp_path / "faulted", [workload])
    finally:
        sandbox.control.clear_faults()
    operations = sandbox.control.stats()["operations"]
    assert operations["vaults.get"]["by_status"]["429"] == 2
    assert operations["vaults.accessPolicies.add"]["by_status"] == {"503": 2, "200": 1}
    principal = done["workloads"][0]["identity"]["principal_id"]
    assert entries(sandbox, scope) == {principal: {"secrets": ["get"]}}
    (tmp_path / "again").mkdir()
    assert run(sandbox, collections, tmp_path / "again", [workload])["changed"] is False


def test_on_an_operators_identity_teardown_removes_only_the_entry_it_created(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    made = sandbox.msi().user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-orders-by-hand", {"location": "westeurope", "tags": {"team": "orders"}}
    )
    principal = made.principal_id
    found = {"tenantId": sandbox.tenant_id, "objectId": principal, "permissions": {"secrets": ["get"]}}
    found_vault = vault(sandbox, "kv-found", False, [found])
    made_vault = vault(sandbox, "kv-made", False)
    workload = {
        "name": "by-hand",
        "namespace": "ns",
        "service_account": "by-hand",
        "identity_name": "id-orders-by-hand",
        "roles": [
            {"scope": found_vault, "access_policy": {"secrets": ["get"]}},
            {"scope": made_vault, "access_policy": {"secrets": ["get", "list"]}},
        ],
    }
    for step in ("first", "second"):
        (tmp_path / step).mkdir()
        done = run(sandbox, collections, tmp_path / step, [workload])
    rows = done["workloads"][0]["access_policies"]
    # The entry it found is the operator's (adopted); the one it made is its own, recorded on the identity.
    assert done["changed"] is False and [(r["action"], r["adopted"]) for r in rows] == [
        ("unchanged", True),
        ("unchanged", False),
    ]
    (tmp_path / "teardown").mkdir()
    gone = run(sandbox, collections, tmp_path / "teardown", [workload], state="absent")
    assert [r["vault"] for r in gone["workloads"][0]["access_policies"]] == [made_vault]
    assert entries(sandbox, found_vault) == {principal: {"secrets": ["get"]}}  # it was there before: it stays
    assert principal not in entries(sandbox, made_vault)
    assert sandbox.msi().user_assigned_identities.get(RESOURCE_GROUP, "id-orders-by-hand").principal_id == principal
