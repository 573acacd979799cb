"""_azure_batch_cosmos and _azure_cosmos: Cosmos DB SQL role assignments in the batch, on fake Apis.

Which entries are SQL roles, what is refused before any write, the writes (through ensure_sql_role_assignment) and
the reads per account, counted here. The real requests are exercised against the sandbox's Cosmos DB provider by
tests/integration/modules/test_cosmos_roles.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_shared import peers_from
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_cosmos import ensure_sql_role_assignment
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import Role
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads

from .fakes import (
    COSMOS_CONTRIBUTOR,
    COSMOS_READER,
    READER,
    SUB,
    FakeCosmos,
    FakeFics,
    FakeIdentities,
    FakeRoles,
    FakeVaults,
    Writes,
)
from .test_azure_batch_access_policies import CLUSTER, orders, run_batch
from .test_azure_batch_apps import GraphApps

ACCOUNTS = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DocumentDB/databaseAccounts"
ORDERS = f"{ACCOUNTS}/cosmos-orders"
AUDIT = f"{ACCOUNTS}/cosmos-audit"
CUSTOM = "5f0c6d4a-1e2b-4c3d-8e9f-0a1b2c3d4e5f"
ACCOUNT_READER = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/fbdf93bf-df7d-467e-a4d2-9458aa1360c8",
    "fbdf93bf-df7d-467e-a4d2-9458aa1360c8",
    "Cosmos DB Account Reader Role",
    ((("Microsoft.DocumentDB/*/read", "Microsoft.DocumentDB/databaseAccounts/readonlykeys/action"), (), ()),),
)
ACCOUNT_CONTRIBUTOR = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/5bd9cd88-fe45-4216-938b-f97437e15450",
    "5bd9cd88-fe45-4216-938b-f97437e15450",
    "DocumentDB Account Contributor",
    ((("Microsoft.DocumentDb/databaseAccounts/*",), (), ()),),
)


class Estate:
    def __init__(self) -> None:
        self.writes = Writes()
        self.cosmos = FakeCosmos(self.writes)
        self.cosmos.add(ORDERS, custom={CUSTOM: "Orders Item Reader"})
        self.cosmos.add(AUDIT)
        self.roles = FakeRoles(self.writes, (READER, ACCOUNT_READER, ACCOUNT_CONTRIBUTOR))
        self.identities = FakeIdentities(self.writes)
        apis = AzureApis(self.identities, FakeFics(self.writes), self.roles, SUB, cosmos=self.cosmos)
        self.graph = GraphApps()
        self.engine = Workloads(apis, self.graph)

    def run(self, workloads: list[dict[str, Any]], check_mode: bool = False, **options: Any) -> dict[str, Any]:
        return run_batch(self.engine, workloads, check_mode, **options)

    def held(self, account: str) -> list[tuple[str, str, str]]:
        """(principal, role GUID, scope below the account) of each assignment, sorted."""
        return sorted(
            (a["principal_id"], a["role_definition_id"].rsplit("/", 1)[1], a["scope"][len(account) :])
            for a in self.cosmos.accounts[account.lower()]["assignments"]
        )


def cosmos_writes(writes: Writes) -> list[tuple[str, ...]]:
    return [w[:2] for w in writes if w[0] == "cosmos"]


def test_sql_roles_by_name_guid_and_custom_name_the_plan_is_the_run_and_the_second_run_writes_nothing() -> None:
    estate = Estate()
    listed = [
        orders(
            {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop/colls/orders"},
            {"role": COSMOS_CONTRIBUTOR, "scope": f"{ORDERS}/dbs/shop"},
            # A custom SQL role named at the account itself: told from an ARM role by the account's own roles.
            {"role": "orders item reader", "scope": ORDERS},
            {"role": "Cosmos DB Account Reader Role", "scope": ORDERS},  # an ARM role on the account stays one
        ),
        orders(
            {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop/colls/orders"},
            name="billing",
            service_account="billing",
        ),
    ]
    plan = estate.run(listed, check_mode=True)
    assert cosmos_writes(estate.writes) == []
    done = estate.run(listed)
    assert cosmos_writes(estate.writes) == [("cosmos", "put")] * 4
    for planned, made in zip(plan["workloads"], done["workloads"], strict=True):
        assert [r["action"] for r in planned["cosmos_roles"]] == [r["action"] for r in made["cosmos_roles"]]
        assert [r["scope"] for r in planned["cosmos_roles"]] == [r["scope"] for r in made["cosmos_roles"]]
    rows = done["workloads"][0]["cosmos_roles"]
    assert [r["role"] for r in rows] == [
        "Cosmos DB Built-in Data Reader",
        "Cosmos DB Built-in Data Contributor",
        "Orders Item Reader",
    ]
    assert [r["role"] for r in done["workloads"][0]["role_assignments"]] == ["Cosmos DB Account Reader Role"]
    principal = done["workloads"][0]["identity"]["principal_id"]
    assert (principal, COSMOS_READER, "/dbs/shop/colls/orders") in estate.held(ORDERS)
    assert (principal, CUSTOM, "") in estate.held(ORDERS)
    estate.writes.clear()
    before = dict(estate.cosmos.reads)
    again = estate.run(listed)
    assert again["changed"] is False and estate.writes == []
    # One account named by two workloads: its definitions and its assignments read once each.
    assert {k: estate.cosmos.reads[k] - before[k] for k in before} == {
        "definitions": 1,
        "assignments": 1,
        "accounts": 0,
    }


def test_what_cannot_be_granted_or_grants_too_much_is_refused_before_any_write_naming_the_field() -> None:
    estate = Estate()
    listed = [
        orders({"role": "Orders Writer", "scope": ORDERS}),
        orders({"role": COSMOS_READER, "scope": f"{ACCOUNTS}/cosmos-gone/dbs/x"}, name="b", service_account="b"),
        orders({"role": "DocumentDB Account Contributor", "scope": ORDERS}, name="c", service_account="c"),
        orders({"role": "Orders Writer", "scope": f"{ORDERS}/dbs/shop"}, name="d", service_account="d"),
    ]
    with pytest.raises(ValidationError) as refused:
        estate.run(listed)
    problems = refused.value.problems
    # Neither an ARM role nor one of the account's SQL roles: both named.
    assert any(
        "workload 'orders': roles[0]" in p
        and "Orders Writer" in p
        and "nor is it a SQL role of Cosmos DB account cosmos-orders" in p
        and "Orders Item Reader" in p
        for p in problems
    ), problems
    assert any(
        f"workload 'b': roles[0]: scope: Cosmos DB account {ACCOUNTS}/cosmos-gone does not exist" in p for p in problems
    )
    assert any(
        "workload 'c': roles[0]: role: DocumentDB Account Contributor may assign SQL roles on Cosmos DB account" in p
        for p in problems
    )
    assert any(
        "workload 'd': roles[0]: role: Orders Writer is none of Cosmos DB account cosmos-orders's SQL role definitions"
        in p
        for p in problems
    )
    assert estate.writes == []


def test_a_path_in_cosmos_dbs_form_that_is_not_a_database_or_container_is_refused_before_any_request() -> None:
    for below in ("/colls/items", "/dbs", "/dbs/shop/colls", "/dbs/shop/colls/items/docs/1", "/dbs/shop/items/x"):
        validated = validate_workloads(
            CLUSTER,
            [orders({"role": "Cosmos DB Built-in Data Reader", "scope": ORDERS + below})],
            identity_resource_group="rg-ids",
            allow_privileged_roles=False,
        )
        assert [p.split(": scope: ", 1)[0] for p in validated.problems] == [
            f"cluster {CLUSTER}: workload 'orders': roles[0]"
        ], below
        # An odd number of segments is no resource id at all: the scope's parser says so first.
        expected = "is not a Cosmos DB SQL role's scope" if below.count("/") % 2 == 0 else "a resource scope is"
        assert expected in validated.problems[0], validated.problems


def test_a_sql_role_has_no_condition_or_description() -> None:
    validated = validate_workloads(
        CLUSTER,
        [orders({"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop", "description": "x"})],
        identity_resource_group="rg-ids",
        allow_privileged_roles=False,
    )
    assert validated.problems == [
        f"cluster {CLUSTER}: workload 'orders': roles[0]: description: Cosmos DB Built-in Data Reader at "
        f"{ORDERS}/dbs/shop is a Cosmos DB SQL role assignment, which has no description (Cosmos DB keeps its own role "
        "system for data: only a role and a scope)"
    ]


def test_prune_removes_a_dropped_assignment_and_teardown_every_one_of_the_identity_and_an_application() -> None:
    estate = Estate()
    both = [
        {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop"},
        {"role": "Cosmos DB Built-in Data Reader", "scope": AUDIT},
    ]
    listed = [orders(*both), orders(both[0], name="billing", service_account="billing", identity_type="application")]
    done = estate.run(listed, prune=True)
    principals = [w["identity"]["principal_id"] for w in done["workloads"]]
    assert {p for p, _r, _s in estate.held(ORDERS)} == set(principals)
    listed[0]["roles"] = [both[0]]
    pruned = estate.run(listed, prune=True)
    rows = pruned["workloads"][0]["cosmos_roles"]
    assert [(r["scope"], r["action"]) for r in rows] == [(f"{ORDERS}/dbs/shop", "unchanged"), (AUDIT, "deleted")]
    assert estate.held(AUDIT) == []
    gone = estate.run(listed, state="absent")
    assert [[r["action"] for r in w["cosmos_roles"]] for w in gone["workloads"]] == [["deleted"], ["deleted"]]
    assert estate.held(ORDERS) == []


def test_on_an_operators_identity_an_assignment_found_is_adopted_and_teardown_removes_only_those_made_here() -> None:
    estate = Estate()
    operators = estate.identities.put(IdentityRef(SUB, "rg-team", "orders-by-hand"), "westeurope", {"team": "orders"})
    principal = operators["principal_id"]
    found = {
        "name": str(uuid.uuid4()),  # as az cosmosdb sql role assignment create names it
        "account": ORDERS,
        "role_definition_id": f"{ORDERS}/sqlRoleDefinitions/{COSMOS_READER}",
        "scope": f"{ORDERS}/dbs/shop",
        "principal_id": principal,
    }
    estate.cosmos.accounts[ORDERS.lower()]["assignments"].append(found)
    listed = [
        orders(
            {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop"},
            {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/audit"},
            identity_name="orders-by-hand",
            identity_resource_group="rg-team",
        )
    ]
    rows = estate.run(listed)["workloads"][0]["cosmos_roles"]
    assert [(r["action"], r["adopted"]) for r in rows] == [("unchanged", True), ("created", False)]
    assert rows[0]["name"] == found["name"]  # used as it is: not duplicated under the collection's name
    again = estate.run(listed)["workloads"][0]["cosmos_roles"]
    assert [(r["action"], r["adopted"]) for r in again] == [("unchanged", True), ("unchanged", False)]
    planned = estate.run(listed, check_mode=True, state="absent")
    gone = estate.run(listed, state="absent")
    assert planned["workloads"][0]["cosmos_roles"] == gone["workloads"][0]["cosmos_roles"]
    assert [r["scope"] for r in gone["workloads"][0]["cosmos_roles"]] == [f"{ORDERS}/dbs/audit"]
    assert estate.held(ORDERS) == [(principal, COSMOS_READER, "/dbs/shop")]
    assert estate.identities.get(IdentityRef(SUB, "rg-team", "orders-by-hand")) is not None


def test_the_automation_may_not_assign_sql_roles_or_write_entries_and_nothing_is_written() -> None:
    estate = Estate()
    vaults = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults"
    estate.engine.policies.api = vaults_api = FakeVaults(estate.writes)
    vaults_api.add(f"{vaults}/kv-orders")
    estate.roles.denied.append((ORDERS, "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments/write"))
    estate.roles.denied.append((vaults, "Microsoft.KeyVault/vaults/accessPolicies/write"))
    listed = [
        orders(
            {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop"},
            {"scope": f"{vaults}/kv-orders", "access_policy": {"secrets": ["get"]}},
        )
    ]
    with pytest.raises(ValidationError) as refused:
        estate.run(listed)
    assert len(refused.value.problems) == 2
    sql, entry = sorted(refused.value.problems)
    assert "roles (Cosmos DB Built-in Data Reader at " in sql
    assert f"may not Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments/write at {ORDERS}" in sql
    assert "DocumentDB Account Contributor" in sql
    assert "roles (access_policy on key vault " in entry and "grant it Key Vault Contributor there" in entry
    assert estate.writes == []  # refused in the plan: not even the identity is made


def test_a_shared_identitys_sql_roles_another_cluster_declares_outlive_one_clusters_prune_and_teardown() -> None:
    estate = Estate()
    shop = {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop"}
    audit = {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/audit"}
    shared = {"identity_name": "id-orders-shared", "identity_resource_group": "rg-ids"}
    inventory = {"aks-dev": [orders(shop, **shared)], "aks-prod": [orders(shop, audit, **shared)]}

    def run(cluster: str, **options: Any) -> dict[str, Any]:
        others = [
            {"cluster_name": c, "identity_resource_group": "rg-ids", "workloads": w}
            for c, w in inventory.items()
            if c != cluster
        ]
        peers = peers_from(others, SUB, cluster, None)
        return run_batch(estate.engine, inventory[cluster], False, cluster=cluster, peers=peers, **options)

    principal = run("aks-dev")["workloads"][0]["identity"]["principal_id"]
    run("aks-prod")
    assert [s for p, _r, s in estate.held(ORDERS) if p == principal] == ["/dbs/audit", "/dbs/shop"]
    # Dev's prune keeps what prod declares on the identity they share; so does its teardown.
    pruned = run("aks-dev", prune=True)
    assert [r["action"] for r in pruned["workloads"][0]["cosmos_roles"]] == ["unchanged"]
    run("aks-dev", state="absent")
    assert [s for p, _r, s in estate.held(ORDERS) if p == principal] == ["/dbs/audit", "/dbs/shop"]


def test_prune_removes_the_sql_roles_of_a_principal_deleted_by_hand_and_keeps_those_of_one_that_exists() -> None:
    estate = Estate()
    listed = [orders({"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop"})]
    first = estate.run(listed, prune=True)["workloads"][0]["identity"]
    estate.identities.items.pop(first["id"].lower())  # deleted by hand: Cosmos DB keeps its assignment
    # Another principal this collection granted (another cluster's app registration), which exists: kept.
    elsewhere = {"id": str(uuid.uuid4()), "appId": str(uuid.uuid4())}
    estate.graph.principals[elsewhere["appId"]] = elsewhere
    reader = f"{ORDERS}/sqlRoleDefinitions/{COSMOS_READER}"
    made = ensure_sql_role_assignment(
        estate.cosmos,
        estate.cosmos.account(ORDERS),
        elsewhere["id"],
        reader,
        f"{ORDERS}/dbs/x",
        state="present",
        check_mode=False,
    )
    assert made.action == "created"
    planned = estate.run(listed, check_mode=True, prune=True)
    done = estate.run(listed, prune=True)
    assert planned["pruned"]["cosmos_roles"] == done["pruned"]["cosmos_roles"]
    [orphan] = done["pruned"]["cosmos_roles"]
    assert (
        orphan["identity"] == f"(deleted principal {first['principal_id']})" and orphan["scope"] == f"{ORDERS}/dbs/shop"
    )
    principals = {p for p, _r, _s in estate.held(ORDERS)}
    assert principals == {elsewhere["id"], done["workloads"][0]["identity"]["principal_id"]}
    # Without prune, nothing is looked for (Microsoft Graph is not asked).
    asked = len([w for w in estate.graph.writes if w[0] == "read principal"])
    estate.run(listed)
    assert len([w for w in estate.graph.writes if w[0] == "read principal"]) == asked


def test_a_no_op_with_built_in_roles_reads_one_thing_per_account_whatever_the_number_of_workloads() -> None:
    estate = Estate()
    reader = {"role": "Cosmos DB Built-in Data Reader", "scope": f"{ORDERS}/dbs/shop"}
    by_guid = {"role": COSMOS_CONTRIBUTOR, "scope": f"{AUDIT}/dbs/log/colls/events"}
    listed = [orders(reader, by_guid, name=f"w{i}", service_account=f"w{i}") for i in range(6)]
    estate.run(listed)
    before = dict(estate.cosmos.reads)
    again = estate.run(listed)
    assert again["changed"] is False
    # Each account's assignments, once; the built-ins' definitions are known without a read.
    assert {k: estate.cosmos.reads[k] - before[k] for k in before} == {
        "definitions": 0,
        "assignments": 2,
        "accounts": 0,
    }
