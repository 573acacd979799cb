# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): database roles on Azure Database for PostgreSQL flexible
servers, and the engine that writes them.

A workload logs in to its database with an Entra token as the password, as a PostgreSQL role mapped to its principal's
object id. Making that role takes three things, each of which this module reads or does:

- ARM (``PostgresApi``): the server's Entra authentication (``authConfig.activeDirectoryAuth``) and its Microsoft Entra
  administrators (``flexibleServers/{server}/administrators/{objectId}``); this run's own principal must be one of
  them, and signs in as the role named after it (its ``principalName``).
- The server (``DatabaseClient``, psycopg, ``sslmode=verify-full``): as that administrator, with a token from the same
  Azure credential (no password anywhere). ``pgaadauth_list_principals`` maps roles to object ids; the role is made by
  ``pgaadauth_create_principal_with_oid(<role>, <object id>, 'service', false, false)``; its memberships are
  ``GRANT <role> TO <it>``.
- The mark: the role this collection makes carries the comment ``MARK`` (a role's comment is the server's, shared by
  every database), so that teardown and prune drop only roles made here. A role an operator made for the same object
  id is adopted as it is, and never dropped. :func:`ensure_database_role` and :func:`remove_database_role` are the
  only code that writes.

Each server is read once a run: two ARM reads (the server, its administrators) and one session with three queries
(the principals, every role with its memberships and comment, the databases), whatever the number of workloads.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

from ._azure_arm_rest import ArmRestClient
from ._azure_errors import azure_call
from ._errors import DatabaseError
from ._limits import POSTGRES_AUDIENCE, POSTGRES_SERVER_TYPE
from ._results import DatabaseRoleState, Outcome
from ._retry import RetryPolicy

API_VERSION = "2024-08-01"
# Sign-in answers worth another try (a server restarting or failing over, out of connection slots, a connection
# dropped), and the pauses between tries.
TRANSIENT = re.compile(
    r"the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)"
    r"|remaining connection slots|too many clients|server closed the connection unexpectedly|Connection refused"
    r"|Connection reset|timeout expired|could not receive data|SSL SYSCALL error",
    re.IGNORECASE,
)
SIGN_IN_BACKOFF = (1.0, 2.0, 4.0)
# What the engine asks of a server, in one transaction: ("create", role, object id), ("grant", role, member),
# ("revoke", role, member), ("drop", role).
Change = tuple[str, ...]
MARK = "made by workload_identity.aks for a workload's principal"


class RoleState(TypedDict):
    login: bool
    comment: str | None
    member_of: list[str]  # the roles it is a member of, by name, sorted


class ServerState(TypedDict):
    id: str
    name: str
    host: str  # its fullyQualifiedDomainName
    entra: bool  # Microsoft Entra authentication enabled
    admins: dict[str, str]  # its Microsoft Entra administrators: object id (lower) -> principalName
    # The role this run signs in as (its principal's administrator entry); None: it is not an administrator.
    admin_role: str | None
    # What the server holds, read as that administrator (None: not read, for want of one, or unreachable).
    principals: dict[str, str] | None  # object id (lower) -> the role mapped to it
    roles: dict[str, RoleState] | None
    databases: list[str] | None
    unreachable: str | None  # why the server could not be read, in its own words


def server_key(server_id: str) -> str:
    return server_id.rstrip("/").lower()


def quoted(name: str) -> str:
    """A PostgreSQL identifier, quoted (names here keep their case and may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def token_claims(token: str) -> dict[str, Any]:
    """A token's claims, unverified: this run's own token, read for its object id."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class PostgresApi:
    """ARM's side of flexible servers: the server, its Entra administrators; setting them when asked."""

    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.rest = ArmRestClient(client, API_VERSION, policy)

    def server(self, server_id: str) -> dict[str, Any] | None:
        return self.rest.get_or_none(server_id, "read PostgreSQL flexible server")

    def administrators(self, server_id: str) -> list[dict[str, Any]]:
        return list(self.rest.pages(f"{server_id}/administrators", "list PostgreSQL Entra administrators"))

    def list_servers(self, subscription_id: str) -> list[str]:
        path = f"/subscriptions/{subscription_id}/providers/{POSTGRES_SERVER_TYPE}"
        return [str(item["id"]) for item in self.rest.pages(path, "list PostgreSQL flexible servers")]

    def enable_entra(self, server_id: str) -> None:
        body = {"properties": {"authConfig": {"activeDirectoryAuth": "Enabled"}}}
        self.rest.send("PATCH", server_id, "enable Entra authentication on PostgreSQL flexible server", body)

    def add_administrator(self, server_id: str, object_id: str, name: str, tenant_id: str) -> None:
        body = {"properties": {"principalType": "ServicePrincipal", "principalName": name, "tenantId": tenant_id}}
        self.rest.send("PUT", f"{server_id}/administrators/{object_id}", "add PostgreSQL Entra administrator", body)


class DatabaseClient:
    """Sessions on flexible servers as this run's principal, with Entra tokens from its Azure credential."""

    def __init__(
        self, credential: Any, connect: Callable[..., Any] | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.credential = credential
        self._connect = connect
        self._sleep = sleep
        self._lock = threading.Lock()
        self._principal: dict[str, Any] | None = None

    def token(self) -> str:
        """An Entra token for the servers' audience (Entra's refusal leaves as AzureApiError, with its AADSTS code)."""
        scope = POSTGRES_AUDIENCE + "/.default"
        return str(
            azure_call("get a token for Azure Database for PostgreSQL", lambda: self.credential.get_token(scope)).token
        )

    def principal(self) -> tuple[str, str]:
        """This run's principal: (object id, tenant id), from its own token."""
        with self._lock:
            if self._principal is None:
                self._principal = token_claims(self.token())
        return str(self._principal.get("oid", "")).lower(), str(self._principal.get("tid", ""))

    @contextmanager
    def session(self, host: str, user: str, dbname: str = "postgres") -> Iterator[DatabaseSession]:
        """A connection as ``user`` with this run's token, over TLS checked against the server's name."""
        connect = self._connect or _psycopg_connect()
        # verify-full against the system's roots, unless libpq's environment names a bundle (PGSSLROOTCERT).
        roots = {} if os.environ.get("PGSSLROOTCERT") else {"sslrootcert": "system"}
        for attempt, pause in enumerate((*SIGN_IN_BACKOFF, None)):
            try:
                with translated(f"sign in to {host} as {user}"):
                    conn = connect(
                        host=host,
                        user=user,
                        password=self.token(),
                        dbname=dbname,
                        sslmode="verify-full",
                        connect_timeout=20,
                        autocommit=True,
                        application_name="workload_identity.aks",
                        **roots,
                    )
                break
            except DatabaseError as exc:
                # A server restarting, failing over or out of connection slots answers again shortly; a refused
                # token or role does not.
                if pause is None or not TRANSIENT.search(exc.message):
                    if attempt:
                        exc.message += f" (after {attempt + 1} attempts)"
                    raise
                self._sleep(pause)
        try:
            yield DatabaseSession(conn, host)
        finally:
            conn.close()


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """psycopg's errors as the collection's: its SQLSTATE as the code, its first line as the message."""
    try:
        yield
    except Exception as exc:  # pylint: disable=broad-exception-caught
        if type(exc).__module__.split(".", maxsplit=1)[0] != "psycopg":
            raise
        # libpq's words at sign-in are "connection to server at ... failed: FATAL:  <the server's>": the server's.
        text = " ".join(str(exc).split()).rsplit("FATAL:", maxsplit=1)[-1].strip() or type(exc).__name__
        code = getattr(exc, "sqlstate", None) or type(exc).__name__
        raise DatabaseError(text, code=code, operation=operation) from None


def _psycopg_connect() -> Callable[..., Any]:
    try:
        import psycopg  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise DatabaseError(
            "database roles need psycopg where the module runs: pip install 'psycopg[binary]'",
            code="MissingDependency",
            operation="sign in to a PostgreSQL flexible server",
        ) from exc
    return psycopg.connect


class DatabaseSession:
    """One connection to a server, as its Entra administrator: what the engine reads and writes through."""

    def __init__(self, conn: Any, host: str) -> None:
        self.conn = conn
        self.host = host

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with translated(f"read {self.host}"):
            return list(self.conn.execute(query, params).fetchall())

    def principals(self) -> dict[str, str]:
        rows = self.rows("SELECT objectid, rolname FROM pg_catalog.pgaadauth_list_principals(false)")
        return {str(oid).lower(): str(name) for oid, name in rows}

    def roles(self) -> dict[str, RoleState]:
        rows = self.rows(
            "SELECT r.rolname, r.rolcanlogin, pg_catalog.shobj_description(r.oid, 'pg_authid'), "
            "ARRAY(SELECT g.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid "
            "WHERE m.member = r.oid ORDER BY g.rolname) FROM pg_catalog.pg_roles r"
        )
        return {
            str(name): {"login": bool(login), "comment": comment, "member_of": [str(g) for g in groups or []]}
            for name, login, comment, groups in rows
        }

    def databases(self) -> list[str]:
        return [str(r[0]) for r in self.rows("SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate")]

    def apply(self, changes: list[Change]) -> None:
        """Changes in one transaction: a role is made with its mark and memberships, or not at all."""
        with translated(f"change roles on {self.host}"), self.conn.transaction():
            for verb, *args in changes:
                for statement, params in _statements(verb, args):
                    self.conn.execute(statement, params)


def read_server(api: PostgresApi, client: DatabaseClient, server_id: str) -> ServerState | None:
    """A server as this run needs it: None when ARM has no such server; its roles read only when this run's principal
    is one of its Entra administrators (and the server answers)."""
    found = api.server(server_id)
    if found is None:
        return None
    props = found.get("properties") or {}
    entra = (props.get("authConfig") or {}).get("activeDirectoryAuth") == "Enabled"
    admins = {
        str((a.get("properties") or {}).get("objectId") or a.get("name")).lower(): str(
            (a.get("properties") or {}).get("principalName") or ""
        )
        for a in (api.administrators(server_id) if entra else [])
    }
    me, _tenant = client.principal()
    state: ServerState = {
        "id": str(found.get("id") or server_id),
        "name": str(found.get("name") or server_id.rsplit("/", 1)[-1]),
        "host": str(props.get("fullyQualifiedDomainName") or ""),
        "entra": entra,
        "admins": admins,
        "admin_role": admins.get(me) if entra else None,
        "principals": None,
        "roles": None,
        "databases": None,
        "unreachable": None,
    }
    if state["admin_role"]:
        load_roles(client, state)
    return state


def load_roles(client: DatabaseClient, state: ServerState) -> None:
    """The server's principals, roles and databases, in one session as its administrator."""
    try:
        with client.session(state["host"], str(state["admin_role"])) as session:
            state["principals"] = session.principals()
            state["roles"] = session.roles()
            state["databases"] = session.databases()
    except DatabaseError as exc:
        state["unreachable"] = str(exc)


def role_of(state: ServerState, principal: str) -> str | None:
    """The role mapped to a principal on the server (None: none, or the server was not read)."""
    return (state["principals"] or {}).get(principal.lower())


def ours(state: ServerState, role: str) -> bool:
    """Whether the role is one this collection made (its comment is the mark)."""
    held = (state["roles"] or {}).get(role)
    return held is not None and held["comment"] == MARK


def ensure_database_role(
    client: DatabaseClient, state: ServerState, principal: str, user: str, grants: list[str], check_mode: bool
) -> Outcome[DatabaseRoleState]:
    """The principal's role on the server (the one mapped to it, else ``user``, made and marked) a member of each of
    ``grants`` (more memberships are left as they are). The state is updated as the server now is."""
    roles = state["roles"] if state["roles"] is not None else {}
    name = role_of(state, principal) or user
    held = roles.get(name)
    before: DatabaseRoleState | None = None
    if held is not None:
        before = {"server": state["id"], "user": name, "member_of": list(held["member_of"]), "ours": ours(state, name)}
    missing = [g for g in grants if held is None or g not in held["member_of"]]
    if not missing and held is not None:
        return Outcome(False, "unchanged", before, before)
    changes: list[Change] = [("create", name, principal)] if held is None else []
    changes += [("grant", g, name) for g in missing]
    if not check_mode:
        with client.session(state["host"], str(state["admin_role"])) as session:
            session.apply(changes)
    member_of = sorted({*(held["member_of"] if held else []), *missing})
    made = held is None or ours(state, name)
    after: DatabaseRoleState = {"server": state["id"], "user": name, "member_of": member_of, "ours": made}
    if not check_mode:
        comment = MARK if held is None else held["comment"]
        _apply(state, principal, name, {"login": True, "comment": comment, "member_of": member_of})
    return Outcome(True, "created" if held is None else "updated", before, after)


def remove_database_role(
    client: DatabaseClient, state: ServerState, principal: str, revoke: list[str], drop: bool, check_mode: bool
) -> Outcome[DatabaseRoleState]:
    """The principal's role on the server let go of: ``revoke`` its memberships, and with ``drop`` the role itself (only
    ever one this collection made: ``ours``). Nothing else of it is touched."""
    name = role_of(state, principal)
    held = (state["roles"] or {}).get(name or "")
    if name is None or held is None:
        return Outcome(False, "absent", None, None)
    before: DatabaseRoleState = {
        "server": state["id"],
        "user": name,
        "member_of": list(held["member_of"]),
        "ours": ours(state, name),
    }
    revoking = [g for g in revoke if g in held["member_of"]]
    dropping = drop and before["ours"]
    if not revoking and not dropping:
        return Outcome(False, "unchanged", before, before)
    changes: list[Change] = [("revoke", g, name) for g in revoking]
    if dropping:
        changes.append(("drop", name))
    if not check_mode:
        with client.session(state["host"], str(state["admin_role"])) as session:
            session.apply(changes)
    left = [g for g in held["member_of"] if g not in revoking]
    if not check_mode:
        _apply(state, principal, name, None if dropping else {**held, "member_of": left})
    after: DatabaseRoleState | None = None if dropping else {**before, "member_of": left}
    return Outcome(True, "deleted", before, after)


def set_up_server(
    api: PostgresApi, client: DatabaseClient, state: ServerState, name: str, check_mode: bool
) -> list[str]:
    """The server's Entra sign-ins enabled and this run's principal made its Entra administrator under ``name``, then
    its roles read (a real run); what was done, as notes. The only code that changes a server's Entra settings."""
    notes: list[str] = []
    me, tenant = client.principal()
    if not state["entra"]:
        notes.append(f"Microsoft Entra sign-ins enabled on PostgreSQL flexible server {state['name']}")
        if not check_mode:
            api.enable_entra(state["id"])
    if state["admin_role"] is None:
        notes.append(f"this run's principal ({me}) made an Entra administrator of {state['name']}, as {name}")
        if not check_mode:
            api.add_administrator(state["id"], me, name, tenant)
    if not check_mode:
        state["entra"], state["admin_role"] = True, name
        state["admins"][me] = name
        load_roles(client, state)
        if state["unreachable"]:
            raise DatabaseError(state["unreachable"], code="SignInFailed", operation=f"sign in to {state['host']}")
    return notes


def _apply(state: ServerState, principal: str, name: str, role: RoleState | None) -> None:
    """What was written, applied to the server as read (workloads converge in parallel, several on one server)."""
    with _APPLYING:
        if state["roles"] is not None:
            if role is None:
                state["roles"].pop(name, None)
            else:
                state["roles"][name] = role
        if state["principals"] is not None:
            if role is None:
                state["principals"].pop(principal.lower(), None)
            else:
                state["principals"][principal.lower()] = name


_APPLYING = threading.Lock()


def _statements(verb: str, args: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """A change as the SQL a server's Entra administrator runs for it."""
    if verb == "create":  # the role, mapped to the principal, with the mark (a role's comment is the server's)
        role, principal = args
        return [
            (
                "SELECT pg_catalog.pgaadauth_create_principal_with_oid(%s, %s, 'service', false, false)",
                (role, principal),
            ),
            (f"COMMENT ON ROLE {quoted(role)} IS {_literal(MARK)}", ()),
        ]
    if verb == "grant":
        return [(f"GRANT {quoted(args[0])} TO {quoted(args[1])}", ())]
    if verb == "revoke":
        return [(f"REVOKE {quoted(args[0])} FROM {quoted(args[1])}", ())]
    return [(f"DROP ROLE {quoted(args[0])}", ())]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
