# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): every workload of a cluster, in one task.

1. Validate the whole list without Azure and report every problem at once.
2. Read in bulk: the identity resource groups' identities, the role definitions and role
   assignments of each subscription involved (one request each: ARM answers them whole), and each
   existing identity's federated credentials. A no-op run costs N + 3 requests for N workloads.
3. Plan with the same engines the single-object modules use, in check mode, on those reads:
   runtime problems (unknown roles, full identities, foreign identities) surface before any write,
   and the plan is what check mode reports.
4. Unless in check mode, converge: a bounded pool of workloads at a time; a workload's writes run
   in order (so FIC writes on one identity never overlap) through the same engines.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ._errors import AzureApiError, ValidationError
from ._federated_credential import (
    DEFAULT_AUDIENCE,
    FIELD_MAX,
    LIMIT_PER_IDENTITY,
    FederatedCredentialApi,
    ensure_federated_credential,
)
from ._identity import NAME_PATTERN, IdentityApi, ensure_identity
from ._ids import IdentityRef, InvalidScope, is_guid, parse_scope, role_guid
from ._retry import call
from ._role_assignment import PRIVILEGED_ROLES, Role, RoleAssignmentApi, assignment_state, ensure_role_assignment

OWNER_TAG = "managed-by"
OWNER_VALUE = "workload_identity.aks"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
WORKLOAD_KEYS = {
    "name",
    "namespace",
    "service_account",
    "identity_name",
    "identity_resource_group",
    "roles",
    "extra_subjects",
    "tags",
    "workloads",
    "token_expiration",
}
ROLE_KEYS = {"role", "scope", "condition", "condition_version", "description"}
# Pod controllers the workloads role can bind to a service account; CronJob's pod template sits one level deeper.
CONTROLLER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
CONTROLLER_KEYS = {"kind", "name"}
# The webhook projects tokens of 1-24 hours (azure.workload.identity/service-account-token-expiration).
TOKEN_EXPIRATION = (3600, 86400)
PENDING = "00000000-0000-0000-0000-000000000000"  # a new identity's principal, until Azure assigns it


@dataclass
class RoleSpec:
    role: str
    scope: str
    condition: str | None = None
    condition_version: str | None = None
    description: str | None = None


@dataclass
class WorkloadSpec:
    name: str
    namespace: str
    service_account: str
    identity: IdentityRef
    roles: list[RoleSpec]
    subjects: list[str]
    tags: dict[str, str]
    # For the Kubernetes side: the pod controllers (kind, name) to bind, and the token lifetime to ask for.
    controllers: list[tuple[str, str]] = field(default_factory=list)
    token_expiration: int | None = None

    @property
    def subject(self) -> str:
        return self.subjects[0]


@dataclass
class Batch:
    cluster: str
    issuer_url: str | None
    location: str | None
    workloads: list[WorkloadSpec]
    prune: bool
    allow_privileged_roles: bool
    # Resource groups scanned for identities besides the workloads' own: the default one, so that pruning
    # (or tearing down) still finds this cluster's identities when the list no longer names any.
    resource_groups: tuple[str, ...] = ()
    state: str = "present"


def subject_for(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def fic_name(cluster: str, subject: str) -> str:
    """One credential per cluster and subject, named so a person can tell which is which."""
    readable = re.sub(r"[^a-zA-Z0-9-_]", "-", f"{cluster}-{subject.removeprefix('system:serviceaccount:')}")
    readable = readable.strip("-_")
    if len(readable) <= 120 and re.match(r"^[a-zA-Z0-9]", readable):
        return readable
    digest = hashlib.sha256(f"{cluster}|{subject}".encode()).hexdigest()[:10]
    return f"{readable[:109].rstrip('-_')}-{digest}"


def default_identity_name(cluster: str, namespace: str, name: str) -> str:
    return f"id-{cluster}-{namespace}-{name}"


def validate(
    cluster: str,
    issuer_url: str | None,
    workloads: Any,
    *,
    subscription_id: str,
    identity_resource_group: str | None,
    allow_privileged_roles: bool,
    issuer_required: bool = True,
) -> tuple[list[WorkloadSpec], list[str]]:
    """Everything checkable without Azure; every problem names the cluster, the workload and the field."""
    problems: list[str] = []
    where = f"cluster {cluster}"
    if issuer_required and (not issuer_url or not issuer_url.startswith("https://") or len(issuer_url) > FIELD_MAX):
        problems.append(f"{where}: issuer_url: must be the cluster's https OIDC issuer URL (got {issuer_url!r})")
    if not isinstance(workloads, list):
        return [], [*problems, f"{where}: workloads: must be a list, got {type(workloads).__name__}"]
    specs: list[WorkloadSpec] = []
    seen_names: dict[str, int] = {}
    seen_accounts: dict[tuple[str, str], str] = {}
    seen_identities: dict[str, str] = {}
    seen_controllers: dict[tuple[str, str, str], str] = {}
    for index, raw in enumerate(workloads):
        label = f"{where}: workload #{index + 1}"
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be a mapping with name, namespace, service_account and roles")
            continue
        name = raw.get("name")
        if isinstance(name, str) and name:
            label = f"{where}: workload '{name}'"
        before = len(problems)
        for key in sorted(set(raw) - WORKLOAD_KEYS):
            problems.append(f"{label}: {key}: unknown field (expected one of {', '.join(sorted(WORKLOAD_KEYS))})")
        if not isinstance(name, str) or not DNS_LABEL.match(name) or len(name) > 63:
            problems.append(f"{label}: name: must be 1-63 lower-case letters, digits and '-' (got {name!r})")
        elif name in seen_names:
            problems.append(f"{label}: name: declared twice (also workload #{seen_names[name] + 1})")
        else:
            seen_names[name] = index
        namespace, account = raw.get("namespace"), raw.get("service_account")
        if not isinstance(namespace, str) or not DNS_LABEL.match(namespace) or len(namespace) > 63:
            problems.append(f"{label}: namespace: must be a Kubernetes namespace name (DNS label), got {namespace!r}")
        if not isinstance(account, str) or not DNS_SUBDOMAIN.match(account) or len(account) > 253:
            problems.append(
                f"{label}: service_account: must be a Kubernetes service account name (DNS subdomain), got {account!r}"
            )
        if isinstance(namespace, str) and isinstance(account, str):
            other = seen_accounts.get((namespace, account))
            if other:
                problems.append(
                    f"{label}: service_account: {namespace}/{account} is already bound to workload "
                    f"'{other}' (a service account carries one client id)"
                )
            seen_accounts[(namespace, account)] = str(name)
        resource_group = raw.get("identity_resource_group") or identity_resource_group
        if not resource_group:
            problems.append(f"{label}: identity_resource_group: required (here or as the module's option)")
        identity_name = raw.get("identity_name") or default_identity_name(cluster, str(namespace), str(name))
        if not isinstance(identity_name, str) or not re.match(NAME_PATTERN, identity_name):
            hint = "" if raw.get("identity_name") else " (the default name; set identity_name)"
            problems.append(f"{label}: identity_name: '{identity_name}' is not a valid identity name{hint}")
        key = f"{resource_group}/{identity_name}".lower()
        if key in seen_identities:
            problems.append(
                f"{label}: identity_name: identity {identity_name} is already used by workload "
                f"'{seen_identities[key]}' (one identity per workload)"
            )
        seen_identities[key] = str(name)
        roles = _validate_roles(raw.get("roles", []), label, allow_privileged_roles, problems)
        extra = raw.get("extra_subjects") or []
        if not isinstance(extra, list) or not all(isinstance(s, str) and 0 < len(s) <= FIELD_MAX for s in extra):
            problems.append(f"{label}: extra_subjects: must be a list of subjects of 1-{FIELD_MAX} characters")
            extra = []
        subjects = [subject_for(str(namespace), str(account)), *extra]
        if len(set(subjects)) != len(subjects):
            problems.append(f"{label}: extra_subjects: repeats a subject")
        if len(subjects) > LIMIT_PER_IDENTITY:
            problems.append(
                f"{label}: extra_subjects: {len(subjects)} federated credentials on one identity; "
                f"Azure allows {LIMIT_PER_IDENTITY}"
            )
        tags = raw.get("tags") or {}
        if not isinstance(tags, dict):
            problems.append(f"{label}: tags: must be a mapping")
            tags = {}
        controllers = _validate_controllers(
            raw.get("workloads"), label, str(name), str(namespace), seen_controllers, problems
        )
        expiration = raw.get("token_expiration")
        if expiration is not None and (
            isinstance(expiration, bool)
            or not str(expiration).isdigit()
            or not TOKEN_EXPIRATION[0] <= int(expiration) <= TOKEN_EXPIRATION[1]
        ):
            problems.append(
                f"{label}: token_expiration: must be seconds between {TOKEN_EXPIRATION[0]} and "
                f"{TOKEN_EXPIRATION[1]} (got {expiration!r})"
            )
        if len(problems) == before:
            specs.append(
                WorkloadSpec(
                    str(name),
                    str(namespace),
                    str(account),
                    IdentityRef(subscription_id, str(resource_group), str(identity_name)),
                    roles,
                    subjects,
                    {str(k): str(v) for k, v in tags.items()},
                    controllers,
                    int(expiration) if expiration is not None else None,
                )
            )
    return specs, problems


def _validate_controllers(
    raw: Any,
    label: str,
    workload: str,
    namespace: str,
    seen: dict[tuple[str, str, str], str],
    problems: list[str],
) -> list[tuple[str, str]]:
    """The pod controllers to bind: known kinds, valid names, each bound to one workload only."""
    controllers: list[tuple[str, str]] = []
    if raw is None:
        return controllers
    if not isinstance(raw, list):
        problems.append(f"{label}: workloads: must be a list of {{kind, name}} (the pod controllers to bind)")
        return controllers
    for position, item in enumerate(raw):
        at = f"{label}: workloads[{position}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be a mapping with kind and name")
            continue
        for key in sorted(set(item) - CONTROLLER_KEYS):
            problems.append(f"{at}: {key}: unknown field (expected kind and name)")
        kind, name = item.get("kind"), item.get("name")
        if kind not in CONTROLLER_KINDS:
            problems.append(f"{at}: kind: must be one of {', '.join(CONTROLLER_KINDS)} (got {kind!r})")
        if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            problems.append(f"{at}: name: must be a Kubernetes object name (DNS subdomain), got {name!r}")
            continue
        key = (namespace, str(kind), name)
        if key in seen:
            other = seen[key]
            also = "listed twice" if other == workload else f"already bound to workload '{other}'"
            problems.append(f"{at}: name: {kind} {namespace}/{name} is {also} (a pod has one service account)")
        seen[key] = workload
        controllers.append((str(kind), name))
    return controllers


def _validate_roles(raw: Any, label: str, allow_privileged: bool, problems: list[str]) -> list[RoleSpec]:
    if not isinstance(raw, list):
        problems.append(f"{label}: roles: must be a list of {{role, scope}}")
        return []
    roles: list[RoleSpec] = []
    seen: set[tuple[str, str]] = set()
    for position, item in enumerate(raw):
        at = f"{label}: roles[{position}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be a mapping with role and scope")
            continue
        for key in sorted(set(item) - ROLE_KEYS):
            problems.append(f"{at}: {key}: unknown field (expected one of {', '.join(sorted(ROLE_KEYS))})")
        role, scope_text = item.get("role"), item.get("scope")
        if not isinstance(role, str) or not role.strip():
            problems.append(f"{at}: role: required (a role name, GUID or role definition id)")
            continue
        try:
            scope = parse_scope(str(scope_text))
        except InvalidScope as exc:
            problems.append(f"{at}: scope: {exc}")
            continue
        if item.get("condition_version") and not item.get("condition"):
            problems.append(f"{at}: condition_version: given without a condition")
        key = (role.lower(), scope.key)
        if key in seen:
            problems.append(f"{at}: role: {role} at {scope.path} is declared twice")
        seen.add(key)
        if not allow_privileged:
            privileged_problem(role, scope.kind, scope.path, at, problems)
        roles.append(
            RoleSpec(role, scope.path, item.get("condition"), item.get("condition_version"), item.get("description"))
        )
    return roles


def privileged_problem(role: str, scope_kind: str, scope: str, at: str, problems: list[str]) -> None:
    guid = role_guid(role) if "/" in role else role.lower()
    name = PRIVILEGED_ROLES.get(guid) or next((n for n in PRIVILEGED_ROLES.values() if n.lower() == role.lower()), None)
    if name and scope_kind in ("managementGroup", "subscription"):
        problems.append(
            f"{at}: role: {name} at {scope_kind} scope {scope} is refused for a workload identity "
            "(set allow_privileged_roles to allow it)"
        )


@dataclass
class Reads:
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)  # key: rg/name lower
    roles_by_name: dict[str, dict[str, list[Role]]] = field(default_factory=dict)  # sub -> lower name -> roles
    roles_by_guid: dict[str, dict[str, Role]] = field(default_factory=dict)
    assignments: dict[str, list[Any]] = field(default_factory=dict)  # principal lower -> models
    fics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # identity key -> fics
    roles_at_scope: dict[tuple[str, str], Role] = field(default_factory=dict)  # (scope, role) -> role


def _identity_key(ref: IdentityRef) -> str:
    return f"{ref.resource_group}/{ref.name}".lower()


class Workloads:
    def __init__(self, msi: Any, authorization: Any, policy: Any, subscription_id: str) -> None:
        self.identities = IdentityApi(msi, policy)
        self.fics = FederatedCredentialApi(msi, policy)
        self.roles = RoleAssignmentApi(authorization, policy)
        self.policy = policy
        self.subscription_id = subscription_id

    # -- reading ----------------------------------------------------------------------------------
    def read(self, batch: Batch) -> Reads:
        reads = Reads()
        groups = {g.lower(): g for g in batch.resource_groups}
        groups.update({w.identity.resource_group.lower(): w.identity.resource_group for w in batch.workloads})
        for group in groups.values():
            for identity in self._identities_in(group):
                reads.identities[f"{identity['resource_group']}/{identity['name']}".lower()] = identity
        subscriptions = {
            parse_scope(r.scope).subscription or self.subscription_id for w in batch.workloads for r in w.roles
        } | {self.subscription_id}
        for sub in sorted(subscriptions):
            self._read_subscription(sub, reads)
        wanted = {_identity_key(w.identity) for w in batch.workloads}
        owned = {k for k, i in reads.identities.items() if self.owned(i, batch.cluster)} if batch.prune else set()
        if batch.state == "absent":
            # An identity of ours goes whole, its credentials with it; only others' credentials need listing.
            owned = set()
            wanted = {k for k in wanted if k in reads.identities and not self.owned(reads.identities[k], batch.cluster)}
        for key in sorted(wanted | owned):
            existing = reads.identities.get(key)
            if existing is not None:
                ref = IdentityRef(self.subscription_id, existing["resource_group"], existing["name"])
                reads.fics[key] = self.fics.list_all(ref)
        return reads

    def _identities_in(self, group: str) -> list[dict[str, Any]]:
        try:
            return self.identities.list_all(group)
        except AzureApiError as exc:
            if exc.status == 404 and exc.code == "ResourceGroupNotFound":
                return []
            raise

    def _read_subscription(self, sub: str, reads: Reads) -> None:
        scope = f"/subscriptions/{sub}"
        definitions = call(
            f"list role definitions at {scope}", lambda: list(self.roles.definitions.list(scope)), self.policy
        )
        by_name: dict[str, list[Role]] = {}
        by_guid: dict[str, Role] = {}
        for model in definitions:
            role = Role(model.id, role_guid(model.id), model.role_name)
            by_name.setdefault(model.role_name.lower(), []).append(role)
            by_guid[role.guid] = role
        reads.roles_by_name[sub] = by_name
        reads.roles_by_guid[sub] = by_guid
        # ARM answers a scope's role assignments whole: one request for every principal at once.
        assignments = call(
            f"list role assignments in {scope}", lambda: list(self.roles.assignments.list_for_scope(scope)), self.policy
        )
        for model in assignments:
            reads.assignments.setdefault(model.principal_id.lower(), []).append(model)

    @staticmethod
    def owned(identity: dict[str, Any], cluster: str) -> bool:
        tags = identity.get("tags") or {}
        return tags.get(OWNER_TAG) == OWNER_VALUE and tags.get("wi-cluster") == cluster

    def resolve(self, spec: RoleSpec, reads: Reads) -> Role:
        sub = parse_scope(spec.scope).subscription or self.subscription_id
        text = spec.role
        guid = role_guid(text) if "/" in text else text.lower() if is_guid(text) else None
        if guid is not None and guid in reads.roles_by_guid.get(sub, {}):
            return reads.roles_by_guid[sub][guid]
        matches = reads.roles_by_name.get(sub, {}).get(text.lower(), []) if guid is None else []
        exact = [r for r in matches if r.name == text] or matches
        if len(exact) == 1:
            return exact[0]
        # Not visible at the subscription (a custom role assignable lower down): ask at the scope itself,
        # once per scope and role however many workloads name them.
        key = (parse_scope(spec.scope).key, text)
        if key not in reads.roles_at_scope:
            reads.roles_at_scope[key] = self.roles.resolve_role(spec.scope, text)
        return reads.roles_at_scope[key]

    # -- planning and converging ------------------------------------------------------------------
    def converge(self, batch: Batch, reads: Reads, check_mode: bool, workers: int) -> dict[str, Any]:
        problems: list[str] = []
        resolved: dict[tuple[str, str], Role] = {}
        for workload in batch.workloads:
            identity = reads.identities.get(_identity_key(workload.identity))
            where = f"cluster {batch.cluster}: workload '{workload.name}'"
            if identity is None and not batch.location:
                problems.append(
                    f"{where}: location: identity {workload.identity.name} does not exist and no "
                    "location was given to create it in"
                )
            tags = (identity or {}).get("tags") or {}
            if (
                identity is not None
                and tags.get(OWNER_TAG) == OWNER_VALUE
                and tags.get("wi-cluster") not in (None, batch.cluster)
            ):
                problems.append(
                    f"{where}: identity_name: identity {workload.identity.name} belongs to cluster "
                    f"{tags.get('wi-cluster')}"
                )
            for position, spec in enumerate(workload.roles):
                try:
                    role = self.resolve(spec, reads)
                except ValidationError as exc:
                    problems.extend(f"{where}: roles[{position}]: {p}" for p in exc.problems)
                    continue
                if not batch.allow_privileged_roles:
                    privileged_problem(
                        role.guid, parse_scope(spec.scope).kind, spec.scope, f"{where}: roles[{position}]", problems
                    )
                resolved[(workload.name, spec.role + "|" + spec.scope)] = role
        if problems:
            raise ValidationError(problems)
        # Plan first, with no writes: surfaces the rest of the problems, and is check mode's answer.
        plans = [self._workload(batch, w, reads, resolved, True) for w in batch.workloads]
        pruned = self._prune(batch, reads, resolved, True)
        if check_mode:
            return self._report(plans, pruned)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            done = list(pool.map(lambda w: self._workload(batch, w, reads, resolved, False), batch.workloads))
        return self._report(done, self._prune(batch, reads, resolved, False))

    def _workload(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: dict[tuple[str, str], Role],
        check_mode: bool,
    ) -> dict[str, Any]:
        key = _identity_key(workload.identity)
        known = reads.identities.get(key)
        owned_tags = {
            OWNER_TAG: OWNER_VALUE,
            "wi-cluster": batch.cluster,
            "wi-namespace": workload.namespace,
            "wi-service-account": workload.service_account,
            "wi-workload": workload.name,
        }
        # Identities made elsewhere are used as they are; only ours carry (and keep) our tags.
        ours = known is None or (known.get("tags") or {}).get(OWNER_TAG) == OWNER_VALUE
        tags = {**workload.tags, **owned_tags} if ours else (workload.tags or None)
        identity = ensure_identity(
            self.identities,
            workload.identity,
            state="present",
            location=batch.location,
            tags=tags,
            purge_tags=False,
            check_mode=check_mode,
            known=known,
        )
        after = identity.after or {}
        principal = after.get("principal_id") or PENDING
        listed_fics = reads.fics.get(key, [])
        fics = []
        seen: dict[str, Any] = {
            "identity": _brief(identity.before),
            "federated_credentials": {},
            "role_assignments": [],
        }
        planned: dict[str, Any] = {
            "identity": _brief(identity.after),
            "federated_credentials": {},
            "role_assignments": [],
        }
        for subject in workload.subjects:
            outcome = ensure_federated_credential(
                self.fics,
                workload.identity,
                fic_name(batch.cluster, subject),
                state="present",
                issuer=batch.issuer_url,
                subject=subject,
                audiences=[DEFAULT_AUDIENCE],
                check_mode=check_mode,
                siblings=listed_fics,
            )
            fics.append({"name": fic_name(batch.cluster, subject), "subject": subject, "action": outcome.action})
            for side, state in ((seen, outcome.before), (planned, outcome.after)):
                if state:
                    side["federated_credentials"][state["name"]] = {
                        "issuer": state["issuer"],
                        "subject": state["subject"],
                    }
        listed = reads.assignments.get(principal.lower(), []) if known else []
        roles = []
        for spec in workload.roles:
            role = resolved[(workload.name, spec.role + "|" + spec.scope)]
            outcome = ensure_role_assignment(
                self.roles,
                scope=spec.scope,
                role=role,
                principal_id=principal,
                principal_type="ServicePrincipal",
                state="present",
                check_mode=check_mode,
                condition=spec.condition,
                condition_version=spec.condition_version,
                description=spec.description,
                listed=listed,
            )
            # A new identity's assignments are named after its principal, which Azure assigns on creation.
            name = None if principal == PENDING else (outcome.after or {}).get("name")
            if outcome.before:
                seen["role_assignments"].append(f"{role.name} @ {spec.scope}")
            planned["role_assignments"].append(f"{role.name} @ {spec.scope}")
            roles.append(
                {
                    "role": role.name,
                    "role_definition_guid": role.guid,
                    "scope": spec.scope,
                    "name": name,
                    "action": outcome.action,
                    "notes": outcome.notes,
                }
            )
        changed = (
            identity.changed
            or any(f["action"] != "unchanged" for f in fics)
            or any(r["action"] != "unchanged" for r in roles)
        )
        return {
            "name": workload.name,
            "namespace": workload.namespace,
            "service_account": workload.service_account,
            "subject": workload.subject,
            "identity": {**after, "action": identity.action, "owned": ours},
            "federated_credentials": fics,
            "role_assignments": roles,
            "changed": changed,
            "diff": {"before": seen, "after": planned},
        }

    def remove(self, batch: Batch, reads: Reads, check_mode: bool) -> dict[str, Any]:
        """state=absent for the listed workloads (and, with prune, everything else made for this cluster).

        An identity this collection made for this cluster goes whole: its role assignments first (Azure would
        leave them behind, orphaned), then the identity, which takes its federated credentials with it. An
        identity made elsewhere stays: only this cluster's credentials on it and the declared assignments go.
        """
        done = []
        for workload in batch.workloads:
            key = _identity_key(workload.identity)
            identity = reads.identities.get(key)
            where = f"cluster {batch.cluster}: workload '{workload.name}'"
            fics: list[dict[str, Any]] = []
            roles: list[dict[str, Any]] = []
            before: dict[str, Any] | None = None
            if identity is None:
                action = "absent"
            elif self.owned(identity, batch.cluster):
                action = "deleted"
                before = {"identity": _brief(identity)}
                roles = self._remove_assignments(identity, reads, check_mode)
                if not check_mode:
                    self.identities.delete(
                        IdentityRef(self.subscription_id, identity["resource_group"], identity["name"])
                    )
            elif (identity.get("tags") or {}).get(OWNER_TAG) == OWNER_VALUE:
                action = "kept"  # made by this collection for another cluster: that cluster's to remove
            else:
                action = "kept"
                ref = IdentityRef(self.subscription_id, identity["resource_group"], identity["name"])
                names = {fic_name(batch.cluster, subject).lower() for subject in workload.subjects}
                for fic in reads.fics.get(key, []):
                    if fic["name"].lower() in names:
                        if not check_mode:
                            self.fics.delete(ref, fic["name"])
                        fics.append({"name": fic["name"], "subject": fic["subject"], "action": "deleted"})
                declared = set()
                for position, spec in enumerate(workload.roles):
                    try:
                        declared.add((parse_scope(spec.scope).key, self.resolve(spec, reads).guid))
                    except ValidationError as exc:
                        raise ValidationError([f"{where}: roles[{position}]: {p}" for p in exc.problems]) from exc
                roles = self._remove_assignments(identity, reads, check_mode, only=declared)
                if fics or roles:
                    before = {"federated_credentials": [f["name"] for f in fics]}
            if before is not None:
                before["role_assignments"] = [f"{r['role_definition_guid']} @ {r['scope']}" for r in roles]
            done.append(
                {
                    "name": workload.name,
                    "namespace": workload.namespace,
                    "service_account": workload.service_account,
                    "subject": workload.subject,
                    "identity": {**(identity or {}), "name": workload.identity.name, "action": action},
                    "federated_credentials": fics,
                    "role_assignments": [{**r, "action": "deleted"} for r in roles],
                    "changed": action == "deleted" or bool(fics or roles),
                    "diff": {"before": before, "after": None},
                }
            )
        return self._report(done, self._prune(batch, reads, {}, check_mode))

    def _remove_assignments(
        self,
        identity: dict[str, Any],
        reads: Reads,
        check_mode: bool,
        only: set[tuple[str, str]] | None = None,
        keep: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
    ) -> list[dict[str, Any]]:
        """Delete the identity's assignments (those in ``only``, if given) that are not in ``keep``.

        Both sets hold (scope key, role definition GUID) pairs; returns what was (or would be) deleted.
        """
        removed = []
        for model in reads.assignments.get(str(identity["principal_id"]).lower(), []):
            state = assignment_state(model)
            pair = (parse_scope(state["scope"]).key, state["role_definition_guid"])
            if (only is None or pair in only) and pair not in keep:
                if not check_mode:
                    self.roles.delete(state["scope"], state["name"])
                removed.append(
                    {
                        "scope": state["scope"],
                        "role_definition_guid": state["role_definition_guid"],
                        "name": state["name"],
                    }
                )
        return removed

    def _prune(
        self, batch: Batch, reads: Reads, resolved: dict[tuple[str, str], Role], check_mode: bool
    ) -> dict[str, list[dict[str, Any]]]:
        """What this collection made for this cluster and the list no longer declares (only with prune)."""
        pruned: dict[str, list[dict[str, Any]]] = {
            "identities": [],
            "federated_credentials": [],
            "role_assignments": [],
        }
        if not batch.prune:
            return pruned
        absent = batch.state == "absent"
        declared = {} if absent else {_identity_key(w.identity): w for w in batch.workloads}
        handled = {_identity_key(w.identity) for w in batch.workloads} if absent else set()
        for key, identity in sorted(reads.identities.items()):
            if key in handled or not self.owned(identity, batch.cluster):
                continue  # never touch what this collection (for this cluster) did not make
            ref = IdentityRef(self.subscription_id, identity["resource_group"], identity["name"])
            workload = declared.get(key)
            wanted_fics = {fic_name(batch.cluster, s).lower() for s in workload.subjects} if workload else set()
            wanted_roles = (
                {
                    (parse_scope(r.scope).key, resolved[(workload.name, r.role + "|" + r.scope)].guid)
                    for r in workload.roles
                }
                if workload
                else set()
            )
            removed = self._remove_assignments(identity, reads, check_mode, keep=wanted_roles)
            pruned["role_assignments"].extend({"identity": identity["name"], **r} for r in removed)
            if workload is None:
                if not check_mode:
                    self.identities.delete(ref)
                pruned["identities"].append({"name": identity["name"], "resource_group": identity["resource_group"]})
                continue
            for fic in reads.fics.get(key, []):
                if fic["issuer"] == batch.issuer_url and fic["name"].lower() not in wanted_fics:
                    if not check_mode:
                        self.fics.delete(ref, fic["name"])
                    pruned["federated_credentials"].append(
                        {"identity": identity["name"], "name": fic["name"], "subject": fic["subject"]}
                    )
        return pruned

    @staticmethod
    def _report(workloads: list[dict[str, Any]], pruned: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """The result, and a before/after diff per workload (pruned objects appear only before)."""
        changed = any(w["changed"] for w in workloads) or any(pruned.values())
        before = {w["name"]: w["diff"]["before"] for w in workloads}
        after = {w["name"]: w.pop("diff")["after"] for w in workloads}
        if any(pruned.values()):
            before["(pruned)"] = pruned
        return {
            "changed": changed,
            "workloads": workloads,
            "pruned": pruned,
            "diff": {"before": before, "after": after},
        }


def _brief(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identity as a diff shows it: what the user can change, not the ids Azure assigns."""
    if identity is None:
        return None
    return {
        "name": identity["name"],
        "resource_group": identity["resource_group"],
        "location": identity["location"],
        "tags": identity["tags"],
    }
