# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the engines return, typed.

The ``*State`` dicts are one object as the modules report it; :class:`Outcome` is what one
``ensure_*`` call did (or would do, in check mode). The batch results (``AzureBatchResult``,
``KubeBatchResult``) are the contracts between the two batch modules, the roles that register them
and ``plugins/filter/rollout.py``, which joins them into the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, NotRequired, TypedDict, TypeVar


class IdentityState(TypedDict):
    id: str
    name: str
    resource_group: str
    location: str
    tags: dict[str, str]
    client_id: str | None
    principal_id: str | None
    tenant_id: str | None


class FederatedCredentialState(TypedDict):
    id: str
    name: str
    identity: str
    issuer: str
    subject: str
    audiences: list[str]


class RoleAssignmentState(TypedDict):
    id: str
    name: str
    scope: str
    role_definition_id: str
    role_definition_guid: str
    role: str | None
    principal_id: str
    principal_type: str | None
    condition: str | None
    condition_version: str | None
    description: str | None


class ApplicationState(TypedDict):
    """An app registration and its service principal, as the modules report them."""

    id: str | None  # the application's object id
    app_id: str | None  # its client id (what a ServiceAccount's client-id annotation carries)
    display_name: str
    unique_name: str | None
    tags: list[str]
    service_principal_id: str | None  # the principal role assignments name
    tenant_id: str | None


class IssuerState(TypedDict):
    id: str | None
    name: str | None
    oidc_issuer_enabled: bool
    issuer_url: str | None
    workload_identity_enabled: bool
    provisioning_state: str | None
    kubernetes_version: str | None


class Unread:
    """Marks an object the caller of an engine did not read in advance (the engine reads it itself)."""


UNREAD = Unread()


class AccessPolicyState(TypedDict):
    """A principal's own entry in a key vault's access policies."""

    vault: str
    object_id: str
    permissions: dict[str, list[str]]  # kind -> permissions (Key Vault's spelling, sorted)


class CosmosRoleAssignmentState(TypedDict):
    """A Cosmos DB SQL role assignment (a child of its account)."""

    name: str
    account: str  # the account's resource id
    role_definition_id: str
    scope: str
    principal_id: str


class DatabaseRoleState(TypedDict):
    """A principal's database role on a PostgreSQL flexible server: the role it signs in as, its memberships, and
    whether this collection made it."""

    server: str
    user: str
    member_of: list[str]
    ours: bool


S = TypeVar(
    "S",
    DatabaseRoleState,
    IdentityState,
    FederatedCredentialState,
    RoleAssignmentState,
    IssuerState,
    ApplicationState,
    AccessPolicyState,
    CosmosRoleAssignmentState,
)


@dataclass
class Outcome(Generic[S]):
    """What ensuring one object did (or, in check mode, would do)."""

    changed: bool
    action: str  # created | updated | deleted | unchanged | absent | released
    before: S | None
    after: S | None
    notes: list[str] = field(default_factory=list)

    def diff(self) -> dict[str, Any]:
        return {"before": self.before or {}, "after": self.after or {}}


# -- the Azure batch (workload_identities) ----------------------------------------------------------
class IdentityResult(TypedDict, total=False):
    """A workload's identity as the batch reports it: a user-assigned identity (IdentityState's fields) or an
    application (``kind: application``, its appId as ``client_id``, its service principal as ``principal_id``),
    plus what was done and whether this collection made it. An absent one has only a name and an action."""

    id: str
    name: str
    resource_group: str
    location: str
    tags: dict[str, str]
    client_id: str | None
    principal_id: str | None
    tenant_id: str | None
    action: str
    owned: bool
    kind: str
    unique_name: str | None


class FederatedCredentialRow(TypedDict):
    name: str
    subject: str
    action: str


class RoleAssignmentRow(TypedDict):
    role: str | None
    role_definition_guid: str
    scope: str
    name: str | None
    action: str
    adopted: bool  # an operator's assignment (no mark, a name of its own): used as it is, never taken for an orphan
    notes: list[str]


class AccessPolicyRow(TypedDict):
    """A Key Vault access policy entry of the workload's principal (declared in ``roles`` with ``access_policy``)."""

    vault: str  # the vault's resource id
    permissions: dict[str, list[str]]  # as declared (deleted: as the entry held them)
    action: str
    adopted: bool  # an operator's principal already held it: used as it is, extra permissions kept
    notes: list[str]


class CosmosRoleRow(TypedDict):
    """A Cosmos DB SQL role assignment of the workload's principal (a ``roles`` entry on a Cosmos DB account)."""

    role: str  # the definition's roleName
    role_definition_id: str
    scope: str
    name: str | None  # the assignment's name (None until its principal exists)
    action: str
    adopted: bool  # an operator's assignment, found and used as it is
    notes: list[str]


class DatabaseRoleRow(TypedDict):
    """A database role of the workload's principal on a PostgreSQL flexible server (a ``roles`` entry with
    ``database``): the role it signs in as, the roles it is a member of."""

    server: str  # the flexible server's resource id
    database: str
    user: str  # the role it signs in as (one found mapped to its principal is adopted under its own name)
    roles: list[str]  # as declared (deleted: the memberships revoked)
    granted: list[str]  # the memberships this run gives it (or would)
    action: str
    adopted: bool  # a role an operator made for its principal, used as it is
    notes: list[str]


class WorkloadResult(TypedDict):
    name: str
    namespace: str
    service_account: str
    subject: str
    identity: IdentityResult
    federated_credentials: list[FederatedCredentialRow]
    role_assignments: list[RoleAssignmentRow]
    # Only for a workload that declares access policies (or whose entries were removed).
    access_policies: NotRequired[list[AccessPolicyRow]]
    cosmos_roles: NotRequired[list[CosmosRoleRow]]
    database_roles: NotRequired[list[DatabaseRoleRow]]
    changed: bool
    # What a person should know about the change: an issuer a credential no longer trusts, an identity kept through a
    # rename or a move.
    notes: list[str]


class PrunedIdentity(TypedDict):
    name: str
    resource_group: str


class PrunedCredential(TypedDict):
    identity: str
    name: str
    subject: str


class PrunedAssignment(TypedDict):
    identity: str
    role: str | None
    role_definition_guid: str
    scope: str
    name: str


class PrunedAccessPolicy(TypedDict):
    identity: str
    vault: str
    permissions: dict[str, list[str]]


class PrunedCosmosRole(TypedDict):
    identity: str
    role: str
    role_definition_id: str
    scope: str
    name: str


class PrunedDatabaseRole(TypedDict):
    identity: str
    server: str
    user: str
    roles: list[str]  # the memberships revoked
    dropped: bool  # the role itself dropped (only ever one this collection made)


class PrunedApplication(TypedDict):
    name: str
    app_id: str
    purged: bool  # False: in Entra's deleted items for 30 days


class ReplacedIdentity(TypedDict):
    """An identity (or app registration) of ours that a listed workload's ServiceAccount moves away from: kept (with
    its role assignments and credentials) until no pod signs in as it, then removed."""

    name: str
    resource_group: str  # empty for an application
    client_id: str
    workload: str  # the workload whose ServiceAccount it served
    kind: NotRequired[str]  # "application" for an app registration (its client id is its appId)
    # Made elsewhere: it stays; only the role assignments this collection granted it go (``_azure_batch_orphans``).
    assignments_only: NotRequired[bool]


class ReleasedIdentity(TypedDict):
    """An identity of ours that this cluster no longer uses and other clusters still do: this cluster's credentials
    and its claim went; the identity and its role assignments stay for them."""

    name: str
    resource_group: str
    used_by: list[str]  # the clusters that still use it, as a person reads them


class Pruned(TypedDict):
    identities: list[PrunedIdentity]
    applications: list[PrunedApplication]
    federated_credentials: list[PrunedCredential]
    role_assignments: list[PrunedAssignment]
    replaced: list[ReplacedIdentity]
    released: list[ReleasedIdentity]
    # Key Vault access policy entries of identities or applications removed (only when there were some).
    access_policies: NotRequired[list[PrunedAccessPolicy]]
    # Cosmos DB SQL role assignments of identities or applications removed (only when there were some).
    cosmos_roles: NotRequired[list[PrunedCosmosRole]]
    # Database roles on PostgreSQL flexible servers of identities or applications removed (only when there were some).
    database_roles: NotRequired[list[PrunedDatabaseRole]]


class OrphanedAssignment(TypedDict):
    """A role assignment this collection granted for a workload of this cluster whose principal is gone (or is an
    identity nothing of this cluster uses now): deleted with prune, else reported."""

    name: str
    scope: str
    role: str | None
    role_definition_guid: str
    principal_id: str
    workload: str  # namespace/name, as the mark says
    granted_to: str  # "identity <resource group>/<name>" or "application <appId>"
    why: str
    action: str  # deleted | reported (prune off)


class AzureBatchResult(TypedDict, total=False):
    changed: bool
    workloads: list[WorkloadResult]
    pruned: Pruned
    orphaned_assignments: list[OrphanedAssignment]
    diff: dict[str, Any]


def kube_identities(*results: AzureBatchResult) -> list[dict[str, Any]]:
    """What service_accounts needs of workload_identities' rows: each workload's name and its identity's client and
    tenant ids, not the whole identity, credentials and grants. Given several results (a converge, then its plan), a
    workload is taken from the first that has a row for it: a converge has none for the workloads it reused."""
    taken: dict[str, dict[str, Any]] = {}
    for result in results:
        for row in result.get("workloads") or []:
            identity = row.get("identity") or {}
            taken.setdefault(
                row.get("name"),
                {"name": row.get("name"), "identity": {key: identity.get(key) for key in ("client_id", "tenant_id")}},
            )
    return list(taken.values())


def deleted_principal(principal_id: str) -> str:
    """How ``pruned`` names the holder of grants removed because their principal was deleted by hand."""
    return f"(deleted principal {principal_id.lower()})"


def empty_pruned() -> Pruned:
    return {
        "identities": [],
        "applications": [],
        "federated_credentials": [],
        "role_assignments": [],
        "replaced": [],
        "released": [],
    }


# -- the Kubernetes batch (service_accounts) --------------------------------------------------------
class KubeRow(TypedDict, total=False):
    kind: str
    namespace: str | None
    name: str
    action: str  # created, updated, unchanged, deleted, bound, unbound, missing, kept
    workload: str
    note: str


class KubeBatchResult(TypedDict, total=False):
    changed: bool
    namespaces: list[KubeRow]
    service_accounts: list[KubeRow]
    controllers: list[KubeRow]
    diff: dict[str, Any]


# -- discovery (service_accounts_info -> workload_identities_info) ----------------------------------
class SeenController(TypedDict):
    namespace: str
    kind: str
    name: str
    service_account: str
    use_label: bool  # its pod template already carries azure.workload.identity/use: "true"


class BoundAccount(TypedDict):
    namespace: str
    service_account: str
    client_id: str
    tenant_id: str | None
    token_expiration: str | None
    workload: str | None  # the workload this collection bound it for, if it did
    cluster: str | None  # the cluster this collection bound it on, if it did
    controllers: list[SeenController]


class PodIdentityBinding(TypedDict):
    namespace: str
    name: str
    selector: str
    identity: str  # the AzureIdentity's name, in the binding's namespace
    identity_type: str | None  # user_assigned, service_principal, service_principal_certificate; None: not found
    resource_id: str | None
    client_id: str | None
    controllers: list[SeenController]


class KubeEstate(TypedDict):
    service_accounts: list[BoundAccount]
    pod_identity: list[PodIdentityBinding]
    # Controllers labelled aadpodidbinding with a selector no binding has (they get no identity today).
    unbound_pod_identity_controllers: list[SeenController]
    requests: int
