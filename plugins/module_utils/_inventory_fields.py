# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the checks of one workload's fields.

Each appends every problem it finds to ``problems``, naming the field; ``_inventory`` runs them over
the whole list, so one run reports every mistake at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._ids import InvalidScope, is_guid, parse_role, parse_scope
from ._limits import (
    ACCESS_ADMIN_ROLES,
    BROAD_ROLES,
    COSMOS_ACCOUNT_TYPE,
    COSMOS_BUILT_IN_ROLES,
    FIC_FIELD_MAX,
    FICS_PER_IDENTITY,
    KEY_VAULT_PERMISSIONS,
    KEY_VAULT_TYPE,
    POSTGRES_NAME_MAX,
    POSTGRES_SERVER_TYPE,
    PRIVILEGED_DATABASE_ROLES,
    PRIVILEGED_SCOPE_KINDS,
    TOKEN_EXPIRATION,
)
from ._ownership import default_application_unique_name

UNIQUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


@dataclass(frozen=True)
class AccessPolicySpec:
    """A Key Vault access policy entry for the workload's principal, declared in ``roles`` (``position`` there)."""

    vault: str  # the vault's resource id
    permissions: dict[str, tuple[str, ...]]  # kind -> permissions, as Key Vault spells them, sorted
    position: int


@dataclass(frozen=True)
class CosmosRoleSpec:
    """A Cosmos DB SQL role assignment for the workload's principal, declared in ``roles`` (``position`` there)."""

    account: str  # the account's resource id
    role: str  # a SQL role definition's roleName, GUID or id
    scope: str  # the account, or ``<account>/dbs/<db>[/colls/<container>]``
    position: int


def cosmos_account_above(scope: str) -> str | None:
    """The Cosmos DB account a scope is or is under, in any form (ARM's ``sqlDatabases/...`` or Cosmos DB's own)."""
    parts = scope.strip("/").split("/")
    if len(parts) < 8 or "/".join(parts[5:7]).lower() != COSMOS_ACCOUNT_TYPE.lower():
        return None
    return "/" + "/".join(parts[:8])


def cosmos_account_of(scope: str) -> str | None:
    """The Cosmos DB account a scope is, or is under in Cosmos DB's own form (``/dbs/<db>[/colls/<container>]``)."""
    account = cosmos_account_above(scope)
    below = scope.strip("/").split("/")[8:]
    kinds = [p.lower() for p in below[0::2]]
    cosmos_form = len(below) in (0, 2, 4) and kinds == ["dbs", "colls"][: len(below) // 2] and all(below)
    return account if cosmos_form else None


def is_built_in(role: str) -> bool:
    """Whether a declared role names one of Cosmos DB's built-in SQL roles (by name, GUID or id)."""
    wanted = role.strip().lower().rstrip("/")
    guid = wanted.rsplit("/", 1)[-1] if "/sqlroledefinitions/" in wanted else wanted
    return guid in COSMOS_BUILT_IN_ROLES or wanted in {n.lower() for n in COSMOS_BUILT_IN_ROLES.values()}


def cosmos_path_problem(scope: str) -> str | None:
    """Why a scope under a Cosmos DB account in Cosmos DB's own form (``dbs``, ``colls``) is not one: a database
    and a container each need a name, in that order, and nothing below a container."""
    below = {p.lower() for p in scope.strip("/").split("/")[8:]}
    if cosmos_account_above(scope) is None or not {"dbs", "colls"} & below or cosmos_account_of(scope) is not None:
        return None
    return (
        f"{scope} is not a Cosmos DB SQL role's scope: the account's id, or it followed by /dbs/<database> or "
        "/dbs/<database>/colls/<container>"
    )


def cosmos_by_form(role: str, scope: str) -> bool:
    """Whether a ``roles`` entry is a Cosmos DB SQL role assignment by its form alone: a scope under an account in
    Cosmos DB's own form (ARM has no such scope), or a role that is a SQL role definition's id or a built-in one's
    name or GUID. A custom SQL role named at the account itself is told from an ARM role by the account's roles."""
    if cosmos_account_of(scope) is None:
        return False
    return "/dbs/" in scope.lower() or "/sqlroledefinitions/" in role.lower() or is_built_in(role)


def cosmos_entry_problems(role: str, scope: str, item: dict[str, Any], at: str, problems: list[str]) -> None:
    """What a Cosmos DB SQL role assignment may not have (it has no condition or description)."""
    for key in ("condition", "condition_version", "description"):
        if item.get(key) is not None:
            problems.append(
                f"{at}: {key}: {role} at {scope} is a Cosmos DB SQL role assignment, which has no {key} (Cosmos DB "
                "keeps its own role system for data: only a role and a scope)"
            )


def vault_of(scope: str) -> str | None:
    """The scope when it is a key vault's id (``.../providers/Microsoft.KeyVault/vaults/<name>``), else None."""
    parts = scope.strip("/").split("/")
    kind = "/".join(parts[5:7]).lower() if len(parts) == 8 else ""
    return "/" + "/".join(parts) if kind == KEY_VAULT_TYPE.lower() else None


def access_policy_entry(item: dict[str, Any], position: int, at: str, problems: list[str]) -> AccessPolicySpec | None:
    """A ``roles`` entry with ``access_policy``: a vault's id as its scope, and known permissions per kind."""
    before = len(problems)
    for key in ("role", "condition", "condition_version", "description"):
        if item.get(key) is not None:
            problems.append(
                f"{at}: {key}: not with access_policy (an access policy entry is a vault's own grant, not a role "
                "assignment: give either a role or an access_policy)"
            )
    scope_text = item.get("scope")
    try:
        scope = parse_scope(str(scope_text))
    except InvalidScope as exc:
        problems.append(f"{at}: scope: {exc}")
        return None
    vault = vault_of(scope.path)
    if vault is None:
        problems.append(
            f"{at}: scope: an access_policy is given on a key vault: "
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>, "
            f"not {scope.path}"
        )
    raw = item.get("access_policy")
    if not isinstance(raw, dict) or not raw:
        problems.append(
            f"{at}: access_policy: must be a mapping of {', '.join(KEY_VAULT_PERMISSIONS)} to lists of permissions"
        )
        return None
    permissions: dict[str, tuple[str, ...]] = {}
    for kind, values in raw.items():
        known = {p.lower(): p for p in KEY_VAULT_PERMISSIONS.get(str(kind), ())}
        if not known:
            problems.append(
                f"{at}: access_policy: {kind}: unknown kind (expected one of {', '.join(KEY_VAULT_PERMISSIONS)})"
            )
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(f"{at}: access_policy: {kind}: must be a list of permissions")
            continue
        unknown = [v for v in values if v.lower() not in known]
        if unknown:
            problems.append(
                f"{at}: access_policy: {kind}: {', '.join(unknown)}: not a Key Vault permission for {kind} (one of "
                f"{', '.join(KEY_VAULT_PERMISSIONS[str(kind)])})"
            )
            continue
        if values:
            permissions[str(kind)] = tuple(sorted({known[v.lower()] for v in values}, key=str.lower))
    if not permissions and len(problems) == before:
        problems.append(f"{at}: access_policy: grants nothing (give at least one permission, or remove the entry)")
    if len(problems) != before or vault is None:
        return None
    return AccessPolicySpec(vault, permissions, position)


@dataclass(frozen=True)
class DatabaseRoleSpec:
    """A database role for the workload's principal on an Azure Database for PostgreSQL flexible server, made a member
    of existing roles, declared in ``roles`` (``position`` there) with the database the workload connects to."""

    server: str  # the flexible server's resource id
    database: str  # where the workload connects (verify reads there)
    roles: tuple[str, ...]  # the existing roles it is a member of, in the order declared
    user: str  # its role's name: database_user, or the workload's name
    position: int


DATABASE_ROLE_KEYS = ("database", "database_roles", "database_user")


def postgres_server_of(scope: str) -> str | None:
    """The flexible server a scope is (``.../providers/Microsoft.DBforPostgreSQL/flexibleServers/<name>``)."""
    parts = scope.strip("/").split("/")
    if len(parts) != 8 or "/".join(parts[5:7]).lower() != POSTGRES_SERVER_TYPE.lower():
        return None
    return "/" + "/".join(parts)


def _postgres_name(value: Any) -> str | None:
    """Why a PostgreSQL name (a role's, a database's) is not one, or None."""
    if not isinstance(value, str) or not value or len(value.encode()) > POSTGRES_NAME_MAX:
        return f"must be a name of 1-{POSTGRES_NAME_MAX} bytes (got {value!r})"
    if "\0" in value or not value.isprintable():
        return f"must hold no control character (got {value!r})"
    return None


def database_role_entry(
    item: dict[str, Any], position: int, at: str, workload: str, allow_privileged: bool, problems: list[str]
) -> DatabaseRoleSpec | None:
    """A ``roles`` entry with ``database``: a flexible server's id as its scope, the database, the existing roles its
    database role is a member of, and that role's name (``database_user``, default the workload's name)."""
    before = len(problems)
    for key in ("role", "condition", "condition_version", "description", "access_policy"):
        if item.get(key) is not None:
            problems.append(
                f"{at}: {key}: not with database (a database role is the server's own grant, not a role assignment: "
                "give either a role or a database with its database_roles)"
            )
    try:
        scope = parse_scope(str(item.get("scope")))
        server = postgres_server_of(scope.path)
    except InvalidScope as exc:
        problems.append(f"{at}: scope: {exc}")
        server = None
    else:
        if server is None:
            problems.append(
                f"{at}: scope: a database role is given on an Azure Database for PostgreSQL flexible server: "
                f"/subscriptions/<id>/resourceGroups/<rg>/providers/{POSTGRES_SERVER_TYPE}/<name>, not {scope.path}"
            )
    database = item.get("database")
    problem = _postgres_name(database)
    if problem:
        problems.append(f"{at}: database: {problem}")
    raw_roles = item.get("database_roles")
    if not isinstance(raw_roles, list) or not raw_roles:
        problems.append(
            f"{at}: database_roles: must be a list of the existing roles it is granted, e.g. [pg_read_all_data]"
        )
        raw_roles = []
    for role in raw_roles:
        problem = _postgres_name(role)
        if problem:
            problems.append(f"{at}: database_roles: {problem}")
        elif not allow_privileged and role.lower() in PRIVILEGED_DATABASE_ROLES:
            problems.append(
                f"{at}: database_roles: {role} administers the server or reaches its files and programs: refused for "
                "a workload (set allow_privileged_roles to allow it)"
            )
    if len({str(r) for r in raw_roles}) != len(raw_roles):
        problems.append(f"{at}: database_roles: names a role twice")
    user = item.get("database_user", workload)
    problem = _postgres_name(user)
    if problem:
        problems.append(f"{at}: database_user: {problem}")
    elif str(user).lower().startswith("pg_"):
        problems.append(f"{at}: database_user: {user}: names starting with pg_ are PostgreSQL's own")
    if len(problems) != before or server is None:
        return None
    return DatabaseRoleSpec(server, str(database), tuple(str(r) for r in raw_roles), str(user), position)


def database_entry_problems(
    entry: DatabaseRoleSpec, earlier: list[DatabaseRoleSpec], at: str, problems: list[str]
) -> None:
    """One database role per server for a workload (its principal maps to one role there): a second entry on the
    same server names another database, under the same database_user."""
    for other in earlier:
        if other.server.lower() != entry.server.lower():
            continue
        if other.database == entry.database:
            problems.append(f"{at}: database: {entry.database} on {entry.server} is declared twice")
        elif other.user != entry.user:
            problems.append(
                f"{at}: database_user: {entry.user}, where roles[{other.position}] names {other.user} on the same "
                "server: a principal has one database role per server"
            )


@dataclass
class Seen:
    names: dict[str, int] = field(default_factory=dict)
    accounts: dict[tuple[str, str], str] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    controllers: dict[tuple[str, str, str], str] = field(default_factory=dict)


def privileged_problem(role: str, scope_kind: str, scope: str, at: str) -> str | None:
    """Owner and the like anywhere (a workload could grant itself anything), Contributor at broad scopes."""
    ref = parse_role(role)

    def named(table: dict[str, str]) -> str | None:
        found = table.get(ref.guid) if ref.guid else None
        return found or next((n for n in table.values() if n.lower() == role.lower()), None)

    admin = named(ACCESS_ADMIN_ROLES)
    if admin:
        return (
            f"{at}: role: {admin} lets the workload grant roles, itself included: refused for a workload identity at "
            f"any scope ({scope}) (set allow_privileged_roles to allow it)"
        )
    broad = named(BROAD_ROLES)
    if broad and scope_kind in PRIVILEGED_SCOPE_KINDS:
        return (
            f"{at}: role: {broad} at {scope_kind} scope {scope} is refused for a workload identity "
            "(set allow_privileged_roles to allow it)"
        )
    return None


def _subjects(raw: Any, subject: str, label: str, problems: list[str]) -> list[str]:
    extra = raw or []
    if not isinstance(extra, list) or not all(isinstance(s, str) and 0 < len(s) <= FIC_FIELD_MAX for s in extra):
        problems.append(f"{label}: extra_subjects: must be a list of subjects of 1-{FIC_FIELD_MAX} characters")
        extra = []
    subjects = [subject, *extra]
    if len(set(subjects)) != len(subjects):
        problems.append(f"{label}: extra_subjects: repeats a subject")
    if len(subjects) > FICS_PER_IDENTITY:
        problems.append(
            f"{label}: extra_subjects: {len(subjects)} federated credentials on one identity; "
            f"Azure allows {FICS_PER_IDENTITY}"
        )
    return subjects


def _token_expiration(raw: Any, label: str, problems: list[str]) -> int | None:
    if raw is None:
        return None
    low, high = TOKEN_EXPIRATION
    # ASCII digits only: str.isdigit() also takes superscripts and other scripts' digits, which int() refuses.
    if isinstance(raw, bool) or not re.fullmatch(r"[0-9]+", str(raw)) or not low <= int(raw) <= high:
        problems.append(f"{label}: token_expiration: must be seconds between {low} and {high} (got {raw!r})")
        return None
    return int(raw)


def _once(seen: Seen, key: str, what: str, workload: str, problems: list[str]) -> None:
    """One identity (or application) per workload."""
    if key.lower() in seen.identities:
        problems.append(
            f"{what} is already used by workload '{seen.identities[key.lower()]}' (one identity per workload)"
        )
    seen.identities[key.lower()] = workload


def _application(
    raw: dict[str, Any], label: str, cluster: str, namespace: str, name: str, seen: Seen, problems: list[str]
) -> tuple[str | None, str | None, str | None]:
    """(unique name, appId, display name) of an application workload."""
    for key in ("identity_name", "identity_resource_group", "tags"):
        if key in raw:
            problems.append(f"{label}: {key}: only for identity_type user_assigned")
    app_id, unique = raw.get("application_id"), raw.get("application_unique_name")
    display = raw.get("application_display_name")
    if app_id is not None:
        if unique is not None or display is not None:
            problems.append(
                f"{label}: application_id: an existing application is used as it is; "
                "give no application_unique_name or application_display_name with it"
            )
        if not isinstance(app_id, str) or not is_guid(app_id):
            problems.append(f"{label}: application_id: must be an application (client) id, a GUID (got {app_id!r})")
        _once(seen, f"app:{app_id}", f"{label}: application_id: application {app_id}", name, problems)
        return None, str(app_id), None
    unique = unique or default_application_unique_name(cluster, namespace, name)
    if not isinstance(unique, str) or not UNIQUE_NAME.fullmatch(unique):
        problems.append(f"{label}: application_unique_name: '{unique}' must be 1-120 letters, digits, '.', '_' and '-'")
    if display is not None and (
        not isinstance(display, str) or not display.strip() or len(display) > 256 or not display.isprintable()
    ):
        problems.append(f"{label}: application_display_name: must be 1-256 characters, none a control character")
    _once(seen, f"app:{unique}", f"{label}: application_unique_name: application {unique}", name, problems)
    return str(unique), None, str(display) if display else None
