# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the Azure batch reads, in bulk, before planning.

The identity resource groups' identities (one list each), the role definitions and role
assignments of each subscription involved (one request each: ARM answers them whole), and each
existing identity's federated credentials. A no-op run costs N + 3 requests for N workloads. Role
references resolve against these reads; only a custom role not visible at the subscription costs
a request, once per (scope, role) however many workloads name it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ._azure_application import ApplicationApi
from ._azure_cluster import ClusterApi
from ._azure_cosmos import AccountState, CosmosApi
from ._azure_federated_credential import FederatedCredentialApi
from ._azure_identity import IdentityApi
from ._azure_key_vault import KeyVaultApi, VaultState
from ._azure_postgres import DatabaseClient, PostgresApi, ServerState
from ._azure_role_assignment import Role, RoleAssignmentApi
from ._errors import AzureApiError, ValidationError
from ._ids import IdentityRef, parse_role, parse_scope
from ._inventory import RoleSpec, WorkloadSpec
from ._ownership import NAMESPACE_TAG, SERVICE_ACCOUNT_TAG, WORKLOAD_TAG, Claim, others_claims, owned_by
from ._results import CosmosRoleAssignmentState, FederatedCredentialState, IdentityState, ReplacedIdentity


@dataclass
class Peer:
    """Another cluster of the inventory, with its workloads that name an identity explicitly (only those can be
    shared: a default name carries its cluster's). ``in_run``: it converges in this run too (not limited out)."""

    cluster: str
    scope: str | None
    in_run: bool
    workloads: list[WorkloadSpec]
    # Its issuer, when the inventory or an earlier play knows it: tells its credentials on a shared identity apart.
    issuer_url: str | None = None


@dataclass
class Batch:
    """One cluster's workloads, as the Azure side sees them."""

    cluster: str
    subscription_id: str
    issuer_url: str | None
    location: str | None
    workloads: list[WorkloadSpec]
    prune: bool
    allow_privileged_roles: bool
    # Resource groups scanned for identities besides the workloads' own: the default one, so that pruning
    # (or tearing down) still finds this cluster's identities when the list no longer names any.
    resource_groups: tuple[str, ...] = ()
    state: str = "present"
    # Removed applications also leave Entra's deleted items (not restorable).
    application_purge: bool = False
    # Where the cluster is (``_ownership.cluster_scope``): what tells it from another cluster of the same name.
    cluster_scope: str | None = None
    # Prune keeps an identity a listed workload's ServiceAccount moves away from (its pods still sign in as it until
    # they restart): reported as replaced, removed by a later call once no pod uses it.
    defer_replaced: bool = False
    # Only read, never converged (verification): Graph's read permissions are enough for app registrations.
    read_only: bool = False
    # The inventory's other clusters (their workloads that may share an identity with this one's).
    peers: list[Peer] = field(default_factory=list)
    # Release the claims (and credentials) of other clusters that ARM says no longer exist, on the identities and
    # applications this cluster uses; without it they are reported (``_azure_batch_gone``). The claims found gone and
    # to be released, as (cluster, place), once read.
    release_gone: bool = False
    # The name this run's principal is added under as a PostgreSQL flexible server's Microsoft Entra administrator
    # where it is not one (and Entra authentication enabled); None: such a server is a problem the plan names.
    database_admin_name: str | None = None
    released_claims: set[tuple[str, str | None]] = field(default_factory=set)
    # Managed-identity workloads this run's plan (its check-mode pass, moments ago, on the same list) found unchanged,
    # when it found nothing to prune: their identities' credentials are not listed again, nor checked or converged.
    # Their rows are the plan's (the roles take them from it): one changed workload among many costs its own reads.
    reused: frozenset[str] = frozenset()

    def reuses(self, workload: WorkloadSpec) -> bool:
        """Left as the plan found it: not read, checked or converged again (``reused``)."""
        return workload.name in self.reused and not workload.is_application

    @property
    def converged_workloads(self) -> list[WorkloadSpec]:
        """The workloads this call reads, checks and converges: all of them but those the plan's rows stand for."""
        return [w for w in self.workloads if not self.reuses(w)]

    def released(self, claim: Claim) -> bool:
        """A claim of a cluster that no longer exists, released by this run."""
        return (claim.cluster, claim.scope) in self.released_claims

    def owns(self, tags: dict[str, str] | None) -> bool:
        """Made by this collection, and used by this very cluster (name and place): its claim is on it."""
        return owned_by(tags, self.cluster, self.cluster_scope)

    def others(self, tags: dict[str, str] | None) -> list[Claim]:
        """The other clusters that use an identity this collection made."""
        return others_claims(tags, self.cluster, self.cluster_scope)

    def sharing(self, workload: WorkloadSpec) -> list[tuple[Peer, WorkloadSpec]]:
        """The inventory's other clusters' workloads that name this workload's identity (or application)."""
        key = shared_key(workload, self.ref(workload).resource_group)
        if key is None:
            return []
        return [
            (peer, theirs)
            for peer in self.peers
            for theirs in peer.workloads
            if shared_key(theirs, theirs.identity_resource_group or "") == key
        ]

    @property
    def identity_workloads(self) -> list[WorkloadSpec]:
        return [w for w in self.workloads if not w.is_application]

    def ref(self, workload: WorkloadSpec) -> IdentityRef:
        group = workload.identity_resource_group or (self.resource_groups[0] if self.resource_groups else "")
        return IdentityRef(self.subscription_id, group, workload.identity_name)

    def ref_of(self, identity: IdentityState) -> IdentityRef:
        return IdentityRef(self.subscription_id, identity["resource_group"], identity["name"])


def continue_identities(batch: Batch, reads: Reads) -> None:
    """A workload renamed, or moved to another namespace or service account, keeps the identity this collection made
    for it, so its client id (what its running pods sign in as) and its role assignments: a new identity would cut
    their sign-in until restarted. Found by the marks on it (the identity's name is recorded, not re-derived), when
    the workload goes by the default name and no identity has that name yet; only an identity made for this very
    cluster that no other listed workload uses, in the workload's resource group. Renamed (same namespace and service
    account) is looked for first, then moved (same workload name); more than one match is no match: a new identity.
    """
    listed = batch.identity_workloads
    names = {w.name for w in listed}
    taken = {ref_key(batch.ref(w)) for w in listed}
    for workload in listed:
        ref = batch.ref(workload)
        if not workload.named_by_default or reads.identity(ref) is not None:
            continue
        mine = [
            (key, identity)
            for key, identity in sorted(reads.identities.items())
            if key not in taken
            and identity["resource_group"].lower() == ref.resource_group.lower()
            and batch.owns(identity["tags"])
        ]
        renamed = [
            (k, i)
            for k, i in mine
            if i["tags"].get(NAMESPACE_TAG) == workload.namespace
            and i["tags"].get(SERVICE_ACCOUNT_TAG) == workload.service_account
            and i["tags"].get(WORKLOAD_TAG) not in names - {workload.name}
        ]
        moved = [(k, i) for k, i in mine if i["tags"].get(WORKLOAD_TAG) == workload.name]
        for found, how in ((renamed, "renamed"), (moved, "moved")):
            if len(found) != 1:
                continue
            key, identity = found[0]
            tags = identity["tags"]
            if how == "renamed":
                why = f"workload {tags.get(WORKLOAD_TAG)} renamed {workload.name}"
            else:
                why = (
                    f"moved from {tags.get(NAMESPACE_TAG)}/{tags.get(SERVICE_ACCOUNT_TAG)}: the new subject is trusted "
                    "first; the old one goes with prune"
                )
            reads.continued[workload.name] = (
                f"identity {identity['name']} kept (client id {identity['client_id']}, its pods' sign-in "
                f"uninterrupted): {why}"
            )
            workload.identity_name = identity["name"]
            taken.add(key)
            break


def shared_key(workload: WorkloadSpec, resource_group: str) -> str | None:
    """What names a workload's identity or application across clusters; None when it cannot be shared: a default
    name carries its cluster's."""
    if workload.named_by_default:
        return None
    if workload.is_application:
        if workload.application_id:
            return f"application-id:{workload.application_id.lower()}"
        return f"application:{str(workload.application_unique_name).lower()}"
    return f"identity:{identity_key(resource_group, workload.identity_name)}"


def identity_key(resource_group: str, name: str) -> str:
    """Identities are looked up case-insensitively, as ARM names them."""
    return f"{resource_group}/{name}".lower()


def ref_key(ref: IdentityRef) -> str:
    return identity_key(ref.resource_group, ref.name)


# A new identity's or service principal's object id, until Entra assigns it (check mode plans with it).
PENDING = "00000000-0000-0000-0000-000000000000"
Resolved = dict[tuple[str, str], Role]  # role_key -> the role definition


def role_key(workload: WorkloadSpec, role: str, scope: str) -> tuple[str, str]:
    """A declared role of a workload, as resolved before any write."""
    return (workload.name, f"{role}|{scope}")


@dataclass
class Reads:
    identities: dict[str, IdentityState] = field(default_factory=dict)  # identity_key -> identity
    roles_by_name: dict[str, dict[str, list[Role]]] = field(default_factory=dict)  # sub -> lower name -> roles
    roles_by_guid: dict[str, dict[str, Role]] = field(default_factory=dict)
    assignments: dict[str, list[Any]] = field(default_factory=dict)  # principal lower -> SDK models
    fics: dict[str, list[FederatedCredentialState]] = field(default_factory=dict)  # identity_key -> its FICs
    roles_at_scope: dict[tuple[str, str], Role] = field(default_factory=dict)  # (scope key, role) -> role
    # App registrations: per workload (application, service principal); credentials per application object id;
    # applications made for this cluster that no listed workload names (prune and teardown only).
    applications: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = field(default_factory=dict)
    app_fics: dict[str, list[FederatedCredentialState]] = field(default_factory=dict)
    marked_apps: list[tuple[dict[str, Any], dict[str, Any] | None]] = field(default_factory=list)
    # Identity resource groups that do not exist; per scope key, why an assignment cannot be made there (None: it can).
    missing_groups: set[str] = field(default_factory=set)
    scope_problems: dict[str, str | None] = field(default_factory=dict)
    # Workloads that keep the identity made for them under another name or subject (renamed, moved): why, per workload.
    continued: dict[str, str] = field(default_factory=dict)
    # An application kept through a rename: the marks of the workload it was made for, replaced by the new name's.
    stale_marks: dict[str, list[str]] = field(default_factory=dict)
    # The resource groups whose identities were listed (lowercase), and this cluster's role assignments whose principal
    # is gone or unused (``_azure_batch_orphans.Orphan``).
    groups_read: set[str] = field(default_factory=set)
    orphans: list[Any] = field(default_factory=list)
    # Identities made elsewhere that a listed workload moved away from, whose assignments wait for its pods to restart.
    held: list[ReplacedIdentity] = field(default_factory=list)
    # Key vaults by lowercase id, with their access policies (None: it does not exist): those the workloads name, and
    # every vault of the subscription once ``all_vaults_read`` (a principal let go of may hold entries anywhere).
    vaults: dict[str, VaultState | None] = field(default_factory=dict)
    all_vaults_read: bool = False
    # Cosmos DB accounts by lowercase id, with their SQL roles (and assignments, where the run grants or removes; None:
    # it does not exist), every account of the subscription once ``all_cosmos_read``; what telling SQL roles from
    # ARM roles found: per workload, its problems, and per declared role that stayed ARM's, what the account offered.
    cosmos_accounts: dict[str, AccountState | None] = field(default_factory=dict)
    all_cosmos_read: bool = False
    cosmos_problems: dict[str, list[str]] = field(default_factory=dict)
    # SQL role assignments this collection made whose principal Microsoft Graph confirms gone (prune removes them).
    cosmos_orphans: list[CosmosRoleAssignmentState] = field(default_factory=list)
    role_hints: dict[tuple[str, str], str] = field(default_factory=dict)
    # PostgreSQL flexible servers by lowercase id, with their Entra roles as this run's principal (their administrator)
    # reads them (None: it does not exist), every server of the subscription once ``all_postgres_read``.
    postgres_servers: dict[str, ServerState | None] = field(default_factory=dict)
    all_postgres_read: bool = False
    # Roles this collection made whose principal Microsoft Graph confirms gone: (server key, object id).
    database_orphans: list[tuple[str, str]] = field(default_factory=list)
    # Principals Microsoft Graph was asked about for orphaned data grants: whether each is gone.
    principals_gone: dict[str, bool] = field(default_factory=dict)

    def identity(self, ref: IdentityRef) -> IdentityState | None:
        return self.identities.get(ref_key(ref))

    def role_of(self, subscription: str, model: Any) -> Role:
        """A listed assignment's role, named when the subscription's definitions know it."""
        guid = parse_role(model.role_definition_id).guid or ""
        known = self.roles_by_guid.get(subscription, {}).get(guid)
        return Role(model.role_definition_id, guid, known.name if known else None)


@dataclass(frozen=True)
class AzureApis:
    """The I/O layer the batch reads and writes through (fakes of it in the unit tests)."""

    identities: IdentityApi
    fics: FederatedCredentialApi
    roles: RoleAssignmentApi
    subscription_id: str
    # Whether another cluster that claims a shared identity still exists (``_azure_batch_gone``); None: not asked.
    clusters: ClusterApi | None = None
    # Key vaults and their access policies (``_azure_batch_access_policies``).
    vaults: KeyVaultApi | None = None
    # Cosmos DB accounts' SQL roles (``_azure_batch_cosmos``).
    cosmos: CosmosApi | None = None
    # PostgreSQL flexible servers' Entra administrators (ARM) and database roles (the servers themselves).
    postgres: PostgresApi | None = None
    databases: DatabaseClient | None = None


@dataclass
class BatchContext:
    """What every collaborator of one cluster's batch is handed: the I/O it reads and writes through (Graph's too, when
    app registrations are in play) and the warnings the run shows the operator. The collaborators (reading, checks,
    the identity kinds, the grants, removal, prune, orphans) are functions or small classes that take it; none
    inherits from another."""

    apis: AzureApis
    applications: ApplicationApi | None = None
    warnings: list[str] = field(default_factory=list)  # to show the operator; not reasons to stop

    @property
    def identities(self) -> IdentityApi:
        return self.apis.identities

    @property
    def fics(self) -> FederatedCredentialApi:
        return self.apis.fics

    @property
    def roles(self) -> RoleAssignmentApi:
        return self.apis.roles

    @property
    def subscription_id(self) -> str:
        return self.apis.subscription_id


READS_PER_WORKER = 2


def read_batch(ctx: BatchContext, batch: Batch, workers: int, reads: Reads) -> None:
    """Everything the plan needs on the managed-identity and ARM side, read once into ``reads``. ``workers``: how many
    workloads converge at once; twice as many reads are in flight: the subscriptions' role definitions and assignments
    while the identities are listed, then every identity's credentials (one request each, the only read that grows
    with N: in parallel, a no-op's time is ARM's read bucket's)."""
    groups = {g.lower(): g for g in batch.resource_groups}
    identities = batch.identity_workloads
    groups.update({batch.ref(w).resource_group.lower(): batch.ref(w).resource_group for w in identities})
    reads.groups_read = set(groups)
    subscriptions = {
        parse_scope(r.scope).subscription or ctx.subscription_id for w in batch.workloads for r in w.roles
    } | {ctx.subscription_id}
    # Reads go READS_PER_WORKER times as many at once as converges: a no-op's time is the credential lists' round trips
    # (one per identity), ARM counts reads against its read bucket whatever their concurrency, and the client's CPU per
    # request (about 2 ms) keeps up with 16 in flight (measured at 200 identities: 1.3 s at 8, 0.7 s at 16).
    with ThreadPoolExecutor(max_workers=max(1, workers * READS_PER_WORKER)) as pool:
        # Each writes only its own keys; .result() re-raises a failure.
        by_subscription = {sub: pool.submit(_read_subscription, ctx, sub, reads) for sub in sorted(subscriptions)}
        for group in groups.values():
            for identity in _identities_in(ctx, group, reads):
                reads.identities[identity_key(identity["resource_group"], identity["name"])] = identity
        continue_identities(batch, reads)
        listed = [(key, reads.identities[key]) for key in sorted(_credentials_to_list(batch, reads))]
        credentials = [pool.submit(_read_credentials, ctx, batch, reads, *item) for item in listed]
        for sub, read in by_subscription.items():
            try:
                read.result()
            except AzureApiError as exc:
                if sub.lower() == str(ctx.subscription_id).lower() or exc.status not in (403, 404):
                    raise
                raise ValidationError(_unknown_subscription(batch, sub, exc)) from exc
        for read in credentials:
            read.result()


def _unknown_subscription(batch: Batch, sub: str, exc: AzureApiError) -> list[str]:
    """Each declared role whose scope is in a subscription that does not answer, named by workload and field."""
    why = "does not exist" if exc.status == 404 else "is not readable by the automation's principal"
    return [
        f"cluster {batch.cluster}: workload {w.name!r}: roles[{i}]: scope: subscription {sub} {why} ({exc.code}); "
        "check the scope's subscription id"
        for w in batch.workloads
        for i, r in ((r.listed_at(i), r) for i, r in enumerate(w.roles))
        if (parse_scope(r.scope).subscription or "").lower() == sub.lower()
    ]


def _credentials_to_list(batch: Batch, reads: Reads) -> set[str]:
    """The identities whose federated credentials the plan needs: the listed workloads', and (prune) this cluster's."""
    wanted = {identity_key(batch.ref(w).resource_group, w.identity_name) for w in batch.identity_workloads}
    owned = {k for k, i in reads.identities.items() if batch.owns(i["tags"])} if batch.prune else set()
    # An identity only workloads the plan left unchanged use: its credentials are the plan's, not listed again.
    needed = {ref_key(batch.ref(w)) for w in batch.identity_workloads if not batch.reuses(w)}
    only_reused = {ref_key(batch.ref(w)) for w in batch.identity_workloads if batch.reuses(w)} - needed
    wanted -= only_reused
    owned -= only_reused
    if batch.state == "absent":
        # An identity of ours goes whole, its credentials with it; only others' credentials need listing.
        owned = set()
        # So do those another cluster uses too: only this cluster's credentials go from them.
        wanted = {
            k
            for k in wanted
            if k in reads.identities
            and (not batch.owns(reads.identities[k]["tags"]) or batch.others(reads.identities[k]["tags"]))
        }
    return {key for key in wanted | owned if key in reads.identities}


def _read_credentials(ctx: BatchContext, batch: Batch, reads: Reads, key: str, identity: IdentityState) -> None:
    """Its federated credentials. A 404 on an identity listed a moment ago means it changed while this run read
    it (deleted, or deleted and made again, by someone else): read once more, plan on what is there, and say so,
    rather than fail on a raw 404."""
    ref = batch.ref_of(identity)
    try:
        reads.fics[key] = ctx.fics.list_all(ref)
        return
    except AzureApiError as exc:
        if exc.status != 404:
            raise
    again = ctx.identities.get(ref)
    if again is None:
        del reads.identities[key]
        ctx.warnings.append(
            f"cluster {batch.cluster}: identity {identity['name']} in {identity['resource_group']} was deleted "
            "while this run read it (by someone else): planned as not there"
        )
        return
    reads.identities[key] = again
    reads.fics[key] = ctx.fics.list_all(ref)
    ctx.warnings.append(
        f"cluster {batch.cluster}: identity {identity['name']} in {identity['resource_group']} changed while this "
        f"run read it (client id {identity['client_id']} then, {again['client_id']} now): planned on what is there"
    )


def _identities_in(ctx: BatchContext, group: str, reads: Reads) -> list[IdentityState]:
    try:
        return ctx.identities.list_all(group)
    except AzureApiError as exc:
        if exc.status == 404 and exc.code == "ResourceGroupNotFound":
            reads.missing_groups.add(group.lower())
            return []
        raise


def _read_subscription(ctx: BatchContext, sub: str, reads: Reads) -> None:
    scope = f"/subscriptions/{sub}"
    by_name: dict[str, list[Role]] = {}
    by_guid: dict[str, Role] = {}
    for role in ctx.roles.list_definitions(scope):
        by_name.setdefault((role.name or "").lower(), []).append(role)
        by_guid[role.guid] = role
    reads.roles_by_name[sub] = by_name
    reads.roles_by_guid[sub] = by_guid
    # ARM answers a scope's role assignments whole: one request for every principal at once.
    for model in ctx.roles.list_at(scope):
        reads.assignments.setdefault(model.principal_id.lower(), []).append(model)


def resolve(ctx: BatchContext, spec: RoleSpec, reads: Reads) -> Role:
    """A declared role, resolved against the subscription's definitions read in bulk."""
    scope = parse_scope(spec.scope)
    sub = scope.subscription or ctx.subscription_id
    ref = parse_role(spec.role)
    if ref.guid is not None and ref.guid in reads.roles_by_guid.get(sub, {}):
        return reads.roles_by_guid[sub][ref.guid]
    matches = reads.roles_by_name.get(sub, {}).get(spec.role.lower(), []) if ref.guid is None else []
    exact = [r for r in matches if r.name == spec.role] or matches
    if len(exact) == 1:
        return exact[0]
    # Not visible at the subscription (a custom role assignable lower down): ask at the scope itself,
    # once per scope and role however many workloads name them.
    key = (scope.key, spec.role)
    if key not in reads.roles_at_scope:
        reads.roles_at_scope[key] = ctx.roles.resolve_role(spec.scope, spec.role)
    return reads.roles_at_scope[key]
