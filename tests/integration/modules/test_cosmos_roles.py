"""Cosmos DB SQL role assignments through the batch module, against the sandbox's Cosmos DB provider: a workload's
SQL roles (built-in by name at a container, by GUID at a database, a custom one by name at the account) made, kept
and removed with the account's own role system, an operator's assignment adopted, check mode's prediction equal to
the run, two reads per account, and what cannot work refused before any write."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.integration.sandbox.test_cosmos_db import CONTRIBUTOR, READER, account
from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, auth, play
from .test_access_policies import entries
from .test_access_policies import vault as make_vault
from .test_workload_identities import batch_task, result_of

CUSTOM = "5f0c6d4a-1e2b-4c3d-8e9f-0a1b2c3d4e5f"


def custom_role(client: Any, account_id: str) -> str:
    body = {
        "properties": {
            "roleName": "Orders Item Reader",
            "type": "CustomRole",
            "assignableScopes": [account_id],
            "permissions": [
                {"dataActions": ["Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read"]}
            ],
        }
    }
    client.sql_resources.begin_create_update_sql_role_definition(CUSTOM, "rg-cosmos", "cosmos-orders", body).result()
    return f"{account_id}/sqlRoleDefinitions/{CUSTOM}"


def held(client: Any, account_name: str = "cosmos-orders") -> list[tuple[str, str, str, str]]:
    """(principal, role GUID, scope, name) of every assignment of the account, sorted."""
    return sorted(
        (a.principal_id, a.role_definition_id.rsplit("/", 1)[1], a.scope, a.name)
        for a in client.sql_resources.list_sql_role_assignments("rg-cosmos", account_name)
    )


def writes(sandbox: Sandbox) -> list[str]:
    return [op for op in sandbox.control.stats()["operations"] if op.endswith((".put", ".delete", ".patch"))]


def run(sandbox: Sandbox, collections: str, tmp_path: Path, workloads: list[dict[str, Any]], *options: str, **kw: Any):
    task = batch_task(sandbox, "aks-cosmos", workloads, **kw)
    done = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, options=options)
    return result_of(done.stdout)


def test_sql_roles_are_made_kept_and_removed_and_an_operators_assignment_is_adopted(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    client, made = account(sandbox, "cosmos-orders")
    custom_role(client, made.id)
    declared = [
        {"role": "Cosmos DB Built-in Data Reader", "scope": f"{made.id}/dbs/orders/colls/items"},
        {"role": CONTRIBUTOR, "scope": f"{made.id}/dbs/orders"},
        {"role": "Orders Item Reader", "scope": made.id},
        {"role": "Reader", "scope": sandbox.rg_id(RESOURCE_GROUP)},
    ]
    workload = {"name": "orders", "namespace": "orders", "service_account": "api", "roles": declared}

    sandbox.control.reset_stats()
    planned = run(sandbox, collections, tmp_path, [workload], "--check", "--diff")
    assert not writes(sandbox)
    done = run(sandbox, collections, tmp_path, [workload])
    rows = done["workloads"][0]["cosmos_roles"]
    assert [(r["role"], r["action"]) for r in rows] == [
        ("Cosmos DB Built-in Data Reader", "created"),
        ("Cosmos DB Built-in Data Contributor", "created"),
        ("Orders Item Reader", "created"),
    ]
    assert [(r["role"], r["action"]) for r in planned["workloads"][0]["cosmos_roles"]] == [
        (r["role"], r["action"]) for r in rows
    ]
    assert [r["role"] for r in done["workloads"][0]["role_assignments"]] == ["Reader"]
    principal = done["workloads"][0]["identity"]["principal_id"]
    assert [(p, g, s) for p, g, s, _n in held(client)] == sorted(
        [
            (principal, READER, f"{made.id}/dbs/orders/colls/items"),
            (principal, CONTRIBUTOR, f"{made.id}/dbs/orders"),
            (principal, CUSTOM, made.id),
        ]
    )

    # Again: nothing changes; the account's SQL roles and its assignments are read once each.
    sandbox.control.reset_stats()
    again = run(sandbox, collections, tmp_path, [workload])
    assert again["changed"] is False and not writes(sandbox)
    operations = sandbox.control.stats()["operations"]
    assert operations["sqlRoleDefinitions.list"]["total"] == 1
    assert operations["sqlRoleAssignments.list"]["total"] == 1

    # An operator's assignment for a role now declared: adopted, not duplicated.
    by_hand = str(uuid.uuid4())
    body = {
        "properties": {
            "roleDefinitionId": f"{made.id}/sqlRoleDefinitions/{READER}",
            "scope": made.id,
            "principalId": principal,
        }
    }
    client.sql_resources.begin_create_update_sql_role_assignment(by_hand, "rg-cosmos", "cosmos-orders", body).result()
    workload["roles"] = [declared[0], {"role": READER, "scope": made.id}, declared[3]]
    predicted = run(sandbox, collections, tmp_path, [workload], "--check", prune=True)
    changed = run(sandbox, collections, tmp_path, [workload], prune=True)
    summary = [
        (r["scope"].replace(made.id, ""), r["action"], r["adopted"]) for r in changed["workloads"][0]["cosmos_roles"]
    ]
    assert summary == [
        ("/dbs/orders/colls/items", "unchanged", False),
        ("", "unchanged", True),
        ("", "deleted", False),
        ("/dbs/orders", "deleted", False),
    ]
    assert predicted["workloads"][0]["cosmos_roles"] == changed["workloads"][0]["cosmos_roles"]
    assert any(n == by_hand for _p, _g, _s, n in held(client))

    # Teardown: the identity goes, and its SQL role assignments with it (Cosmos DB would keep them).
    gone = run(sandbox, collections, tmp_path, [workload], state="absent")
    assert {r["action"] for r in gone["workloads"][0]["cosmos_roles"]} == {"deleted"}
    assert held(client) == []


def test_what_cannot_be_granted_or_grants_too_much_is_refused_before_any_write(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    _client, made = account(sandbox, "cosmos-orders")
    workloads = [
        {
            "name": "neither",
            "namespace": "ns",
            "service_account": "a",
            "roles": [{"role": "Orders Writer", "scope": made.id}],
        },
        {
            "name": "keys",
            "namespace": "ns",
            "service_account": "b",
            "roles": [{"role": "DocumentDB Account Contributor", "scope": made.id}],
        },
        {
            "name": "nowhere",
            "namespace": "ns",
            "service_account": "c",
            "roles": [{"role": READER, "scope": made.id.replace("cosmos-orders", "cosmos-gone") + "/dbs/x"}],
        },
    ]
    sandbox.control.reset_stats()
    task = batch_task(sandbox, "aks-cosmos", workloads)
    failed = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, expect_ok=False)
    out = " ".join(failed.stdout.split())
    assert "workload 'neither': roles[0]" in out and "nor is it a SQL role of Cosmos DB account cosmos-orders" in out
    assert "workload 'keys': roles[0]: role: DocumentDB Account Contributor may assign SQL roles" in out
    assert "workload 'nowhere': roles[0]: scope: Cosmos DB account" in out and "does not exist" in out
    assert not writes(sandbox)


def test_prune_removes_the_sql_roles_of_an_identity_deleted_by_hand(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    client, made = account(sandbox, "cosmos-orders")
    workload = {
        "name": "orders",
        "namespace": "orders",
        "service_account": "api",
        "roles": [{"role": "Cosmos DB Built-in Data Reader", "scope": f"{made.id}/dbs/orders"}],
    }
    first = run(sandbox, collections, tmp_path, [workload], prune=True)["workloads"][0]["identity"]
    # Deleted by hand (with its service principal, as Azure does): Cosmos DB keeps its SQL role assignment.
    sandbox.msi().user_assigned_identities.delete(RESOURCE_GROUP, first["name"])
    assert [p for p, _g, _s, _n in held(client)] == [first["principal_id"]]
    again = run(sandbox, collections, tmp_path, [workload], prune=True)
    [orphan] = again["pruned"]["cosmos_roles"]
    assert orphan["identity"] == f"(deleted principal {first['principal_id']})"
    now = again["workloads"][0]["identity"]["principal_id"]
    assert [p for p, _g, _s, _n in held(client)] == [now] and now != first["principal_id"]
    settled = run(sandbox, collections, tmp_path, [workload], prune=True)
    assert settled["changed"] is False and "cosmos_roles" not in settled["pruned"]


def test_throttling_5xx_and_resets_on_cosmos_db_and_key_vault_are_retried_and_nothing_is_duplicated(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    client, made = account(sandbox, "cosmos-faults")
    vault = make_vault(sandbox, "kv-faults", False)
    workload = {
        "name": "orders",
        "namespace": "orders",
        "service_account": "api",
        "roles": [
            {"role": "Cosmos DB Built-in Data Reader", "scope": f"{made.id}/dbs/orders/colls/items"},
            {"scope": vault, "access_policy": {"secrets": ["get"]}},
        ],
    }
    faults = [
        {"operation": "sqlRoleAssignments.list", "status": 429, "retry_after": 1, "count": 2},
        {"operation": "sqlRoleAssignments.put", "status": 503, "count": 2},
        {"operation": "cosmos.operationsStatus.get", "reset": True, "count": 1},
        {"operation": "vaults.get", "status": 429, "retry_after": 1, "count": 2},
        {"operation": "vaults.accessPolicies.add", "status": 500, "count": 2},
    ]
    sandbox.control.clear_faults()
    sandbox.control.reset_stats()
    for fault in faults:
        sandbox.control.add_fault(**fault)
    try:
        done = run(sandbox, collections, tmp_path, [workload])
    finally:
        sandbox.control.clear_faults()
    operations = sandbox.control.stats()["operations"]
    for fault in faults:  # each fault really happened, as often as asked
        outcome = "reset" if fault.get("reset") else str(fault["status"])
        assert operations[fault["operation"]]["by_status"].get(outcome) == fault["count"], operations[
            fault["operation"]
        ]
    assert [r["action"] for r in done["workloads"][0]["cosmos_roles"]] == ["created"]
    assert [r["action"] for r in done["workloads"][0]["access_policies"]] == ["created"]
    again = run(sandbox, collections, tmp_path, [workload])
    assert again["changed"] is False
    principal = done["workloads"][0]["identity"]["principal_id"]
    assert [p for p, _g, _s, _n in held(client, "cosmos-faults")] == [principal]  # one assignment, not two
    assert list(entries(sandbox, vault)) == [principal]
