# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the inventory's workload list, declared once.

:data:`WORKLOAD_FIELDS` (and :data:`ROLE_FIELDS`, :data:`CONTROLLER_FIELDS`) is the schema: the
modules validate with :func:`validate_workloads`, and the ``workloads`` doc fragment and the
``workloads`` role's argument_specs are checked against it by the unit tests. Both sides read the
same :class:`WorkloadSpec`: the Azure side its identity and roles, the Kubernetes side its
namespace, service account and pod controllers. Nothing here talks to a service: every problem is
found before the first request, each naming the cluster, the workload and the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._abac import condition_problem
from ._ids import InvalidScope, parse_scope
from ._inventory_fields import (
    DATABASE_ROLE_KEYS,
    AccessPolicySpec,
    CosmosRoleSpec,
    DatabaseRoleSpec,
    Seen,
    _application,
    _once,
    _subjects,
    _token_expiration,
    access_policy_entry,
    cosmos_account_of,
    cosmos_by_form,
    cosmos_entry_problems,
    cosmos_path_problem,
    database_entry_problems,
    database_role_entry,
    privileged_problem,
)
from ._limits import (
    IDENTITY_NAME,
    RESERVED_TAG_PREFIX,
    RESERVED_TAGS,
    TAG_NAME_FORBIDDEN,
    TAG_NAME_MAX,
    TAG_VALUE_MAX,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# ARM's rule for a resource group's name (Unicode letters and digits count as \w).
RESOURCE_GROUP_NAME = re.compile(r"[-\w.()]{0,89}[-\w()]")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Pod controllers a workload can bind to its service account; CronJob's pod template sits one level deeper.
CONTROLLER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
USER_ASSIGNED, APPLICATION = "user_assigned", "application"
IDENTITY_TYPES = (USER_ASSIGNED, APPLICATION)
# `workloads` was the first name of `controllers` (a workload listing "workloads" read badly).
DEPRECATED_ALIASES = {"workloads": "controllers"}
ALIAS_REMOVED_IN = "2.0.0"


@dataclass(frozen=True)
class Field:
    """One field of the schema: what the docs say and the validator enforces."""

    name: str
    type: str  # str, int, bool, list, dict
    required: bool
    description: str
    aliases: tuple[str, ...] = ()


WORKLOAD_FIELDS = (
    Field("name", "str", True, "The workload's name, a DNS label unique in the cluster."),
    Field("namespace", "str", True, "Its Kubernetes namespace (created if missing)."),
    Field("service_account", "str", True, "Its ServiceAccount (created if missing, else annotated)."),
    Field(
        "roles",
        "list",
        False,
        "Exactly the access it holds: role assignments (a role and a scope), Cosmos DB SQL role assignments (a SQL "
        "role at a Cosmos DB account, or its /dbs/<db>[/colls/<container>]), Key Vault access policies (a vault "
        "and an access_policy), and database roles on Azure Database for PostgreSQL (a flexible server, a database "
        "and its database_roles).",
    ),
    Field("identity_type", "str", False, "user_assigned (a managed identity, the default) or application."),
    Field("identity_name", "str", False, "The identity's name; default id-<cluster>-<namespace>-<name>."),
    Field("identity_resource_group", "str", False, "Where its identity lives; default the cluster's."),
    Field("application_unique_name", "str", False, "The app's unique name; default wi-<cluster>-<ns>-<name>."),
    Field("application_id", "str", False, "The appId of an existing app registration to use as it is."),
    Field("application_display_name", "str", False, "The display name of an app this collection makes."),
    Field("extra_subjects", "list", False, "More subjects its identity trusts from the same issuer."),
    Field("tags", "dict", False, "Extra tags for an identity this collection makes (one dropped is removed)."),
    Field("controllers", "list", False, "Pod controllers to bind, each a kind and a name.", ("workloads",)),
    Field("token_expiration", "int", False, "Lifetime of the projected token, 3600-86400 seconds."),
    Field("rebind", "bool", False, "Move a ServiceAccount an operator bound to another client id to this identity."),
    Field("teardown_adopted", "bool", False, "Teardown deletes its identity or app even if made elsewhere."),
)
ROLE_FIELDS = (
    Field(
        "role",
        "str",
        False,
        "A role name, GUID or role definition id; at a Cosmos DB account, one of its SQL roles' (required unless "
        "access_policy is given).",
    ),
    Field(
        "scope",
        "str",
        True,
        "A management group, subscription, resource group or resource id; for a Cosmos DB SQL role, the account's id, "
        "or it followed by /dbs/<db> or /dbs/<db>/colls/<container>.",
    ),
    Field("condition", "str", False, "An ABAC condition."),
    Field("condition_version", "str", False, "The condition's version: 2.0 (the default, and the only one)."),
    Field("description", "str", False, "The assignment's description."),
    Field(
        "access_policy",
        "dict",
        False,
        "Instead of a role, on a Key Vault that uses access policies (scope: the vault's id): the workload's entry, "
        "permissions per kind (keys, secrets, certificates, storage).",
    ),
    Field(
        "database",
        "str",
        False,
        "Instead of a role, on an Azure Database for PostgreSQL flexible server (scope: the server's id): the "
        "database the workload connects to, as a database role of its own mapped to its principal.",
    ),
    Field("database_roles", "list", False, "With database: the existing roles its database role is a member of."),
    Field("database_user", "str", False, "With database: its database role's name; default the workload's name."),
)
CONTROLLER_FIELDS = (
    Field("kind", "str", True, f"One of {', '.join(CONTROLLER_KINDS)}."),
    Field("name", "str", True, "The controller's name, in the workload's namespace."),
)


def _keys(fields: tuple[Field, ...]) -> set[str]:
    return {f.name for f in fields} | {a for f in fields for a in f.aliases}


@dataclass(frozen=True)
class RoleSpec:
    role: str
    scope: str
    condition: str | None = None
    condition_version: str | None = None
    description: str | None = None
    # Where the entry is in the workload's roles list (None: made in code, not read from one).
    position: int | None = field(default=None, compare=False)

    def listed_at(self, index: int) -> int:
        """Its place in the inventory's ``roles`` (``index``: in the role assignments alone, when not known)."""
        return self.position if self.position is not None else index


@dataclass(frozen=True)
class ControllerRef:
    kind: str
    name: str


@dataclass(kw_only=True)
class WorkloadSpec:
    name: str
    namespace: str
    service_account: str
    identity_name: str
    identity_resource_group: str | None
    roles: list[RoleSpec]
    subjects: list[str]  # the service account's subject first, then extra_subjects
    # The roles list's Key Vault access policy entries and Cosmos DB SQL role assignments (its ARM role assignments
    # are ``roles``).
    access_policies: list[AccessPolicySpec] = field(default_factory=list)
    cosmos_roles: list[CosmosRoleSpec] = field(default_factory=list)
    database_roles: list[DatabaseRoleSpec] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    controllers: list[ControllerRef] = field(default_factory=list)
    token_expiration: int | None = None
    identity_type: str = USER_ASSIGNED
    # identity_type application: ours by unique name (made if missing), or an operator's by appId (used as is)
    application_unique_name: str | None = None
    application_id: str | None = None
    application_display_name: str | None = None
    # An existing ServiceAccount that names another client id is refused unless the inventory says to move it.
    rebind: bool = False
    # Teardown keeps an identity or application made elsewhere (adopted) unless the inventory says otherwise.
    teardown_adopted: bool = False
    # Its identity (or application) goes by the default name: one found there that this collection did not make
    # is a name collision to report, not something to adopt silently.
    named_by_default: bool = False

    @property
    def is_application(self) -> bool:
        return self.identity_type == APPLICATION

    @property
    def subject(self) -> str:
        return self.subjects[0]


@dataclass
class Validated:
    """The valid workloads, every problem found, and deprecations the module should announce."""

    specs: list[WorkloadSpec]
    problems: list[str]
    deprecations: list[str] = field(default_factory=list)


def subject_for(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def default_identity_name(cluster: str, namespace: str, name: str) -> str:
    return f"id-{cluster}-{namespace}-{name}"


def workload_entries(cluster: str, raw: Any, field: str = "workloads") -> tuple[list[dict[str, Any]], list[str]]:
    """The workload list as the inventory held it (any type: the modules take it raw), classified here rather than by
    Ansible's option checks, so that the problem names the cluster and ``field`` (the inventory's variable when the
    roles pass it). Returns its mappings (their null fields dropped, as unset) and the problems of the list itself;
    ``validate_workloads`` checks each mapping."""
    if raw is None:
        return [], list_problems(cluster, field, "none")
    if not isinstance(raw, (list, tuple)):
        kind = "mapping" if isinstance(raw, dict) else "string" if isinstance(raw, str) else type(raw).__name__
        return [], list_problems(cluster, field, kind)
    entries = [{k: v for k, v in item.items() if v is not None} for item in raw if isinstance(item, dict)]
    others = [n for n, item in enumerate(raw, start=1) if not isinstance(item, dict)]
    return entries, list_problems(cluster, field, "list", others)


def list_problems(cluster: str, field: str, kind: str, not_mappings: Sequence[int | str] = ()) -> list[str]:
    """What is wrong with a workload list that is ``kind`` (none, list, or another type), whose entries at these
    positions are not mappings: the one wording, whoever classified it."""
    where = f"cluster {cluster}: {field}"
    if kind == "none":
        return [
            f"{where}: not defined, or null; declare the cluster's workloads (an empty list declares none, and with "
            f"prune removes everything: that also needs workload_identity_prune_confirm: {cluster})"
        ]
    if kind != "list":
        return [f"{where}: must be a list of workloads (got a {kind})"]
    if not_mappings:
        return [
            f"{where}: entries {', '.join(f'#{n}' for n in not_mappings)} are not workloads (each is a mapping with "
            "name, namespace, service_account and roles)"
        ]
    return []


def validate_workloads(
    cluster: str,
    workloads: Any,
    *,
    identity_resource_group: str | None,
    allow_privileged_roles: bool,
    identity_group_required: bool = True,
) -> Validated:
    """Everything checkable without a service; every problem names the cluster, the workload and the field.

    ``identity_group_required``: False where only the Kubernetes side is read (the identity's place is
    the Azure side's business).
    """
    where = f"cluster {cluster}"
    result = Validated([], [])
    if not isinstance(workloads, list):
        result.problems.append(f"{where}: workloads: must be a list, got {type(workloads).__name__}")
        return result
    seen = Seen()
    for index, raw in enumerate(workloads):
        spec = _workload(
            cluster, index, raw, identity_resource_group, identity_group_required, allow_privileged_roles, seen, result
        )
        if spec is not None:
            result.specs.append(spec)
    return result


def _workload(
    cluster: str,
    index: int,
    raw: Any,
    default_group: str | None,
    group_required: bool,
    allow_privileged: bool,
    seen: Seen,
    result: Validated,
) -> WorkloadSpec | None:
    problems = result.problems
    label = f"cluster {cluster}: workload #{index + 1}"
    if not isinstance(raw, dict):
        problems.append(f"{label}: must be a mapping with name, namespace, service_account and roles")
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        label = f"cluster {cluster}: workload {name!r}"  # repr: a newline or quote in it shows as such
    before = len(problems)
    known = _keys(WORKLOAD_FIELDS)
    for key in sorted(set(raw) - known):
        expected = ", ".join(f.name for f in sorted(WORKLOAD_FIELDS, key=lambda f: f.name))
        problems.append(f"{label}: {key}: unknown field (expected one of {expected})")
    _names(raw, label, index, seen, problems)
    namespace, account = str(raw.get("namespace")), str(raw.get("service_account"))
    kind = raw.get("identity_type", USER_ASSIGNED)
    if kind not in IDENTITY_TYPES:
        problems.append(f"{label}: identity_type: must be one of {', '.join(IDENTITY_TYPES)} (got {kind!r})")
    if kind == APPLICATION:
        resource_group, identity_name = None, ""
        app = _application(raw, label, cluster, namespace, str(name), seen, problems)
    else:
        app = (None, None, None)
        resource_group, identity_name = _managed_identity(
            raw, label, cluster, (default_group, group_required), seen, problems
        )
    roles, access_policies, cosmos_roles, database_roles = _roles(
        raw.get("roles", []), label, str(name), allow_privileged, problems
    )
    subjects = _subjects(raw.get("extra_subjects"), subject_for(namespace, account), label, problems)
    tags = _tags(raw.get("tags"), label, problems)
    controllers = _workload_controllers(raw, label, str(name), namespace, seen, result)
    expiration = _token_expiration(raw.get("token_expiration"), label, problems)
    flags = {key: raw.get(key, False) for key in ("rebind", "teardown_adopted")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            problems.append(f"{label}: {key}: must be true or false (got {value!r})")
    if len(problems) != before:
        return None
    unique_name, application_id, display_name = app
    return WorkloadSpec(
        name=str(name),
        namespace=namespace,
        service_account=account,
        identity_name=str(identity_name),
        identity_resource_group=str(resource_group) if resource_group else None,
        roles=roles,
        access_policies=access_policies,
        cosmos_roles=cosmos_roles,
        database_roles=database_roles,
        subjects=subjects,
        tags=tags,
        controllers=controllers,
        token_expiration=expiration,
        identity_type=str(kind),
        application_unique_name=unique_name,
        application_id=application_id,
        application_display_name=display_name,
        rebind=bool(flags["rebind"]),
        teardown_adopted=bool(flags["teardown_adopted"]),
        named_by_default=not raw.get("identity_name" if kind != APPLICATION else "application_unique_name")
        and not raw.get("application_id"),
    )


def got(value: Any) -> str:
    """A value as a problem quotes it, with the hint a YAML boolean needs."""
    if isinstance(value, bool):
        return f"{value!r} (YAML reads yes/no/on/off/true/false unquoted as booleans: quote it)"
    return repr(value)


def _names(raw: dict[str, Any], label: str, index: int, seen: Seen, problems: list[str]) -> None:
    """The workload's name (unique in the cluster), namespace and service account (bound to one workload)."""
    name, namespace, account = raw.get("name"), raw.get("namespace"), raw.get("service_account")
    if not isinstance(name, str) or not DNS_LABEL.fullmatch(name) or len(name) > 63:
        problems.append(f"{label}: name: must be 1-63 lower-case letters, digits and '-' (got {got(name)})")
    elif name in seen.names:
        problems.append(f"{label}: name: declared twice (also workload #{seen.names[name] + 1})")
    else:
        seen.names[name] = index
    if not isinstance(namespace, str) or not DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        problems.append(f"{label}: namespace: must be a Kubernetes namespace name (DNS label), got {got(namespace)}")
    if not isinstance(account, str) or not DNS_SUBDOMAIN.fullmatch(account) or len(account) > 253:
        problems.append(
            f"{label}: service_account: must be a Kubernetes service account name (DNS subdomain), got {got(account)}"
        )
    if isinstance(namespace, str) and isinstance(account, str):
        other = seen.accounts.get((namespace, account))
        if other:
            problems.append(
                f"{label}: service_account: {namespace}/{account} is already bound to workload "
                f"'{other}' (a service account carries one client id)"
            )
        seen.accounts[(namespace, account)] = str(name)


def _managed_identity(
    raw: dict[str, Any],
    label: str,
    cluster: str,
    group: tuple[str | None, bool],
    seen: Seen,
    problems: list[str],
) -> tuple[str | None, str]:
    """A user-assigned identity's resource group (``group``: the default one, and whether one is required) and name,
    each identity used by one workload of the cluster."""
    default_group, group_required = group
    for key in ("application_unique_name", "application_id", "application_display_name"):
        if key in raw:
            problems.append(f"{label}: {key}: only for identity_type application")
    resource_group = raw.get("identity_resource_group") or default_group
    if group_required and not resource_group:
        problems.append(f"{label}: identity_resource_group: required (here or as the module's option)")
    elif resource_group and (not isinstance(resource_group, str) or not RESOURCE_GROUP_NAME.fullmatch(resource_group)):
        hint = " (the name alone, not a resource id)" if "/" in str(resource_group) else ""
        problems.append(
            f"{label}: identity_resource_group: {got(resource_group)} is not a resource group name{hint}: 1-90 "
            "letters, digits, '_', '-', '.', '(' or ')', not ending with '.'"
        )
    name = str(raw.get("name"))
    identity_name = raw.get("identity_name") or default_identity_name(cluster, str(raw.get("namespace")), name)
    # A default name made of an invalid name or namespace: their own problems say it.
    parts_valid = bool(DNS_LABEL.fullmatch(name)) and bool(DNS_LABEL.fullmatch(str(raw.get("namespace"))))
    if (raw.get("identity_name") or parts_valid) and (
        not isinstance(identity_name, str) or not IDENTITY_NAME.fullmatch(identity_name)
    ):
        hint = "" if raw.get("identity_name") else " (the default name; set identity_name)"
        problems.append(f"{label}: identity_name: {got(identity_name)} is not a valid identity name{hint}")
    _once(
        seen, f"{resource_group}/{identity_name}", f"{label}: identity_name: identity {identity_name}", name, problems
    )
    return resource_group, str(identity_name)


def _tags(raw: Any, label: str, problems: list[str]) -> dict[str, str]:
    """An identity's extra tags, by ARM's rules for tags, none of them the collection's own marks."""
    tags = raw or {}
    if not isinstance(tags, dict):
        problems.append(f"{label}: tags: must be a mapping")
        return {}
    before = len(problems)
    seen: dict[str, str] = {}
    for name, value in tags.items():
        at = f"{label}: tags: {name!r}"
        if not isinstance(name, str) or not name or len(name) > TAG_NAME_MAX:
            problems.append(f"{at}: a tag's name is 1-{TAG_NAME_MAX} characters")
            continue
        bad = sorted(set(name) & TAG_NAME_FORBIDDEN) + (["a control character"] if not name.isprintable() else [])
        if bad:
            problems.append(f"{at}: Azure refuses {', '.join(bad)} in a tag's name")
        if name.lower() in RESERVED_TAGS or name.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(
                f"{at}: reserved for the collection's own marks ({', '.join(sorted(RESERVED_TAGS))} and "
                f"{RESERVED_TAG_PREFIX}*): choose another name"
            )
        if name.lower() in seen:
            problems.append(f"{at}: the same name as {seen[name.lower()]!r} (Azure's tag names ignore case)")
        seen[name.lower()] = name
        if value is None or isinstance(value, (dict, list, bool)):
            hint = " (YAML reads yes/no/true/false as booleans: quote it)" if isinstance(value, bool) else ""
            problems.append(f'{at}: the value must be a string or a number, got {value!r}{hint}; use "" for none')
        elif len(str(value)) > TAG_VALUE_MAX:
            problems.append(f"{at}: the value is {len(str(value))} characters; Azure keeps at most {TAG_VALUE_MAX}")
    if len(",".join(str(k) for k in tags)) > 256:
        # Their names are recorded in one tag on the identity (so that a dropped one is removed): 256 characters.
        problems.append(f"{label}: tags: the names of the tags, together, exceed 256 characters")
    if len(problems) != before:
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def _workload_controllers(
    raw: dict[str, Any], label: str, name: str, namespace: str, seen: Seen, result: Validated
) -> list[ControllerRef]:
    """The pod controllers, under their field's name or its old one (``workloads``, announced as deprecated)."""
    controllers_raw, controllers_field = raw.get("controllers"), "controllers"
    if "workloads" in raw:
        if "controllers" in raw:
            result.problems.append(f"{label}: workloads: is the old name of controllers; give only controllers")
        else:
            controllers_raw, controllers_field = raw["workloads"], "workloads"
            result.deprecations.append(
                f"{label}: workloads: the pod controllers' field is now called controllers; "
                f"workloads is still read, until {ALIAS_REMOVED_IN}"
            )
    return _controllers(controllers_raw, f"{label}: {controllers_field}", name, namespace, seen, result.problems)


def _controllers(
    raw: Any, where: str, workload: str, namespace: str, seen: Seen, problems: list[str]
) -> list[ControllerRef]:
    """The pod controllers to bind: known kinds, valid names, each bound to one workload only.

    ``where`` ends with the field as the user wrote it (controllers, or its old name workloads).
    """
    controllers: list[ControllerRef] = []
    if raw is None:
        return controllers
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list of {{kind, name}} (the pod controllers to bind)")
        return controllers
    for position, item in enumerate(raw):
        at = f"{where}[{position}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be a mapping with kind and name")
            continue
        for key in sorted(set(item) - _keys(CONTROLLER_FIELDS)):
            problems.append(f"{at}: {key}: unknown field (expected kind and name)")
        kind, name = item.get("kind"), item.get("name")
        if kind not in CONTROLLER_KINDS:
            problems.append(f"{at}: kind: must be one of {', '.join(CONTROLLER_KINDS)} (got {kind!r})")
        if not isinstance(name, str) or not DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
            problems.append(f"{at}: name: must be a Kubernetes object name (DNS subdomain), got {name!r}")
            continue
        key = (namespace, str(kind), name)
        if key in seen.controllers:
            other = seen.controllers[key]
            also = "listed twice" if other == workload else f"already bound to workload '{other}'"
            problems.append(f"{at}: name: {kind} {namespace}/{name} is {also} (a pod has one service account)")
        seen.controllers[key] = workload
        controllers.append(ControllerRef(str(kind), name))
    return controllers


def _roles(
    raw: Any, label: str, workload: str, allow_privileged: bool, problems: list[str]
) -> tuple[list[RoleSpec], list[AccessPolicySpec], list[CosmosRoleSpec], list[DatabaseRoleSpec]]:
    """The list's role assignments, its Key Vault access policy entries (``access_policy`` instead of ``role``), its
    Cosmos DB SQL role assignments (told by their form, ``cosmos_by_form``; the rest at read time), and its database
    roles (``database`` instead of ``role``)."""
    if not isinstance(raw, list):
        problems.append(f"{label}: roles: must be a list of {{role, scope}}")
        return [], [], [], []
    roles: list[RoleSpec] = []
    policies: list[AccessPolicySpec] = []
    cosmos: list[CosmosRoleSpec] = []
    databases: list[DatabaseRoleSpec] = []
    seen: set[tuple[str, str]] = set()
    for position, item in enumerate(raw):
        at = f"{label}: roles[{position}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be a mapping with role and scope")
            continue
        for key in sorted(set(item) - _keys(ROLE_FIELDS)):
            expected = ", ".join(sorted(_keys(ROLE_FIELDS)))
            problems.append(f"{at}: {key}: unknown field (expected one of {expected})")
        if "access_policy" in item:
            policy = access_policy_entry(item, position, at, problems)
            if policy is not None and any(p.vault.lower() == policy.vault.lower() for p in policies):
                problems.append(f"{at}: access_policy: {policy.vault} has one entry per principal: declared twice")
            elif policy is not None:
                policies.append(policy)
            continue
        if any(key in item for key in DATABASE_ROLE_KEYS):
            entry = database_role_entry(item, position, at, workload, allow_privileged, problems)
            if entry is not None:
                database_entry_problems(entry, databases, at, problems)
                databases.append(entry)
            continue
        role, scope_text = item.get("role"), item.get("scope")
        if not isinstance(role, str) or not role.strip():
            problems.append(f"{at}: role: required (a role name, GUID or role definition id)")
            continue
        try:
            scope = parse_scope(str(scope_text))
        except InvalidScope as exc:
            problems.append(f"{at}: scope: {exc}")
            continue
        for key in ("condition", "description"):
            if item.get(key) is not None and not isinstance(item.get(key), str):
                problems.append(f"{at}: {key}: must be a string, got {got(item.get(key))}")
        if item.get("condition") is not None and not isinstance(item.get("condition"), str):
            continue
        syntax = condition_problem(item["condition"]) if item.get("condition") is not None else None
        if syntax:
            problems.append(f"{at}: condition: {syntax}")
        if item.get("condition_version") and not item.get("condition"):
            problems.append(f"{at}: condition_version: given without a condition")
        elif item.get("condition_version") not in (None, "2.0"):
            # ARM refuses any other version for a new or updated assignment (InvalidConditionVersion).
            problems.append(f"{at}: condition_version: must be 2.0, the only version Azure accepts")
        malformed = cosmos_path_problem(scope.path)
        if malformed:
            problems.append(f"{at}: scope: {malformed}")
            continue
        key = (role.lower(), scope.key)
        if key in seen:
            problems.append(f"{at}: role: {role} at {scope.path} is declared twice")
        seen.add(key)
        if cosmos_by_form(role, scope.path):
            cosmos_entry_problems(role, scope.path, item, at, problems)
            cosmos.append(CosmosRoleSpec(str(cosmos_account_of(scope.path)), role.strip(), scope.path, position))
            continue
        problem = None if allow_privileged else privileged_problem(role, scope.kind, scope.path, at)
        if problem:
            problems.append(problem)
        condition, version, description = (item.get(k) for k in ("condition", "condition_version", "description"))
        roles.append(RoleSpec(role, scope.path, condition, version, description, position=position))
    return roles, policies, cosmos, databases
