"""verify on PostgreSQL flexible servers: each database role's memberships as the server holds them (read by the
rollout's reads), then a sign-in as the workload (on a fake of libpq's connection), and the access review of what
the role holds beyond the declared (no request to anything here; the real sign-in is tests/integration/kube/
test_verify.py's)."""

from __future__ import annotations

from typing import Any

import psycopg
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import Reads
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._verify_databases import DatabaseLogins
from ansible_collections.workload_identity.aks.plugins.module_utils._verify_findings import Verdict

from .fakes import SUB

SERVERS = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DBforPostgreSQL/flexibleServers"
PRINCIPAL = "7d1f3a52-8c1e-4c35-9a53-1e7b7a1b6c01"


class Workload:
    """The workload's credential: a token for the servers' audience."""

    def get_token(self, scope: str) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(token="header.payload.signature")


class Server:
    """libpq's connection as the workload, answering as PostgreSQL: membership, a table it may read, the read."""

    def __init__(self, member_of: set[str], refuse_sign_in: str | None = None, refuse_read: bool = False) -> None:
        self.member_of, self.refuse_sign_in, self.refuse_read = member_of, refuse_sign_in, refuse_read
        self.asked: list[str] = []
        self.signed_in: list[dict[str, Any]] = []

    def connect(self, **options: Any) -> Any:
        if self.refuse_sign_in:
            raise psycopg.OperationalError(f"connection failed: FATAL:  {self.refuse_sign_in}")
        self.signed_in.append(options)
        return self

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        self.asked.append(query)
        if "pg_has_role" in query:
            rows = [(params[0] in self.member_of,)]
        elif "has_table_privilege" in query:
            rows = [("public", "orders")]
        else:
            if self.refuse_read:
                raise psycopg.errors.InsufficientPrivilege("permission denied for table orders")
            rows = []
        return _Rows(rows)

    def close(self) -> None:
        pass


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchall(self) -> list[Any]:
        return self.rows


def check(held: dict[str, list[str]], server: Server) -> tuple[Verdict, int, int]:
    """orders-api declaring pg_read_all_data in orders on pg-orders; the servers holding ``held`` (server name ->
    the memberships of its role); verified with ``server`` as the sign-in."""
    [workload] = validate_workloads(
        "aks-dev",
        [
            {
                "name": "orders-api",
                "namespace": "orders",
                "service_account": "orders-api",
                "roles": [
                    {"scope": f"{SERVERS}/pg-orders", "database": "orders", "database_roles": ["pg_read_all_data"]}
                ],
            }
        ],
        identity_resource_group="rg-ids",
        allow_privileged_roles=True,
    ).specs
    reads = Reads()
    for name, member_of in held.items():
        reads.postgres_servers[f"{SERVERS}/{name}".lower()] = {
            "id": f"{SERVERS}/{name}",
            "name": name,
            "host": f"{name}.postgres.database.azure.com",
            "entra": True,
            "admins": {},
            "admin_role": "automation",
            "principals": {PRINCIPAL: "orders-api"},
            "roles": {"orders-api": {"login": True, "comment": None, "member_of": member_of}},
            "databases": ["postgres", "orders"],
            "unreachable": None,
        }
    verdict = Verdict("orders-api", "orders", "orders-api")
    verdict.roles = [{"role": "pg_read_all_data (database role orders-api)", "scope": "x", "granted": None}]
    logins = DatabaseLogins(reads, "aks-dev", server.connect)
    signed_in = logins.check(PRINCIPAL, "id-orders-api", workload, (0, Workload()), verdict)
    extras = logins.extras(PRINCIPAL, "id-orders-api", workload, verdict)
    return verdict, signed_in, extras


def test_a_role_the_server_holds_is_proven_by_signing_in_as_the_workload_with_one_harmless_read() -> None:
    server = Server({"pg_read_all_data"})
    verdict, signed_in, extras = check({"pg-orders": ["pg_read_all_data"]}, server)
    assert (signed_in, extras, verdict.findings) == (1, 0, [])
    assert verdict.roles[0]["granted"] is True
    [options] = server.signed_in
    assert (options["host"], options["user"], options["dbname"], options["sslmode"]) == (
        "pg-orders.postgres.database.azure.com",
        "orders-api",
        "orders",
        "verify-full",
    )
    assert server.asked[-1] == 'SELECT 1 FROM "public"."orders" LIMIT 0'  # the privilege checked, no row read


def test_a_membership_the_server_lacks_is_one_finding_and_more_memberships_and_roles_are_reviewed() -> None:
    server = Server(set())
    verdict, signed_in, extras = check({"pg-orders": ["pg_write_all_data"], "pg-audit": ["pg_read_all_data"]}, server)
    assert (signed_in, extras) == (1, 2)
    [missing] = [f for f in verdict.findings if f.link == "permissions"]
    assert "orders-api is not a member of pg_read_all_data on server pg-orders" in missing.message
    assert verdict.roles[0]["granted"] is False
    assert not [q for q in server.asked if "pg_has_role" in q]  # not asked again as the workload
    reviewed = sorted(f.remedy for f in verdict.findings if f.link == "assignments")
    assert reviewed[0].startswith('drop it (DROP ROLE "orders-api", as the server\'s Entra administrator)')
    assert reviewed[1].startswith('revoke it (REVOKE "pg_write_all_data" FROM "orders-api")')


def test_a_refused_sign_in_and_a_refused_read_are_findings_in_postgresqls_words() -> None:
    refused = Server(set(), refuse_sign_in='password authentication failed for user "orders-api"')
    verdict, signed_in, _extras = check({"pg-orders": ["pg_read_all_data"]}, refused)
    [finding] = verdict.findings
    assert signed_in == 0
    assert finding.message.endswith(
        "PostgreSQL refused the workload's sign-in as orders-api (password authentication "
        'failed for user "orders-api")'
    )
    verdict, signed_in, _extras = check(
        {"pg-orders": ["pg_read_all_data"]}, Server({"pg_read_all_data"}, refuse_read=True)
    )
    [finding] = verdict.findings
    assert "PostgreSQL refuses it (42501: permission denied for table orders)" in finding.message
