# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): database roles on PostgreSQL flexible servers, the batch's
fourth grant kind.

A workload declares, in the same ``roles`` list, ``{scope: <flexible server id>, database: orders, database_roles:
[pg_read_all_data]}``: a role of its own on the server (``database_user``, default the workload's name) mapped to its
principal, a member of exactly those roles; it logs in to ``orders`` with its Entra token as the password. What the
role may do is the roles' business (the application's owner grants them): this collection grants membership, never
privileges on objects.

Each server named is read once (``_azure_postgres.read_server``), whatever the number of workloads. Refused before
any write: a server that does not exist, one whose Entra authentication is off or whose Entra administrators do not
include this run's principal (unless ``database_admin_name`` lets the run set them), a database or a role the server
does not have, and a ``database_user`` taken by a role mapped to another principal (or to none). A role mapped to the
principal already is adopted under its own name and never dropped; the one this collection makes carries its mark
and goes with the identity (teardown) or when no longer declared (prune).
"""

from __future__ import annotations

import threading
from typing import Any

from ._azure_batch_reads import PENDING, Batch, Reads, Resolved
from ._azure_postgres import (
    DatabaseClient,
    PostgresApi,
    ServerState,
    ensure_database_role,
    ours,
    read_server,
    remove_database_role,
    role_of,
    server_key,
    set_up_server,
)
from ._errors import ValidationError
from ._ids import parse_scope, short_scope
from ._inventory import WorkloadSpec
from ._inventory_fields import DatabaseRoleSpec
from ._ownership import role_digest
from ._results import DatabaseRoleRow, PrunedDatabaseRole, RoleAssignmentRow

# What an operator's identity records of what this collection did on a server (beside its role assignments): the role
# it made, and each membership it granted.
LOGIN_RECORD, MEMBERSHIP_RECORD = "postgres-role", "postgres-member"


def grant_key(server: str, role: str | None) -> str:
    """A principal's grant on a server: a membership (``role``), or its database role itself (None)."""
    return f"{server_key(server)}|{role or ''}"


class DatabaseRoles:
    """Database roles of the batch's principals on PostgreSQL flexible servers (identities' and applications')."""

    report_key = "database_roles"

    def __init__(self, api: PostgresApi | None, client: DatabaseClient | None) -> None:
        self.api = api
        self.client = client
        self._listing = threading.Lock()
        self._setting = threading.Lock()
        self._admin_name: str | None = None

    # -- reading ------------------------------------------------------------------------------------
    def read(self, batch: Batch, reads: Reads) -> None:
        """Each server the workloads name, once; every server of the subscription when the run needs them all."""
        self._admin_name = batch.database_admin_name
        named = sorted({spec.server for w in batch.converged_workloads for spec in w.database_roles}, key=str.lower)
        if named and (self.api is None or self.client is None):
            raise ValidationError(
                [f"cluster {batch.cluster}: PostgreSQL flexible servers are named, and no client reads them"]
            )
        if named and self.wants_all(batch):
            self.all_servers(batch, reads)
        for server in named:
            self._server(reads, server)
        if batch.state == "absent":
            self._refuse_unreadable(batch, reads)

    def _refuse_unreadable(self, batch: Batch, reads: Reads) -> None:
        """Teardown of a workload whose server this run cannot read would leave its role there unseen: refused
        before any change, with what to set (teardown sets nothing up)."""
        problems = []
        for workload in batch.workloads:
            for spec in workload.database_roles:
                state = reads.postgres_servers.get(server_key(spec.server))
                problem = self._sign_in_problem(batch, state, may_set=False) if state is not None else None
                if problem:
                    where = f"cluster {batch.cluster}: workload '{workload.name}': roles[{spec.position}]: scope"
                    problems.append(f"{where}: {problem}; its database role cannot be removed")
        if problems:
            raise ValidationError(problems)

    def _server(self, reads: Reads, server: str) -> ServerState | None:
        key = server_key(server)
        if key not in reads.postgres_servers and self.api is not None and self.client is not None:
            reads.postgres_servers[key] = read_server(self.api, self.client, server)
        return reads.postgres_servers.get(key)

    # -- before any write ---------------------------------------------------------------------------
    def check(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: Resolved,
        problems: list[str],
        principal: str | None,
    ) -> None:
        """Each server there, this run able to sign in to it as its Entra administrator, each database and role there,
        and the workload's role name free for its principal."""
        del resolved  # no ARM role grants access to a database's data
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        for spec in workload.database_roles:
            at = f"{where}: roles[{spec.position}]"
            state = reads.postgres_servers.get(server_key(spec.server))
            if state is None:
                problems.append(f"{at}: scope: PostgreSQL flexible server {spec.server} does not exist")
                continue
            problem = self._sign_in_problem(batch, state, may_set=True)
            if problem:
                problems.append(f"{at}: scope: {problem}")
                continue
            if state["roles"] is None or state["databases"] is None:
                continue  # the run makes its principal the server's administrator first: nothing of it is read yet
            if spec.database not in state["databases"]:
                problems.append(
                    f"{at}: database: {spec.database} does not exist on server {state['name']} (its databases: "
                    f"{', '.join(state['databases'])})"
                )
            missing = [r for r in spec.roles if r not in state["roles"]]
            if missing:
                problems.append(
                    f"{at}: database_roles: {', '.join(missing)}: no such role on server {state['name']} (grant an "
                    "existing role: one the application's owner made, or a predefined one such as pg_read_all_data)"
                )
            problems.extend(
                f"{at}: database_user: {p}" for p in self._name_problems(batch, workload, spec, principal, state)
            )

    def _sign_in_problem(self, batch: Batch, state: ServerState, may_set: bool) -> str | None:
        """Why this run cannot sign in to the server as its Entra administrator (None: it can, or, ``may_set``,
        will set itself up as one with database_admin_name)."""
        if state["admin_role"] and state["unreachable"]:
            return (
                f"PostgreSQL flexible server {state['name']} did not let this run in as its Entra administrator "
                f"{state['admin_role']}: {state['unreachable']}"
            )
        if state["admin_role"] or (may_set and batch.database_admin_name):
            return None
        me = self.client.principal()[0] if self.client is not None else "<this run's principal>"
        group = parse_scope(state["id"]).resource_group
        admin = (
            f"az postgres flexible-server microsoft-entra-admin create --resource-group {group} --server-name "
            f"{state['name']} --object-id {me} --type ServicePrincipal --display-name <its name>"
        )
        if not state["entra"]:
            return (
                f"PostgreSQL flexible server {state['name']} does not take Microsoft Entra sign-ins: enable them (az "
                f"postgres flexible-server update --resource-group {group} --name {state['name']} "
                f"--microsoft-entra-auth Enabled), make this run's principal an Entra administrator ({admin}), or set "
                "database_admin_name to let a rollout do both"
            )
        return (
            f"this run's principal ({me}) is not a Microsoft Entra administrator of PostgreSQL flexible server "
            f"{state['name']}, which only they may make database roles on: add it ({admin}), or set "
            "database_admin_name to let a rollout add it"
        )

    @staticmethod
    def _name_problems(
        batch: Batch, workload: WorkloadSpec, spec: DatabaseRoleSpec, principal: str | None, state: ServerState
    ) -> list[str]:
        """The workload's role name taken: by a role mapped to another principal (or to none), or by another workload
        of the cluster on the same server."""
        found: list[str] = []
        mapped = role_of(state, principal) if principal and principal != PENDING else None
        if mapped is None and spec.user in (state["roles"] or {}):
            owner = next((oid for oid, role in (state["principals"] or {}).items() if role == spec.user), None)
            whose = f"mapped to another principal ({owner})" if owner else "not mapped to any Entra principal"
            found.append(
                f"{spec.user}: a role of that name exists on server {state['name']}, {whose}: give the workload "
                "another database_user"
            )
        for other in batch.workloads:
            if other.name == workload.name:
                continue
            if any(s.server.lower() == spec.server.lower() and s.user == spec.user for s in other.database_roles):
                found.append(f"{spec.user}: workload '{other.name}' names the same role on server {state['name']}")
        return found

    # -- writing ------------------------------------------------------------------------------------
    def ensure(
        self,
        workload: WorkloadSpec,
        principal: str,
        reads: Reads,
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any]],
        exact: bool,
        recorded: set[str] | frozenset[str] = frozenset(),
    ) -> list[DatabaseRoleRow]:
        """The principal's role on each server named, a member of the roles declared there (one role per server:
        its entries' roles together). More memberships are prune's business (``remove``), not this."""
        del exact, recorded
        seen, planned = sides
        rows: list[DatabaseRoleRow] = []
        for server in sorted({s.server for s in workload.database_roles}, key=str.lower):
            specs = [s for s in workload.database_roles if s.server.lower() == server.lower()]
            state = reads.postgres_servers.get(server_key(server))
            if state is None or self.client is None:  # check refused the plan: not reached
                raise ValidationError([f"roles[{specs[0].position}]: server {server} was not read"])
            notes = self._set_up(state, check_mode, self._admin_name)
            grants = list(dict.fromkeys(r for s in specs for r in s.roles))
            if principal == PENDING or state["roles"] is None:
                # Its principal, or this run's way in, does not exist yet: all of it is to be made.
                before, after, action, granted = None, specs[0].user, "created", grants
            else:
                outcome = ensure_database_role(self.client, state, principal, specs[0].user, grants, check_mode)
                before = outcome.before
                after = outcome.after["user"] if outcome.after else specs[0].user
                action = outcome.action
                granted = [g for g in grants if outcome.before is None or g not in outcome.before["member_of"]]
            adopted = before is not None and not before["ours"]
            if adopted and after != specs[0].user:
                notes.append(f"its principal's role on {state['name']} is {after} (adopted): database_user not used")
            for spec in specs:
                mine = [g for g in granted if g in spec.roles]
                row_action = action if action in ("created", "unchanged") else ("updated" if mine else "unchanged")
                line = diff_line(after, state["name"], spec.database, list(spec.roles))
                if before is not None and not mine:
                    seen[self.report_key].append(line)
                elif before is not None:
                    held = [r for r in spec.roles if r in before["member_of"]]
                    seen[self.report_key].append(diff_line(after, state["name"], spec.database, held))
                planned[self.report_key].append(line)
                rows.append(
                    {
                        "server": state["id"],
                        "database": spec.database,
                        "user": after,
                        "roles": list(spec.roles),
                        "granted": mine,
                        "action": row_action,
                        "adopted": adopted,
                        "notes": list(notes),
                    }
                )
                notes = []
        return rows

    def _set_up(self, state: ServerState, check_mode: bool, name: str | None) -> list[str]:
        """Where the inventory names ``database_admin_name``: the server's Entra sign-ins enabled and this run's
        principal made its administrator (once per server and run), then its roles read. Notes of what it did."""
        if name is None or (state["admin_role"] and state["entra"]) or self.api is None or self.client is None:
            return []
        with self._setting:  # the first workload on the server sets it up; the others find it done
            if state["admin_role"] and state["entra"]:
                return []
            return set_up_server(self.api, self.client, state, name, check_mode)

    def remove(
        self,
        batch: Batch,
        principal_id: str | None,
        label: str,
        reads: Reads,
        check_mode: bool,
        keep: set[str] | frozenset[str] = frozenset(),
        only: set[str] | None = None,
    ) -> list[PrunedDatabaseRole]:
        """The principal's memberships on every server read but those in ``keep`` (or ``only`` those), revoked, and its
        role dropped, where this collection made the role and nothing of it is kept; on a role an operator made, only
        ``only`` (what the identity's record says this collection granted)."""
        if not principal_id or principal_id == PENDING or self.client is None:
            return []
        servers = self.all_servers(batch, reads) if only is None else dict(reads.postgres_servers)
        removed: list[PrunedDatabaseRole] = []
        for key, state in sorted(servers.items()):
            if state is None or state["roles"] is None:
                continue
            name = role_of(state, principal_id)
            if name is None:
                continue
            held = state["roles"][name]["member_of"] if name in state["roles"] else []
            if only is not None:
                revoke = [g for g in held if grant_key(key, g) in only]
                drop = grant_key(key, None) in only
            elif ours(state, name):
                revoke = [g for g in held if grant_key(key, g) not in keep]
                drop = not any(k.startswith(key + "|") for k in keep)
            else:
                # A role an operator made: what it holds cannot be told apart from what this collection granted
                # (no record but on an operator's identity, ``only``): it is left as it is.
                continue
            outcome = remove_database_role(self.client, state, principal_id, revoke, drop, check_mode)
            if outcome.action == "deleted":
                removed.append(
                    {
                        "identity": label,
                        "server": state["id"],
                        "user": name,
                        "roles": revoke,
                        "dropped": outcome.after is None,
                    }
                )
        return removed

    @staticmethod
    def removed_rows(gone: list[PrunedDatabaseRole], notes: list[str]) -> list[DatabaseRoleRow]:
        return [
            {
                "server": g["server"],
                "database": "",
                "user": g["user"],
                "roles": g["roles"],
                "granted": [],
                "action": "deleted",
                "adopted": False,
                "notes": [*notes, *(["its role dropped"] if g["dropped"] else [])],
            }
            for g in gone
        ]

    @staticmethod
    def diff_lines(gone: list[PrunedDatabaseRole]) -> list[str]:
        return [
            f"{g['user']} @ {short_scope(g['server'])}: member of {', '.join(g['roles']) or '(none)'}"
            + (" (dropped)" if g["dropped"] else "")
            for g in gone
        ]

    @staticmethod
    def to_record(rows: list[DatabaseRoleRow]) -> list[RoleAssignmentRow]:
        """What this run made for an operator's identity: its role (when made) and each membership granted."""
        records: list[RoleAssignmentRow] = []
        for row in rows:
            kinds = ([LOGIN_RECORD] if row["action"] == "created" else []) + [
                f"{MEMBERSHIP_RECORD}:{g}" for g in row["granted"]
            ]
            records += [
                {
                    "role": None,
                    "role_definition_guid": kind,
                    "scope": row["server"],
                    "name": None,
                    "action": "created",
                    "adopted": False,
                    "notes": [],
                }
                for kind in kinds
            ]
        return records

    @staticmethod
    def declared(workload: WorkloadSpec) -> list[Any]:
        return list(workload.database_roles)

    @staticmethod
    def declared_keys(workload: WorkloadSpec, reads: Reads) -> set[str]:
        del reads
        keys = {grant_key(s.server, None) for s in workload.database_roles}
        return keys | {grant_key(s.server, r) for s in workload.database_roles for r in s.roles}

    def made_here(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, principal: str | None, recorded: set[str]
    ) -> set[str]:
        """Of the workload's declared grants, those the operator's identity records as made here (the role, each
        membership), that no other cluster sharing it declares; and the role itself wherever it carries the mark."""
        theirs = set().union(*(self.declared_keys(other, reads) for _peer, other in batch.sharing(workload)))
        made = set()
        for key in self.declared_keys(workload, reads) - theirs:
            server, _bar, role = key.partition("|")
            scope = parse_scope(server).key
            if role_digest(scope, f"{MEMBERSHIP_RECORD}:{role}" if role else LOGIN_RECORD) in recorded:
                made.add(key)
            state = reads.postgres_servers.get(server)
            name = role_of(state, principal) if state is not None and principal else None
            if not role and state is not None and name is not None and ours(state, name):
                made.add(key)
        return made

    def wants_all(self, batch: Batch) -> bool:
        """Whether this run looks at every server of the subscription (prune, teardown, verification)."""
        return self.in_use(batch) and (batch.prune or batch.state == "absent" or batch.read_only)

    def in_use(self, batch: Batch) -> bool:
        """Whether this cluster's list declares database roles: only then are other servers looked at."""
        return any(w.database_roles for w in batch.workloads)

    def all_servers(self, batch: Batch, reads: Reads) -> dict[str, ServerState | None]:
        """Every flexible server of the subscription (one list, then each read once per run)."""
        with self._listing:
            if not reads.all_postgres_read and self.api is not None:
                for server in self.api.list_servers(batch.subscription_id):
                    self._server(reads, server)
                reads.all_postgres_read = True
        return {k: v for k, v in reads.postgres_servers.items() if v is not None}


def diff_line(user: str, server: str, database: str, roles: list[str]) -> str:
    """A database role as ``--diff`` shows it."""
    return f"{user} @ {server}/{database}: member of {', '.join(roles) or '(none)'}"
