"""_azure_batch_access_policies and _azure_key_vault: Key Vault access policy entries in the batch, on fake Apis.

Decisions and the writes they lead to (one principal's entry at a time, through ensure_access_policy), counted here.
The real requests are exercised against the sandbox's Key Vault by tests/integration/modules/test_access_policies.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis, Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_key_vault import (
    ensure_access_policy,
    normalise,
    vault_state,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import Role
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads

from .fakes import READER, SUB, TENANT, FakeFics, FakeIdentities, FakeRoles, FakeVaults, Writes
from .test_azure_batch_apps import GraphApps

CLUSTER = "aks-dev"
VAULTS = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults"
TEAM = "11111111-2222-3333-4444-555555555555"
SECRETS_USER = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6",
    "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets User",
    (
        (
            (),
            (),
            (
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            ),
        ),
    ),
)
CONTRIBUTOR = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Contributor",
    ((("*",), ("Microsoft.Authorization/*/Write",), ()),),
)


class Estate:
    def __init__(self) -> None:
        self.writes = Writes()
        self.vaults = FakeVaults(self.writes)
        roles = FakeRoles(self.writes, (READER, SECRETS_USER, CONTRIBUTOR))
        self.identities = FakeIdentities(self.writes)
        apis = AzureApis(self.identities, FakeFics(self.writes), roles, SUB, vaults=self.vaults)
        self.engine = Workloads(apis, GraphApps())

    def run(self, workloads: list[dict[str, Any]], check_mode: bool = False, **options: Any) -> dict[str, Any]:
        return run_batch(self.engine, workloads, check_mode, **options)

    def entries(self, vault: str) -> dict[str, Any]:
        return {
            e["objectId"]: e["permissions"] for e in self.vaults.vaults[vault.lower()]["properties"]["accessPolicies"]
        }


def run_batch(engine: Workloads, workloads: list[dict[str, Any]], check_mode: bool, **options: Any) -> dict[str, Any]:
    """One cluster's list through the batch, as the module runs it: validated, read, then converged (or removed).
    ``options``: prune, state, and another ``cluster`` (with ``peers``, the inventory's other clusters) than aks-dev."""
    cluster = options.get("cluster", CLUSTER)
    validated = validate_workloads(cluster, workloads, identity_resource_group="rg-ids", allow_privileged_roles=False)
    assert validated.problems == []
    batch = Batch(
        cluster,
        SUB,
        f"https://oidc.example/tenant/{cluster}/",
        "westeurope",
        validated.specs,
        options.get("prune", False),
        False,
        ("rg-ids",),
        options.get("state", "present"),
        peers=options.get("peers", []),
        database_admin_name=options.get("database_admin_name"),
    )
    reads = engine.read(batch, workers=2)
    if batch.state == "absent":
        return dict(engine.remove(batch, reads, check_mode))
    return dict(engine.converge(batch, reads, check_mode, workers=2))


def orders(*roles: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "orders", "namespace": "shop", "service_account": "orders", "roles": list(roles), **extra}


def policy_writes(writes: Writes) -> list[tuple[str, ...]]:
    return [w[:2] for w in writes if w[0] == "vault"]


def test_the_plan_is_the_run_the_second_run_writes_nothing_and_others_entries_stay() -> None:
    estate = Estate()
    team = {"tenantId": TENANT, "objectId": TEAM, "permissions": {"secrets": ["get", "set"]}}
    estate.vaults.add(f"{VAULTS}/kv-orders", policies=[team])
    listed = [orders({"scope": f"{VAULTS}/kv-orders", "access_policy": {"secrets": ["LIST", "get"]}})]
    plan = estate.run(listed, check_mode=True)
    assert policy_writes(estate.writes) == []
    done = estate.run(listed)
    assert policy_writes(estate.writes) == [("vault", "add")]
    assert plan["workloads"][0]["access_policies"] == done["workloads"][0]["access_policies"]
    principal = done["workloads"][0]["identity"]["principal_id"]
    assert estate.entries(f"{VAULTS}/kv-orders") == {TEAM: team["permissions"], principal: {"secrets": ["get", "list"]}}
    estate.writes.clear()
    gets = estate.vaults.gets
    again = estate.run(listed)
    assert again["changed"] is False and estate.writes == []
    assert estate.vaults.gets - gets == 1  # one read per vault named


def test_an_operators_identity_keeps_what_it_had_besides_and_is_extended_when_short() -> None:
    estate = Estate()
    estate.vaults.add(f"{VAULTS}/kv-orders")
    # First made by the collection, so that the identity exists; then held as an operator's would be.
    listed = [orders({"scope": f"{VAULTS}/kv-orders", "access_policy": {"secrets": ["get"]}})]
    principal = estate.run(listed)["workloads"][0]["identity"]["principal_id"]
    vault = vault_state(estate.vaults.vaults[f"{VAULTS}/kv-orders".lower()])
    vault["policies"] = [{"tenantId": TENANT, "objectId": principal, "permissions": {"secrets": ["get", "set"]}}]
    kept = ensure_access_policy(
        estate.vaults, vault, principal, permissions={"secrets": ["get"]}, state="present", check_mode=True, exact=False
    )
    assert kept.action == "unchanged"
    extended = ensure_access_policy(
        estate.vaults, vault, principal, permissions={"keys": ["get"]}, state="present", check_mode=True, exact=False
    )
    assert extended.action == "updated" and extended.after is not None
    assert extended.after["permissions"] == {"keys": ["get"], "secrets": ["get", "set"]}
    exact = ensure_access_policy(
        estate.vaults, vault, principal, permissions={"secrets": ["get"]}, state="present", check_mode=True
    )
    assert exact.action == "updated" and exact.after is not None and exact.after["permissions"] == {"secrets": ["get"]}


def test_prune_removes_a_dropped_entry_and_teardown_every_entry_of_the_identity_and_an_application() -> None:
    estate = Estate()
    for name in ("kv-orders", "kv-audit"):
        estate.vaults.add(f"{VAULTS}/{name}")
    both = [
        {"scope": f"{VAULTS}/kv-orders", "access_policy": {"secrets": ["get"]}},
        {"scope": f"{VAULTS}/kv-audit", "access_policy": {"keys": ["get"]}},
    ]
    listed = [orders(*both), orders(both[0], name="billing", service_account="billing", identity_type="application")]
    done = estate.run(listed, prune=True)
    principals = [w["identity"]["principal_id"] for w in done["workloads"]]
    assert all(p in estate.entries(f"{VAULTS}/kv-orders") for p in principals)
    listed[0]["roles"] = [both[0]]
    gets = estate.vaults.gets
    pruned = estate.run(listed, prune=True)
    assert estate.vaults.gets == gets  # prune reads every vault with the one list it needs, not a read per vault
    rows = pruned["workloads"][0]["access_policies"]
    assert [(r["vault"].rsplit("/", 1)[1], r["action"]) for r in rows] == [
        ("kv-orders", "unchanged"),
        ("kv-audit", "deleted"),
    ]
    assert principals[0] not in estate.entries(f"{VAULTS}/kv-audit")
    gone = estate.run(listed, state="absent")
    assert [[r["action"] for r in w["access_policies"]] for w in gone["workloads"]] == [["deleted"], ["deleted"]]
    assert estate.entries(f"{VAULTS}/kv-orders") == {}


def test_what_would_grant_nothing_or_too_much_is_refused_before_any_write() -> None:
    estate = Estate()
    estate.vaults.add(f"{VAULTS}/kv-policies")
    estate.vaults.add(f"{VAULTS}/kv-rbac", rbac=True)
    listed = [
        orders({"role": "Key Vault Secrets User", "scope": f"{VAULTS}/kv-policies"}),
        orders({"scope": f"{VAULTS}/kv-rbac", "access_policy": {"secrets": ["get"]}}, name="b", service_account="b"),
        orders({"role": "Contributor", "scope": f"{VAULTS}/kv-policies"}, name="c", service_account="c"),
        orders({"scope": f"{VAULTS}/kv-gone", "access_policy": {"secrets": ["get"]}}, name="d", service_account="d"),
    ]
    with pytest.raises(ValidationError) as refused:
        estate.run(listed)
    problems = " ".join(refused.value.problems)
    assert (
        f"Declare its entry instead: {{scope: {VAULTS}/kv-policies, access_policy: {{secrets: [get, list]}}}}"
        in problems
    )
    assert "kv-rbac uses Azure RBAC (enableRbacAuthorization), so an access policy grants nothing there" in problems
    assert "Contributor may change key vault kv-policies or its access policies" in problems
    assert f"{VAULTS}/kv-gone does not exist" in problems
    assert estate.writes == []


def test_permissions_are_compared_as_key_vault_compares_them() -> None:
    assert normalise({"secrets": ["List", "get", "GET"], "keys": [], "certificates": ["ManageContacts"]}) == {
        "certificates": ["managecontacts"],
        "secrets": ["get", "list"],
    }
    assert normalise({"keys": ["WRAPKEY"]}) == {"keys": ["wrapKey"]}


def test_on_an_operators_identity_teardown_removes_only_the_entries_this_collection_created() -> None:
    estate = Estate()
    operators = estate.identities.put(IdentityRef(SUB, "rg-team", "orders-by-hand"), "westeurope", {"team": "orders"})
    principal = operators["principal_id"]
    found = {"tenantId": TENANT, "objectId": principal, "permissions": {"secrets": ["get"]}}
    estate.vaults.add(f"{VAULTS}/kv-found", policies=[found])  # there before: adopted, never recorded
    estate.vaults.add(f"{VAULTS}/kv-made")
    listed = [
        orders(
            {"scope": f"{VAULTS}/kv-found", "access_policy": {"secrets": ["get"]}},
            {"scope": f"{VAULTS}/kv-made", "access_policy": {"secrets": ["get"]}},
            identity_name="orders-by-hand",
            identity_resource_group="rg-team",
        )
    ]
    done = estate.run(listed)
    rows = done["workloads"][0]["access_policies"]
    assert [(r["action"], r["adopted"]) for r in rows] == [("unchanged", True), ("created", False)]
    tags = estate.identities.get(IdentityRef(SUB, "rg-team", "orders-by-hand"))["tags"]
    assert any(k.startswith("wi-created-roles:") for k in tags)  # the entry it created, recorded on the identity
    again = estate.run(listed)["workloads"][0]["access_policies"]
    assert [(r["action"], r["adopted"]) for r in again] == [("unchanged", True), ("unchanged", False)]
    planned = estate.run(listed, check_mode=True, state="absent")
    gone = estate.run(listed, state="absent")
    assert planned["workloads"][0]["access_policies"] == gone["workloads"][0]["access_policies"]
    assert [r["vault"].rsplit("/", 1)[1] for r in gone["workloads"][0]["access_policies"]] == ["kv-made"]
    assert principal in estate.entries(f"{VAULTS}/kv-found") and principal not in estate.entries(f"{VAULTS}/kv-made")
    assert estate.identities.get(IdentityRef(SUB, "rg-team", "orders-by-hand")) is not None  # the operator's stays


def test_prune_removes_the_entries_of_this_clusters_identity_deleted_by_hand_and_leaves_anothers() -> None:
    estate = Estate()
    team = {"tenantId": TENANT, "objectId": TEAM, "permissions": {"secrets": ["get"]}}
    estate.vaults.add(f"{VAULTS}/kv-orders", policies=[team])
    listed = [
        orders(
            {"role": "Reader", "scope": f"/subscriptions/{SUB}/resourceGroups/rg-data"},
            {"scope": f"{VAULTS}/kv-orders", "access_policy": {"secrets": ["get"]}},
        )
    ]
    first = estate.run(listed, prune=True)["workloads"][0]["identity"]
    estate.identities.items.pop(first["id"].lower())  # deleted by hand: Key Vault keeps its entry
    planned = estate.run(listed, check_mode=True, prune=True)
    done = estate.run(listed, prune=True)
    assert planned["pruned"]["access_policies"] == done["pruned"]["access_policies"]
    [orphan] = done["pruned"]["access_policies"]
    assert orphan["identity"] == f"(deleted principal {first['principal_id']})"
    # The marked role assignment that told it (an orphan itself) went too; the other team's entry stays.
    assert [o["action"] for o in done["orphaned_assignments"]] == ["deleted"]
    now = done["workloads"][0]["identity"]["principal_id"]
    assert set(estate.entries(f"{VAULTS}/kv-orders")) == {TEAM, now}
