"""Database roles on Azure Database for PostgreSQL through the batch module, against the sandbox's flexible servers
(each a real PostgreSQL): a workload's role made by the server's Entra administrator (this run's principal), mapped
to its principal and a member of exactly the declared roles; check mode's prediction equal to the run; a second run
unchanged; the workload signing in with its own token and doing only what it was granted; an operator's role adopted
and never dropped; prune and teardown taking only what the collection made; what cannot work refused before any
write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.sandbox.test_postgres import connect, server, token
from tests.integration.sandbox_helpers import Sandbox

from .conftest import auth, play
from .test_workload_identities import batch_task, result_of


def host(name: str) -> str:
    return f"{name}.postgres.database.azure.com"


@pytest.fixture(autouse=True)
def libpq_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """libpq (the module's and the test's) pointed at the sandbox's gateway, as its env file says."""
    for key in ("PGHOSTADDR", "PGPORT", "PGSSLROOTCERT"):
        monkeypatch.setenv(key, sandbox.env[key])
    yield


def orders_database(sandbox: Sandbox, name: str) -> str:
    """The server (this run's principal its Entra administrator), a table the application's owner keeps, and a role
    of theirs that may write it; the server's id. (The module's tests share one sandbox: a server per test.)"""
    made = server(sandbox, name)
    with connect(host(name), "automation", token(sandbox)) as owner:
        owner.execute("CREATE TABLE items (id int PRIMARY KEY, customer text)")
        owner.execute("INSERT INTO items VALUES (1001, 'contoso')")
        owner.execute("CREATE ROLE orders_writer NOLOGIN")
        owner.execute("GRANT INSERT, SELECT ON items TO orders_writer")
    return str(made.id)


def principals(sandbox: Sandbox, name: str) -> dict[str, str]:
    """Role -> object id of the server's Entra roles (the administrator's too)."""
    with connect(host(name), "automation", token(sandbox), dbname="postgres") as admin:
        return dict(admin.execute("SELECT rolname, objectid FROM pgaadauth_list_principals(false)").fetchall())


def memberships(sandbox: Sandbox, name: str, role: str) -> list[str]:
    with connect(host(name), "automation", token(sandbox)) as admin:
        rows = admin.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s ORDER BY 1",
            (role,),
        )
        return [r[0] for r in rows.fetchall()]


def run(sandbox: Sandbox, collections: str, tmp_path: Path, workloads: list[dict[str, Any]], *options: str, **kw: Any):
    task = batch_task(sandbox, "aks-db", workloads, **kw)
    done = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, options=options)
    return result_of(done.stdout)


def test_a_workload_gets_its_own_database_role_with_exactly_the_declared_memberships(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    server_id = orders_database(sandbox, "pg-orders")
    app = sandbox.control.create_principal(display_name="orders-api-app")
    workload = {
        "name": "orders-api",
        "namespace": "orders",
        "service_account": "api",
        "identity_type": "application",
        "application_id": app["client_id"],
        "roles": [{"scope": server_id, "database": "orders", "database_roles": ["pg_read_all_data"]}],
    }
    planned = run(sandbox, collections, tmp_path, [workload], "--check", "--diff")
    assert "orders-api" not in principals(sandbox, "pg-orders")
    done = run(sandbox, collections, tmp_path, [workload])
    rows = done["workloads"][0]["database_roles"]
    assert [(r["user"], r["database"], r["roles"], r["action"], r["adopted"]) for r in rows] == [
        ("orders-api", "orders", ["pg_read_all_data"], "created", False)
    ]
    assert planned["workloads"][0]["database_roles"] == rows
    assert principals(sandbox, "pg-orders")["orders-api"] == app["principal_id"].lower()
    assert memberships(sandbox, "pg-orders", "orders-api") == ["pg_read_all_data"]

    # Its own token signs it in: it reads, and may not write (PostgreSQL says so). Another principal's does not.
    with connect(host("pg-orders"), "orders-api", token(sandbox, app)) as conn:
        assert conn.execute("SELECT customer FROM items").fetchall() == [("contoso",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO items VALUES (1002, 'fabrikam')")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(host("pg-orders"), "orders-api", token(sandbox))

    again = run(sandbox, collections, tmp_path, [workload])
    assert again["changed"] is False
    assert again["workloads"][0]["database_roles"][0]["action"] == "unchanged"

    # A second role declared: granted; then the first dropped from the list, with prune: revoked (on an operator's
    # app, only what this collection granted: both were).
    workload["roles"] = [
        {"scope": server_id, "database": "orders", "database_roles": ["pg_read_all_data", "orders_writer"]}
    ]
    grown = run(sandbox, collections, tmp_path, [workload])
    assert grown["workloads"][0]["database_roles"][0]["granted"] == ["orders_writer"]
    with connect(host("pg-orders"), "orders-api", token(sandbox, app)) as conn:
        conn.execute("INSERT INTO items VALUES (1002, 'fabrikam')")
    assert memberships(sandbox, "pg-orders", "orders-api") == ["orders_writer", "pg_read_all_data"]

    # Teardown: the app is the operator's and stays; the role this collection made for it goes.
    gone = run(sandbox, collections, tmp_path, [workload], state="absent")
    assert [r["action"] for r in gone["workloads"][0]["database_roles"]] == ["deleted"]
    assert "orders-api" not in principals(sandbox, "pg-orders")
    assert run(sandbox, collections, tmp_path, [workload], state="absent")["changed"] is False


def test_an_operators_role_is_adopted_and_kept_and_a_taken_name_or_missing_role_is_refused_before_any_write(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    server_id = orders_database(sandbox, "pg-billing")
    app = sandbox.control.create_principal(display_name="billing-app")
    with connect(host("pg-billing"), "automation", token(sandbox), dbname="postgres") as admin:
        admin.execute(
            "SELECT pgaadauth_create_principal_with_oid('billing-by-hand', %s, 'service', false, false)",
            (app["principal_id"],),
        )
        admin.execute("CREATE ROLE reporting LOGIN")  # a password role, no Entra principal
    base = {"namespace": "billing", "service_account": "worker", "identity_type": "application"}
    billing = {**base, "name": "billing", "application_id": app["client_id"]}
    billing["roles"] = [{"scope": server_id, "database": "orders", "database_roles": ["pg_read_all_data"]}]
    done = run(sandbox, collections, tmp_path, [billing])
    row = done["workloads"][0]["database_roles"][0]
    assert (row["user"], row["action"], row["adopted"]) == ("billing-by-hand", "updated", True)
    assert "adopted" in " ".join(row["notes"])
    gone = run(sandbox, collections, tmp_path, [billing], state="absent")
    assert gone["workloads"][0]["database_roles"][0]["action"] == "deleted"
    assert "billing-by-hand" in principals(
        sandbox, "pg-billing"
    )  # the operator's role stays; what was granted to it went
    assert memberships(sandbox, "pg-billing", "billing-by-hand") == []

    other = sandbox.control.create_principal(display_name="reports-app")
    reports = {**base, "name": "reports", "application_id": other["client_id"]}
    orders = {
        "scope": server_id,
        "database": "orders",
        "database_roles": ["orders_reader"],
        "database_user": "reporting",
    }
    # A mistake in the list itself: refused before any request.
    reports["roles"] = [orders, {**orders, "database": "payments", "database_user": "x"}]
    text = refused(sandbox, collections, tmp_path, [reports])
    assert "roles[1]: database_user: x, where roles[0] names reporting on the same server" in text
    # What only the server can tell: refused before any write, every problem at once.
    reports["roles"] = [orders, {**orders, "database": "payments", "database_roles": ["pg_read_all_data"]}]
    text = refused(sandbox, collections, tmp_path, [reports])
    assert "roles[0]: database_roles: orders_reader: no such role on server pg-billing" in text
    assert "roles[0]: database_user: reporting: a role of that name exists on server pg-billing" in text
    assert "roles[1]: database: payments does not exist on server pg-billing" in text
    assert "reporting" not in principals(sandbox, "pg-billing")


def refused(sandbox: Sandbox, collections: str, tmp_path: Path, workloads: list[dict[str, Any]]) -> str:
    task = batch_task(sandbox, "aks-db", workloads)
    done = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, expect_ok=False)
    assert done.returncode != 0
    return done.stdout


def test_a_server_without_this_run_as_its_entra_admin_is_named_and_set_when_the_inventory_says_so(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    from tests.integration.sandbox.test_postgres import RG, client

    sandbox.resource_group(RG)
    body = {
        "location": "westeurope",
        "properties": {"version": "16", "administratorLogin": "pgadmin", "administratorLoginPassword": "x-Pa55word"},
    }
    made = client(sandbox).servers.begin_create_or_update(RG, "pg-legacy", body, polling_interval=0).result()
    client(sandbox).databases.begin_create(RG, "pg-legacy", "app", {"properties": {}}, polling_interval=0).result()
    app = sandbox.control.create_principal(display_name="legacy-app")
    workload = {
        "name": "legacy",
        "namespace": "legacy",
        "service_account": "api",
        "identity_type": "application",
        "application_id": app["client_id"],
        "roles": [{"scope": made.id, "database": "app", "database_roles": ["pg_read_all_data"]}],
    }
    task = batch_task(sandbox, "aks-db", [workload])
    refused = play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)}, expect_ok=False)
    assert "does not take Microsoft Entra sign-ins: enable them" in refused.stdout
    assert "database_admin_name" in refused.stdout
    planned = run(sandbox, collections, tmp_path, [workload], "--check", database_admin_name="automation")
    assert planned["workloads"][0]["database_roles"][0]["action"] == "created"
    assert client(sandbox).servers.get(RG, "pg-legacy").auth_config.active_directory_auth == "Disabled"
    done = run(sandbox, collections, tmp_path, [workload], database_admin_name="automation")
    row = done["workloads"][0]["database_roles"][0]
    assert row["action"] == "created" and any("Entra sign-ins enabled" in n for n in row["notes"])
    with connect(host("pg-legacy"), "legacy", token(sandbox, app), dbname="app") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("legacy",)
    again = run(sandbox, collections, tmp_path, [workload], database_admin_name="automation")
    assert again["changed"] is False


def test_throttling_a_failing_arm_a_restarting_server_and_a_dropped_connection_are_lived_through(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    server_id = orders_database(sandbox, "pg-faults")
    app = sandbox.control.create_principal(display_name="faults-app")
    workload = {
        "name": "faults",
        "namespace": "faults",
        "service_account": "api",
        "identity_type": "application",
        "application_id": app["client_id"],
        "roles": [{"scope": server_id, "database": "orders", "database_roles": ["pg_read_all_data"]}],
    }
    host_name = host("pg-faults")
    faults = [
        {"operation": "flexibleServers.get", "status": 429, "retry_after": 1, "count": 2},
        {"operation": "administrators.list", "status": 503, "count": 1},
        # The server restarting (Azure's answer during a failover), then a connection dropped: the sign-in is tried
        # again; a refused token would not be.
        {"operation": "postgres.signIn", "path": host_name, "code": "57P03", "count": 1},
        {"operation": "postgres.signIn", "path": host_name, "reset": True, "status": None, "count": 1},
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
        outcome = "reset" if fault.get("reset") else fault.get("code") or str(fault["status"])
        assert operations[fault["operation"]]["by_status"].get(outcome) == fault["count"], operations
    # Signed in: once to read the server (after the two faults), once to make the role; no more.
    assert operations["postgres.signIn"]["by_status"]["ok"] == 2
    assert [r["action"] for r in done["workloads"][0]["database_roles"]] == ["created"]
    sandbox.control.reset_stats()
    again = run(sandbox, collections, tmp_path, [workload])
    assert again["changed"] is False
    # A no-op: the server, its administrators, and one session, whatever the number of workloads.
    operations = sandbox.control.stats()["operations"]
    assert operations["flexibleServers.get"]["total"] == 1
    assert operations["administrators.list"]["total"] == 1
    assert operations["postgres.signIn"]["by_status"] == {"ok": 1}
    assert list(principals(sandbox, "pg-faults")).count("faults") == 1
