# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): verification of database roles on PostgreSQL flexible
servers, on the server itself.

Each declared entry is checked as the server holds it (read by the rollout's reads as its Entra administrator: the
role mapped to the workload's principal, its memberships), then proven as the workload: it signs in to the declared
database with its own Entra token (``sslmode=verify-full``), PostgreSQL says it is a member of each declared role,
and, for each, one harmless read that role allows (``SELECT 1 FROM <a table it may read> LIMIT 0``: the privilege is
checked, no row is read). The access review lists memberships (and roles on other servers) it holds beyond the
declared ones. A refusal is a finding in PostgreSQL's own words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._azure_batch_reads import Reads
from ._azure_postgres import DatabaseClient, DatabaseSession, ServerState, quoted, role_of, server_key
from ._errors import DatabaseError
from ._inventory import WorkloadSpec
from ._inventory_fields import DatabaseRoleSpec
from ._verify_checks import rerun
from ._verify_findings import Verdict

# A table (or view) the role may read, outside PostgreSQL's own schemas: what the harmless read is made on.
READABLE = (
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'v', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%%' AND pg_catalog.has_table_privilege(%s, c.oid, 'SELECT') "
    "ORDER BY 1, 2 LIMIT 1"
)


class DatabaseLogins:
    """One workload's database roles, checked as the servers hold them and proven by signing in as it."""

    def __init__(self, reads: Reads, cluster: str, connect: Callable[..., Any] | None = None) -> None:
        self.reads, self.cluster, self.connect = reads, cluster, connect

    def check(
        self, principal_id: str, name: str, workload: WorkloadSpec, place: tuple[int, Any], verdict: Verdict
    ) -> int:
        """Each declared membership as held (its place in ``verdict.roles`` from ``place``'s first, with the
        workload's credential), then a sign-in per entry; how many databases let the workload in."""
        index, credential = place
        signed_in = 0
        for spec in workload.database_roles:
            state = self.reads.postgres_servers.get(server_key(spec.server))
            where = f"database role {spec.user} @ {spec.server.rsplit('/', 1)[-1]}/{spec.database}"
            user = self._held(principal_id, name, spec, state, (index, where), verdict)
            if state is not None and user is not None:
                # What the server holds is proven as the workload (all of it, when the server could not be read).
                rows = verdict.roles[index : index + len(spec.roles)]
                held = [r for r, row in zip(spec.roles, rows, strict=True) if row["granted"] is not False]
                signed_in += self._sign_in(credential, state, user, (spec, held), where, verdict)
            index += len(spec.roles)
        return signed_in

    def _held(
        self,
        principal_id: str,
        name: str,
        spec: DatabaseRoleSpec,
        state: ServerState | None,
        place: tuple[int, str],
        verdict: Verdict,
    ) -> str | None:
        """The role the server maps to the principal (None, and a finding, when there is none or no server), its
        declared memberships marked granted or not as the server holds them."""
        first, where = place
        rows = verdict.roles[first : first + len(spec.roles)]
        if state is None:
            for row in rows:
                row["granted"] = False
            verdict.find("permissions", f"{where}: the server does not exist", "correct the workload's roles")
            return None
        if state["roles"] is None:  # not readable as its administrator: the sign-in alone tells
            return spec.user
        user = role_of(state, principal_id)
        if user is None:
            for row in rows:
                row["granted"] = False
            verdict.find(
                "permissions",
                f"{where}: server {state['name']} maps no role to {name}'s principal ({principal_id})",
                rerun(self.cluster, "it makes the role"),
            )
            return None
        held = state["roles"][user]["member_of"] if user in state["roles"] else []
        for row, role in zip(rows, spec.roles, strict=True):
            row["granted"] = role in held
        missing = [r for r in spec.roles if r not in held]
        if missing:
            verdict.find(
                "permissions",
                f"{where}: {user} is not a member of {', '.join(missing)} on server {state['name']}",
                rerun(self.cluster, "it grants the membership"),
            )
        return user

    def _sign_in(
        self,
        credential: Any,
        state: ServerState,
        user: str,
        declared: tuple[DatabaseRoleSpec, list[str]],
        where: str,
        verdict: Verdict,
    ) -> int:
        """As the workload: signed in to the database, a member of each role held, one read each of them allows."""
        spec, roles = declared
        what = f"{where}, on the server itself"
        try:
            with DatabaseClient(credential, self.connect).session(state["host"], user, spec.database) as session:
                for role in roles:
                    problem = _prove(session, role)
                    if problem:
                        verdict.find("permissions", f"{what}: {problem}", rerun(self.cluster, "it grants the role"))
        except DatabaseError as exc:
            verdict.find(
                "permissions",
                f"{what}: PostgreSQL refused the workload's sign-in as {user} ({exc.message})",
                "a new role or a server's Entra setting can take a minute to apply; check the server's firewall (the "
                "machine the playbook runs on must reach it on 5432) and that the role is mapped to this principal",
            )
            return 0
        return 1

    def extras(self, principal_id: str, name: str, workload: WorkloadSpec, verdict: Verdict) -> int:
        """The access review on the servers read: memberships the principal's role holds beyond the declared ones,
        and its roles on servers the workload declares none on. How many were found."""
        declared: dict[str, set[str]] = {}
        for spec in workload.database_roles:
            declared.setdefault(server_key(spec.server), set()).update(spec.roles)
        found = 0
        for key, state in sorted(self.reads.postgres_servers.items()):
            user = role_of(state, principal_id) if state is not None else None
            if state is None or user is None or state["roles"] is None:
                continue
            held = state["roles"][user]["member_of"] if user in state["roles"] else []
            if key not in declared:
                found += 1
                verdict.find(
                    "assignments",
                    f"{name} holds database role {user} on PostgreSQL flexible server {state['name']}, which the "
                    "workload does not declare",
                    f"drop it (DROP ROLE {quoted(user)}, as the server's Entra administrator) or declare it in the "
                    "workload's roles; verify removes nothing",
                )
                continue
            for role in (r for r in held if r not in declared[key]):
                found += 1
                verdict.find(
                    "assignments",
                    f"{name}'s database role {user} on server {state['name']} is a member of {role}, which the "
                    "workload does not declare",
                    f"revoke it (REVOKE {quoted(role)} FROM {quoted(user)}) or declare it in the workload's "
                    "database_roles; verify removes nothing",
                )
        return found


def _prove(session: DatabaseSession, role: str) -> str | None:
    """Why the signed-in workload is not shown to hold ``role`` (None: PostgreSQL says it does, and let it read)."""
    try:
        member = session.rows("SELECT pg_catalog.pg_has_role(current_user, %s, 'MEMBER')", (role,))
        if not member or not member[0][0]:
            return f"PostgreSQL says the workload's role is not a member of {role}"
        table = session.rows(READABLE, (role,))
        if table:
            schema, relation = table[0]
            session.rows(f"SELECT 1 FROM {quoted(schema)}.{quoted(relation)} LIMIT 0")
    except DatabaseError as exc:
        return f"PostgreSQL refuses it ({exc.code}: {exc.message})"
    return None
