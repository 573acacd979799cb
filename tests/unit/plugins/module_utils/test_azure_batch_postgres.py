"""_azure_batch_postgres and _azure_postgres: database roles on PostgreSQL flexible servers in the batch, on fakes of
ARM's side and of the servers.

What a declared entry becomes (one role per server, its memberships), what is refused before any write, the changes
the engine asks of a server (and only those), and the reads per server, counted here. The SQL itself, and the real
servers' answers, are exercised against the sandbox's real PostgreSQL by tests/integration/modules/
test_database_roles.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads

from .fakes import AUTOMATION, SUB, FakeDatabases, FakeFics, FakeIdentities, FakePostgres, FakeRoles, Writes
from .test_azure_batch_access_policies import CLUSTER, orders, run_batch
from .test_azure_batch_apps import GraphApps

SERVERS = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DBforPostgreSQL/flexibleServers"
ORDERS = f"{SERVERS}/pg-orders"
AUDIT = f"{SERVERS}/pg-audit"
HOST = "pg-orders.postgres.database.azure.com"


class Estate:
    def __init__(self) -> None:
        self.writes = Writes()
        self.postgres = FakePostgres(self.writes)
        self.databases = FakeDatabases(self.writes)
        for server in (ORDERS, AUDIT):
            self.postgres.add(server)
            self.databases.add(server.rsplit("/", 1)[1])
        self.identities = FakeIdentities(self.writes)
        apis = AzureApis(
            self.identities,
            FakeFics(self.writes),
            FakeRoles(self.writes),
            SUB,
            postgres=self.postgres,
            databases=self.databases,
        )
        self.graph = GraphApps()
        self.engine = Workloads(apis, self.graph)

    def run(self, workloads: list[dict[str, Any]], check_mode: bool = False, **options: Any) -> dict[str, Any]:
        return run_batch(self.engine, workloads, check_mode, **options)

    def roles(self, host: str = HOST) -> dict[str, list[str]]:
        """Each Entra role's memberships (the automation's aside)."""
        server = self.databases.hosts[host]
        return {r: server["roles"][r]["member_of"] for r in server["principals"].values() if r != "automation"}


def entry(server: str = ORDERS, *roles: str, **extra: Any) -> dict[str, Any]:
    return {"scope": server, "database": "orders", "database_roles": list(roles or ("pg_read_all_data",)), **extra}


def database_writes(writes: Writes) -> list[tuple[str, ...]]:
    return [w for w in writes if w[0] in ("database", "postgres")]


def test_the_plan_is_the_run_one_role_per_server_and_the_second_run_reads_each_server_once() -> None:
    estate = Estate()
    listed = [
        orders(entry(), {**entry(), "database": "postgres", "database_roles": ["pg_write_all_data"]}),
        orders(entry(), name="billing", service_account="billing"),
        orders(entry(), name="web", service_account="web"),
    ]
    plan = estate.run(listed, check_mode=True)
    assert database_writes(estate.writes) == []
    done = estate.run(listed)
    for planned, made in zip(plan["workloads"], done["workloads"], strict=True):
        assert planned["database_roles"] == made["database_roles"]
    rows = done["workloads"][0]["database_roles"]
    assert [(r["user"], r["database"], r["roles"], r["action"]) for r in rows] == [
        ("orders", "orders", ["pg_read_all_data"], "created"),
        ("orders", "postgres", ["pg_write_all_data"], "created"),
    ]
    # One role for the workload on the server, a member of both entries' roles, made in one change.
    assert estate.roles() == {
        "orders": ["pg_read_all_data", "pg_write_all_data"],
        "billing": ["pg_read_all_data"],
        "web": ["pg_read_all_data"],
    }
    principal = done["workloads"][0]["identity"]["principal_id"]
    assert estate.databases.hosts[HOST]["principals"][principal.lower()] == "orders"
    assert ("database", "create", f"orders:{principal}") in estate.writes
    estate.writes.clear()
    reads, sessions = dict(estate.postgres.reads), estate.databases.sessions
    again = estate.run(listed)
    assert again["changed"] is False and estate.writes == []
    # Three workloads on one server: its ARM reads and its one session, once.
    assert {k: estate.postgres.reads[k] - reads[k] for k in reads} == {"server": 1, "administrators": 1, "list": 0}
    assert estate.databases.sessions - sessions == 1


def test_what_cannot_work_is_refused_before_any_write_each_naming_the_workload_and_the_field() -> None:
    estate = Estate()
    estate.postgres.add(f"{SERVERS}/pg-noentra", entra=False, admin=None)
    estate.postgres.add(f"{SERVERS}/pg-other-admin", admin=None)
    estate.databases.hosts[HOST]["roles"]["reporting"] = {"login": True, "comment": None, "member_of": []}
    listed = [
        orders(
            {**entry(), "database": "payments"},
            entry(AUDIT, "orders_writer"),
            entry(f"{SERVERS}/pg-gone"),
            entry(f"{SERVERS}/pg-noentra"),
            entry(f"{SERVERS}/pg-other-admin"),
        ),
        orders(entry(database_user="reporting"), name="reports", service_account="reports"),
    ]
    with pytest.raises(ValidationError) as refused:
        estate.run(listed)
    problems = refused.value.problems
    at = f"cluster {CLUSTER}: workload 'orders': roles"
    assert (
        f"{at}[0]: database: payments does not exist on server pg-orders (its databases: postgres, orders)" in problems
    )
    assert any(
        p.startswith(f"{at}[1]: database_roles: orders_writer: no such role on server pg-audit") for p in problems
    )
    assert f"{at}[2]: scope: PostgreSQL flexible server {SERVERS}/pg-gone does not exist" in problems
    assert any(
        p.startswith(f"{at}[3]: scope: PostgreSQL flexible server pg-noentra does not take Microsoft Entra")
        for p in problems
    )
    assert any(
        p.startswith(f"{at}[4]: scope: this run's principal ({AUTOMATION}) is not a Microsoft Entra administrator")
        and "az postgres flexible-server microsoft-entra-admin create --resource-group rg-data" in p
        for p in problems
    )
    assert any(
        "workload 'reports': roles[0]: database_user: reporting: a role of that name exists on server pg-orders, not "
        "mapped to any Entra principal" in p
        for p in problems
    )
    assert len(problems) == 6
    assert estate.writes == []


def test_the_list_is_checked_before_any_request() -> None:
    problems = validate_workloads(
        CLUSTER,
        [
            orders(
                {"scope": ORDERS, "database": "orders", "database_roles": ["azure_pg_admin", "x", "x"]},
                {"scope": f"{SERVERS}/pg-orders/databases/orders", "database": "", "database_roles": []},
                {**entry(), "role": "Reader", "database_user": "pg_orders"},
                {**entry(), "database": "postgres", "database_user": "other"},
                entry(),
                {**entry(), "database": "postgres", "database_user": "other"},
            )
        ],
        identity_resource_group="rg-ids",
        allow_privileged_roles=False,
    ).problems
    at = f"cluster {CLUSTER}: workload 'orders': roles"
    assert problems == [
        f"{at}[0]: database_roles: azure_pg_admin administers the server or reaches its files and programs: refused "
        "for a workload (set allow_privileged_roles to allow it)",
        f"{at}[0]: database_roles: names a role twice",
        f"{at}[1]: scope: a database role is given on an Azure Database for PostgreSQL flexible server: "
        f"/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.DBforPostgreSQL/flexibleServers/<name>, not "
        f"{SERVERS}/pg-orders/databases/orders",
        f"{at}[1]: database: must be a name of 1-63 bytes (got '')",
        f"{at}[1]: database_roles: must be a list of the existing roles it is granted, e.g. [pg_read_all_data]",
        f"{at}[2]: role: not with database (a database role is the server's own grant, not a role assignment: give "
        "either a role or a database with its database_roles)",
        f"{at}[2]: database_user: pg_orders: names starting with pg_ are PostgreSQL's own",
        f"{at}[4]: database_user: orders, where roles[3] names other on the same server: a principal has one "
        "database role per server",
        f"{at}[5]: database: postgres on {ORDERS} is declared twice",
        f"{at}[5]: database_user: other, where roles[4] names orders on the same server: a principal has one "
        "database role per server",
    ]


def test_prune_revokes_what_is_no_longer_declared_and_teardown_drops_the_role_it_made() -> None:
    estate = Estate()
    estate.run([orders(entry(ORDERS, "pg_read_all_data", "pg_write_all_data"), entry(AUDIT))])
    assert estate.roles() == {"orders": ["pg_read_all_data", "pg_write_all_data"]}
    estate.writes.clear()
    pruned = estate.run([orders(entry())], prune=True)
    assert database_writes(estate.writes) == [
        # On pg-audit, no longer declared: what it granted, and the role it made, go (in one transaction).
        ("database", "revoke", "pg_read_all_data:orders"),
        ("database", "drop", "orders"),
        ("database", "revoke", "pg_write_all_data:orders"),
    ]
    rows = pruned["workloads"][0]["database_roles"]
    assert [(r["action"], r["roles"], r["notes"]) for r in rows] == [
        ("unchanged", ["pg_read_all_data"], []),
        ("deleted", ["pg_read_all_data"], ["no longer declared", "its role dropped"]),
        ("deleted", ["pg_write_all_data"], ["no longer declared"]),
    ]
    assert estate.roles() == {"orders": ["pg_read_all_data"]}
    assert estate.roles("pg-audit.postgres.database.azure.com") == {}
    gone = estate.run([orders(entry())], state="absent")
    assert [r["action"] for r in gone["workloads"][0]["database_roles"]] == ["deleted"]
    assert estate.roles() == {}


def test_an_operators_role_for_the_principal_is_adopted_kept_and_loses_only_what_this_collection_granted() -> None:
    estate = Estate()
    made = estate.run([orders(name="billing", service_account="billing")])  # an identity with no database role
    principal = made["workloads"][0]["identity"]["principal_id"]
    server = estate.databases.hosts[HOST]
    server["principals"][principal.lower()] = "billing_by_hand"
    server["roles"]["billing_by_hand"] = {"login": True, "comment": None, "member_of": ["pg_write_all_data"]}
    done = estate.run([orders(entry(), name="billing", service_account="billing")])
    [row] = done["workloads"][0]["database_roles"]
    assert (row["user"], row["action"], row["adopted"], row["granted"]) == (
        "billing_by_hand",
        "updated",
        True,
        ["pg_read_all_data"],
    )
    assert "database_user not used" in row["notes"][0]
    # Its role is an operator's: what it holds cannot be told from what was granted here, so neither prune nor
    # teardown revokes anything from it, nor drops it (verify's review lists what is not declared).
    estate.run([orders(entry(), name="billing", service_account="billing")], prune=True)
    assert estate.roles() == {"billing_by_hand": ["pg_read_all_data", "pg_write_all_data"]}
    estate.run([orders(entry(), name="billing", service_account="billing")], state="absent")
    assert estate.roles() == {"billing_by_hand": ["pg_read_all_data", "pg_write_all_data"]}


def test_with_database_admin_name_the_run_sets_up_a_server_and_check_mode_only_says_so() -> None:
    estate = Estate()
    legacy = f"{SERVERS}/pg-legacy"
    estate.postgres.add(legacy, entra=False, admin=None)
    host = estate.databases.add("pg-legacy")
    host["principals"].clear()
    listed = [orders(entry(legacy))]
    plan = estate.run(listed, check_mode=True, database_admin_name="automation")
    assert database_writes(estate.writes) == []
    [planned] = plan["workloads"][0]["database_roles"]
    assert planned["action"] == "created"
    assert planned["notes"][0] == "Microsoft Entra sign-ins enabled on PostgreSQL flexible server pg-legacy"

    def sign_in(admin_named: str) -> None:  # the server maps the administrator ARM added to its principal
        host["principals"][AUTOMATION] = admin_named

    estate.postgres.add_administrator = _then(estate.postgres.add_administrator, sign_in)  # type: ignore[method-assign]
    done = estate.run(listed, database_admin_name="automation")
    assert database_writes(estate.writes)[:2] == [
        ("postgres", "entra", "pg-legacy"),
        ("postgres", "admin", "pg-legacy:automation"),
    ]
    assert done["workloads"][0]["database_roles"][0]["action"] == "created"
    assert estate.roles("pg-legacy.postgres.database.azure.com") == {"orders": ["pg_read_all_data"]}
    estate.writes.clear()
    assert estate.run(listed, database_admin_name="automation")["changed"] is False and estate.writes == []


def _then(add: Any, after: Any) -> Any:
    def wrapped(server_id: str, object_id: str, name: str, tenant_id: str) -> None:
        add(server_id, object_id, name, tenant_id)
        after(name)

    return wrapped


def test_prune_drops_the_roles_it_made_for_a_principal_deleted_by_hand_and_keeps_an_operators() -> None:
    estate = Estate()
    server = estate.databases.hosts[HOST]
    gone, kept = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"
    server["principals"].update({gone: "old-api", kept: "by-hand"})
    server["roles"]["old-api"] = {"login": True, "comment": estate_mark(), "member_of": ["pg_read_all_data"]}
    server["roles"]["by-hand"] = {"login": True, "comment": None, "member_of": ["pg_read_all_data"]}
    done = estate.run([orders(entry())], prune=True)
    assert done["pruned"]["database_roles"] == [
        {
            "identity": f"(deleted principal {gone})",
            "server": ORDERS,
            "user": "old-api",
            "roles": ["pg_read_all_data"],
            "dropped": True,
        }
    ]
    assert "old-api" not in server["roles"] and "by-hand" in server["roles"]


def estate_mark() -> str:
    from ansible_collections.workload_identity.aks.plugins.module_utils._azure_postgres import MARK

    return MARK


class Credential:
    def get_token(self, scope: str) -> Any:
        from types import SimpleNamespace

        assert scope == "https://ossrdbms-aad.database.windows.net/.default"
        return SimpleNamespace(token="header.eyJvaWQiOiAiYWJjIn0.signature")


def test_a_sign_in_is_tried_again_while_the_server_restarts_and_never_when_it_refuses_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg
    from ansible_collections.workload_identity.aks.plugins.module_utils._azure_postgres import DatabaseClient
    from ansible_collections.workload_identity.aks.plugins.module_utils._errors import DatabaseError

    answers: list[Exception | None] = []
    asked: list[dict[str, Any]] = []
    pauses: list[float] = []

    class Connection:
        def close(self) -> None:
            pass

    def connect(**options: Any) -> Connection:
        asked.append(options)
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return Connection()

    monkeypatch.delenv("PGSSLROOTCERT", raising=False)  # the system's roots, unless libpq's environment names some
    client = DatabaseClient(Credential(), connect, pauses.append)
    restarting = 'connection to server at "10.0.0.4", port 5432 failed: FATAL:  the database system is starting up'
    answers[:] = [
        psycopg.OperationalError(restarting),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        None,
    ]
    with client.session(HOST, "automation"):
        pass
    assert pauses == [1.0, 2.0] and len(asked) == 3
    assert {asked[0][k] for k in ("sslmode", "sslrootcert", "password")} == {
        "verify-full",
        "system",
        "header.eyJvaWQiOiAiYWJjIn0.signature",
    }
    assert client.principal()[0] == "abc"

    pauses.clear()
    answers[:] = [psycopg.OperationalError('failed: FATAL:  password authentication failed for user "automation"')]
    with pytest.raises(DatabaseError) as refused, client.session(HOST, "automation"):
        pass
    assert pauses == [] and refused.value.message == 'password authentication failed for user "automation"'

    answers[:] = [psycopg.OperationalError(restarting)] * 4
    with pytest.raises(DatabaseError) as gave_up, client.session(HOST, "automation"):
        pass
    assert pauses == [1.0, 2.0, 4.0]
    assert str(gave_up.value).endswith("the database system is starting up (after 4 attempts)")


def test_a_shared_identitys_database_role_another_cluster_declares_outlives_one_clusters_prune_and_teardown() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_shared import peers_from

    estate = Estate()
    shared = {"identity_name": "id-orders-shared", "identity_resource_group": "rg-ids"}
    inventory = {
        "aks-dev": [orders(entry(), **shared)],
        "aks-prod": [orders(entry(ORDERS, "pg_read_all_data", "pg_write_all_data"), **shared)],
    }

    def run(cluster: str, **options: Any) -> dict[str, Any]:
        others = [
            {"cluster_name": c, "identity_resource_group": "rg-ids", "workloads": w}
            for c, w in inventory.items()
            if c != cluster
        ]
        peers = peers_from(others, SUB, cluster, None)
        return run_batch(estate.engine, inventory[cluster], False, cluster=cluster, peers=peers, **options)

    run("aks-dev")
    run("aks-prod")
    assert estate.roles() == {"orders": ["pg_read_all_data", "pg_write_all_data"]}
    # Dev's prune keeps the membership prod declares on the identity they share; its teardown keeps the role.
    pruned = run("aks-dev", prune=True)
    assert [r["action"] for r in pruned["workloads"][0]["database_roles"]] == ["unchanged"]
    run("aks-dev", state="absent")
    assert estate.roles() == {"orders": ["pg_read_all_data", "pg_write_all_data"]}
    # The last cluster's teardown takes it all.
    inventory.pop("aks-dev")
    run("aks-prod", state="absent")
    assert estate.roles() == {}


def test_teardown_on_a_server_this_run_cannot_read_is_refused_before_any_change() -> None:
    estate = Estate()
    estate.run([orders(entry())])
    estate.postgres.servers[ORDERS.lower()]["admins"].clear()  # an operator took this run's administration away
    estate.writes.clear()
    with pytest.raises(ValidationError) as refused:
        estate.run([orders(entry())], state="absent", database_admin_name="automation")
    [problem] = refused.value.problems
    assert problem.startswith(f"cluster {CLUSTER}: workload 'orders': roles[0]: scope: this run's principal")
    assert problem.endswith("its database role cannot be removed")
    assert estate.writes == [] and estate.roles() == {"orders": ["pg_read_all_data"]}
