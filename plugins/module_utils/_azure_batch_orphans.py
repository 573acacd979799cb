# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): role assignments that outlived what they were granted to.

Azure does not delete a principal's role assignments with it. An identity deleted by hand (or with its resource
group), an app registration deleted, or an identity made elsewhere that no workload uses any more leaves the
assignments this collection granted it behind. They are found among the assignments the batch already read (the
whole subscription of each declared scope: no other listing), by the mark this cluster wrote on them
(``_ownership_assignments``), and are orphaned when their principal:

- no longer exists: not among the identities and service principals read, and confirmed gone (the identity the
  mark names is not there, or is another principal now; the service principal answers 404);
- or is an identity or application that exists but that nothing of this cluster uses any more: no listed workload,
  not this cluster's own (prune and teardown handle those whole), not claimed by another cluster, not named by
  another cluster of the inventory.

An operator's assignment (no mark) is never one. With prune they are deleted, through the engine; without, reported.

Key Vault keeps a deleted principal's access policy entries: with prune, the entries on the vaults the run read of a
principal this cluster's marked assignments show gone are removed too (``find_policy_orphans``; an entry has no mark
of its own, so a principal nothing of this cluster marked is not judged). Cosmos DB keeps a principal's SQL role
assignments too when it is deleted by hand. Those this collection made (their
name says so, ``_azure_cosmos.ours``) on the accounts the run read, whose principal Microsoft Graph confirms gone,
are removed by prune (``find_cosmos_orphans``, ``remove_cosmos_orphans``). So are the database roles this
collection made (their mark) on the servers read whose principal Graph confirms gone (``find_database_orphans``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._azure_application import ApplicationApi
from ._azure_batch_access_policies import AccessPolicies
from ._azure_batch_cosmos import account_key, pruned_row
from ._azure_batch_grants import RoleAssignments
from ._azure_batch_postgres import DatabaseRoles
from ._azure_batch_reads import Batch, BatchContext, Reads, identity_key, ref_key
from ._azure_cosmos import CosmosApi, ensure_sql_role_assignment, ours
from ._azure_postgres import ours as ours_role
from ._azure_postgres import remove_database_role, role_of
from ._azure_role_assignment import assignment_state
from ._errors import AzureApiError
from ._ids import IdentityRef
from ._inventory import WorkloadSpec
from ._ownership_assignments import AssignmentMark, read_mark
from ._results import (
    IdentityState,
    OrphanedAssignment,
    PrunedAccessPolicy,
    PrunedCosmosRole,
    PrunedDatabaseRole,
    deleted_principal,
)


class Orphan(NamedTuple):
    model: Any  # the role assignment, as listed
    mark: AssignmentMark
    why: str
    gone: bool = False  # its principal no longer exists (else: it exists, and nothing of this cluster uses it)


def find_orphans(ctx: BatchContext, batch: Batch, reads: Reads) -> list[Orphan]:
    """This cluster's marked assignments whose principal is gone or unused. The context's application API confirms
    that a service principal is gone (without it, an application's are not checked, and a warning says so). Costs no
    request when every marked principal is one the batch read."""
    marked = [
        (model, mark)
        for models in reads.assignments.values()
        for model in models
        if (mark := read_mark(model.description)) is not None and mark.of(batch.cluster, batch.cluster_scope)
    ]
    if not marked:
        return []
    known, in_use = _principals(batch, reads)
    listed = {(w.namespace, w.name): w for w in batch.workloads} if batch.state == "present" else {}
    orphans: list[Orphan] = []
    unchecked: set[str] = set()  # principals that could not be checked
    gone: dict[str, bool] = {}  # principal -> confirmed gone (asked once however many assignments it has)
    for model, mark in marked:
        principal = str(model.principal_id).lower()
        if principal in in_use:
            continue
        identity = known.get(principal)
        if identity is not None:
            orphan = _unused(batch, reads, (model, mark), identity, listed.get((mark.namespace, mark.workload)))
            orphans.extend([orphan] if orphan else [])
            continue
        if mark.kind == "application" and ctx.applications is None:
            unchecked.add(principal)
            continue
        if principal not in gone:
            gone[principal] = _confirmed_gone(ctx, batch, reads, mark, principal, unchecked)
        if gone[principal]:
            orphans.append(Orphan(model, mark, f"its principal no longer exists ({mark.kind} {mark.holder})", True))
    if unchecked:
        ctx.warnings.append(
            f"cluster {batch.cluster}: {len(unchecked)} principal(s) of role assignments this collection granted "
            "to app registrations were not checked for deletion: Microsoft Graph is asked only with prune, "
            "teardown or an app registration listed, and reading another's service principal needs "
            "Application.Read.All"
        )
    return orphans


def _unused(
    batch: Batch,
    reads: Reads,
    marked: tuple[Any, AssignmentMark],
    identity: IdentityState,
    workload: WorkloadSpec | None,
) -> Orphan | None:
    """A marked assignment of an identity that exists but that no listed workload uses: an orphan, or held while
    ``workload`` (the listed one it was made for) moves to another identity (its running pods sign in as this one until
    they restart)."""
    model, mark = marked
    if batch.defer_replaced and batch.prune and workload is not None:
        # Held as replaced (the rollout removes these assignments once no pod signs in as it).
        _hold(reads, identity, workload.name)
        return None
    where = f"identity {identity['name']} in {identity['resource_group']}"
    return Orphan(model, mark, f"{where}, which no workload of this cluster uses now")


def _confirmed_gone(
    ctx: BatchContext, batch: Batch, reads: Reads, mark: AssignmentMark, principal: str, unchecked: set[str]
) -> bool:
    try:
        return _gone(ctx, batch, reads, mark, principal)
    except AzureApiError as exc:
        if exc.status != 403:
            raise
        # Application.ReadWrite.OwnedBy reads only its own apps' principals: not known, so not orphaned.
        unchecked.add(principal)
        return False


def _hold(reads: Reads, identity: IdentityState, workload: str) -> None:
    if all(r["name"] != identity["name"] for r in reads.held):
        reads.held.append(
            {
                "name": identity["name"],
                "resource_group": identity["resource_group"],
                "client_id": str(identity["client_id"]),
                "workload": workload,
                "assignments_only": True,
            }
        )


def _principals(batch: Batch, reads: Reads) -> tuple[dict[str, IdentityState], set[str]]:
    """The identities the batch read (principal id -> what it is), and the principals still in use: a listed
    workload's, this cluster's own (prune and teardown remove those whole), another cluster's, one the inventory's
    other clusters name, and every application read."""
    known: dict[str, IdentityState] = {}
    in_use: set[str] = set()
    listed = {ref_key(batch.ref(w)) for w in batch.identity_workloads}
    # By name alone (a peer's default resource group is not known here): kept when in doubt.
    named_by_peers = {w.identity_name.lower() for peer in batch.peers for w in peer.workloads if not w.is_application}
    for key, identity in reads.identities.items():
        principal = str(identity["principal_id"]).lower()
        known[principal] = identity
        if (
            key in listed
            or batch.owns(identity["tags"])
            or batch.others(identity["tags"])
            or identity["name"].lower() in named_by_peers
        ):
            in_use.add(principal)
    # Applications are read only when a listed workload names them, or (prune, teardown) when this cluster made
    # them: all in use, or handled whole. One not read that still exists is not known to be unused.
    for app, sp in [*reads.applications.values(), *reads.marked_apps]:
        if app and sp:
            in_use.add(str(sp["id"]).lower())
    return known, in_use


def _gone(ctx: BatchContext, batch: Batch, reads: Reads, mark: AssignmentMark, principal: str) -> bool:
    """Whether the principal of a marked assignment is confirmed not to exist (one request at most)."""
    if mark.kind == "application":
        return ctx.applications is not None and ctx.applications.principal_by_id(principal) is None
    if "/" not in mark.holder:
        return False  # not a mark this collection wrote: nothing to confirm it by
    group, name = mark.holder.split("/", 1)
    if group.lower() in reads.groups_read:
        identity = reads.identities.get(identity_key(group, name))
    else:
        try:
            identity = ctx.identities.get(IdentityRef(batch.subscription_id, group, name))
        except AzureApiError as exc:
            if exc.status == 404 and exc.code == "ResourceGroupNotFound":
                return True
            raise
    # Deleted, or deleted and made again (a new principal): either way this principal is gone.
    return identity is None or str(identity["principal_id"]).lower() != principal


def remove_orphans(grants: RoleAssignments, batch: Batch, reads: Reads, check_mode: bool) -> list[OrphanedAssignment]:
    """Each orphan deleted through the engine (with prune), or reported (without)."""
    rows: list[OrphanedAssignment] = []
    for orphan in reads.orphans:
        state = assignment_state(orphan.model)
        role = reads.role_of(batch.subscription_id, orphan.model)
        action = grants.delete_listed(orphan.model, role, check_mode) if batch.prune else "reported"
        rows.append(
            {
                "name": state["name"],
                "scope": state["scope"],
                "role": role.name,
                "role_definition_guid": state["role_definition_guid"],
                "principal_id": state["principal_id"],
                "workload": f"{orphan.mark.namespace}/{orphan.mark.workload}",
                "granted_to": f"{orphan.mark.kind} {orphan.mark.holder}",
                "why": orphan.why,
                "action": action,
            }
        )
    return rows


def find_cosmos_orphans(batch: Batch, reads: Reads, applications: ApplicationApi | None, warnings: list[str]) -> None:
    """The SQL role assignments this collection made (its name) on the accounts read whose principal no longer
    exists: Cosmos DB keeps them when an identity is deleted by hand. Only with prune (or teardown), which removes
    them, and Microsoft Graph to confirm it (one read per principal not read by the batch)."""
    if not (batch.prune or batch.state == "absent") or applications is None:
        return
    known = _known_principals(reads)
    for _key, account in sorted(reads.cosmos_accounts.items()):
        for held in (account["assignments"] if account else None) or []:
            principal = held["principal_id"].lower()
            if principal in known or not ours(held):
                continue
            if _principal_gone(batch, reads, applications, warnings, (principal, "SQL role assignments")):
                reads.cosmos_orphans.append(held)


def find_database_orphans(batch: Batch, reads: Reads, applications: ApplicationApi | None, warnings: list[str]) -> None:
    """The database roles this collection made (their mark) on the servers read whose principal no longer exists: a
    server keeps a role when its principal is deleted. Only with prune (or teardown), and Graph to confirm it."""
    if not (batch.prune or batch.state == "absent") or applications is None:
        return
    known = _known_principals(reads)
    for key, state in sorted(reads.postgres_servers.items()):
        if state is None or state["principals"] is None:
            continue
        for principal, role in sorted(state["principals"].items()):
            if principal in known or not ours_role(state, role):
                continue
            if _principal_gone(batch, reads, applications, warnings, (principal, "database roles")):
                reads.database_orphans.append((key, principal))


def _known_principals(reads: Reads) -> set[str]:
    """The principals the batch read: there, so not gone."""
    known = {str(i["principal_id"]).lower() for i in reads.identities.values()}
    return known | {str(p.get("id")).lower() for _a, p in [*reads.applications.values(), *reads.marked_apps] if p}


def _principal_gone(
    batch: Batch, reads: Reads, applications: ApplicationApi, warnings: list[str], asked: tuple[str, str]
) -> bool:
    """Whether Microsoft Graph says the principal no longer exists (asked once a run, whatever asks)."""
    principal, what = asked
    if principal not in reads.principals_gone:
        try:
            reads.principals_gone[principal] = applications.principal_by_id(principal) is None
        except AzureApiError as exc:
            if exc.status != 403:
                raise
            reads.principals_gone[principal] = False
            warnings.append(
                f"cluster {batch.cluster}: the {what} this collection made for principal {principal} were not "
                "checked for deletion: reading another's service principal needs Application.Read.All"
            )
    return reads.principals_gone[principal]


def remove_database_orphans(databases: DatabaseRoles, reads: Reads, check_mode: bool) -> list[PrunedDatabaseRole]:
    """The orphans' roles dropped, with their memberships, through the engine (prune)."""
    removed: list[PrunedDatabaseRole] = []
    for key, principal in reads.database_orphans:
        state = reads.postgres_servers.get(key)
        name = role_of(state, principal) if state is not None else None
        if state is None or state["roles"] is None or name is None or databases.client is None:
            continue
        held = list(state["roles"][name]["member_of"]) if name in state["roles"] else []
        outcome = remove_database_role(databases.client, state, principal, held, True, check_mode)
        if outcome.action == "deleted":
            label = deleted_principal(principal)
            removed.append({"identity": label, "server": state["id"], "user": name, "roles": held, "dropped": True})
    return removed


def remove_cosmos_orphans(api: CosmosApi | None, reads: Reads, check_mode: bool) -> list[PrunedCosmosRole]:
    """The orphans, deleted through the engine (prune); each as a removed identity's assignment."""
    removed: list[PrunedCosmosRole] = []
    for held in reads.cosmos_orphans:
        account = reads.cosmos_accounts.get(account_key(held["account"]))
        if account is None or api is None:
            continue
        outcome = ensure_sql_role_assignment(
            api,
            account,
            held["principal_id"],
            held["role_definition_id"],
            held["scope"],
            state="absent",
            check_mode=check_mode,
        )
        if outcome.action == "deleted":
            removed.append(pruned_row(deleted_principal(held["principal_id"]), account, held))
    return removed


def remove_policy_orphans(
    policies: AccessPolicies, batch: Batch, reads: Reads, check_mode: bool
) -> list[PrunedAccessPolicy]:
    """The entries of this cluster's principals found gone (by their marked role assignments), on every vault the run
    read, removed through the engine (with prune)."""
    gone = sorted({str(o.model.principal_id).lower() for o in reads.orphans if o.gone})
    if not batch.prune or not gone:
        return []
    vaults = {key for key, vault in reads.vaults.items() if vault is not None}
    return [
        row
        for principal in gone
        for row in policies.remove(batch, principal, deleted_principal(principal), reads, check_mode, only=vaults)
    ]
