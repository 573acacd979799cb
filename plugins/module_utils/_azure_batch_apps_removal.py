# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the batch removes of its app registrations.

An application this collection made that only this cluster uses goes whole (its service principal's role
assignments first); one other clusters still use is let go of (this cluster's credentials and claim); an operator's
(named by ``application_id``) keeps everything but this cluster's credentials and the assignments this collection
created on it, as its record says.
"""

from __future__ import annotations

from typing import Any

from ._azure_application import (
    ApplicationApi,
    ApplicationFicApi,
    application_state,
    ensure_application,
    ensure_application_tags,
)
from ._azure_batch_grants import RoleAssignments
from ._azure_batch_reads import Batch, Reads, Resolved
from ._azure_batch_removal import (
    Released,
    remove_credentials,
    stale_credentials,
    this_clusters_credentials,
    trusted_elsewhere,
)
from ._azure_batch_report import removal_result
from ._azure_batch_shared import needed_by_others
from ._ids import parse_scope
from ._inventory import WorkloadSpec
from ._lock import object_lock
from ._ownership import (
    app_created_role_digests,
    app_created_roles_entries,
    application_others,
    application_owned_by,
    application_without_claim,
    application_workloads,
    own_credential_names,
    role_digest,
)
from ._results import (
    ApplicationState,
    FederatedCredentialRow,
    IdentityResult,
    Pruned,
    PrunedApplication,
    PrunedAssignment,
    WorkloadResult,
)


def application_result(
    state: ApplicationState | None, workload: WorkloadSpec, action: str, owned: bool
) -> IdentityResult:
    """The application as the batch result reports a workload's identity (the Kubernetes side reads client_id)."""
    fallback = workload.application_unique_name or workload.application_id or ""
    if state is None:
        return {"name": fallback, "action": action, "owned": owned, "kind": "application", "client_id": None}
    return {
        "name": state["display_name"] or fallback,
        "id": str(state["id"] or ""),
        "client_id": state["app_id"],
        "principal_id": state["service_principal_id"],
        "tenant_id": state["tenant_id"],
        "tags": {},
        "action": action,
        "owned": owned,
        "kind": "application",
        "unique_name": state["unique_name"],
    }


def application_brief(state: ApplicationState | None) -> dict[str, Any] | None:
    """The application as a diff shows it: what a user can change, not the ids Entra assigns."""
    if state is None:
        return None
    return {"display_name": state["display_name"], "unique_name": state["unique_name"], "tags": state["tags"]}


def remove_application(
    grants: RoleAssignments, api: ApplicationApi, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool
) -> tuple[WorkloadResult, dict[str, Any]]:
    """Ours (made for this cluster) goes whole, role assignments first; someone else's keeps all but ours."""
    app, principal = reads.applications.get(workload.name, (None, None))
    state = application_state(app, principal) if app else None
    fics: list[FederatedCredentialRow] = []
    roles: list[PrunedAssignment] = []
    before: dict[str, Any] | None = None
    ours = workload.application_id is None
    if app is None or state is None:
        action = "absent"
    elif ours and (
        application_others(app.get("tags"), batch.cluster, batch.cluster_scope)
        or _claimed_meanwhile(api, batch, app, check_mode)
    ):
        # Other clusters still use it: only this cluster's credentials and its claim go.
        let_go = release_application(grants, api, batch, app, principal, workload.subjects, reads, check_mode)
        fics, roles, action = let_go.credentials, let_go.roles, let_go.action
        before = {"application": application_brief(state)} if action == "deleted" else {}
        before["federated_credentials"] = [f["name"] for f in fics]
    elif (ours and application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope)) or (
        not ours and workload.teardown_adopted
    ):
        before = {"application": application_brief(state)}
        roles = _unassign(grants, batch, state, reads, check_mode)
        action = _delete(api, batch, app, principal, check_mode)
    else:
        action = "kept"
        if not ours:  # the operator's: only this cluster's trust and roles go
            fics, roles, before = _leave_operators(grants, api, batch, workload, (app, principal), reads, check_mode)
    return removal_result(workload, application_result(state, workload, action, ours), fics, roles, before)


def _leave_operators(
    grants: RoleAssignments,
    api: ApplicationApi,
    batch: Batch,
    workload: WorkloadSpec,
    found: tuple[dict[str, Any], dict[str, Any] | None],
    reads: Reads,
    check_mode: bool,
) -> tuple[list[FederatedCredentialRow], list[PrunedAssignment], dict[str, Any] | None]:
    """An operator's application keeps all but this cluster's credentials and the assignments it records as ours."""
    app, principal = found
    state = application_state(app, principal)
    parent = ApplicationFicApi(api, str(app["id"]), state["display_name"])
    listed = reads.app_fics.get(str(app["id"]), [])
    names = own_credential_names(batch.cluster, workload.subjects, batch.issuer_url, listed)
    fics = remove_credentials(parent, listed, names, check_mode)
    args = (batch.cluster, workload.namespace, workload.name)
    created = app_created_role_digests(state["tags"], *args)
    declared = {
        (parse_scope(spec.scope).key, grants.resolve_declared(batch, workload, reads, n).guid)
        for n, spec in enumerate(workload.roles)
    }
    only = {pair for pair in declared if role_digest(*pair) in created}
    keep = needed_by_others(grants.ctx, batch, workload, reads)
    roles = _unassign(grants, batch, state, reads, check_mode, only=only, keep=keep)
    record = app_created_roles_entries(state["tags"], *args)
    if record:
        kept = [t for t in state["tags"] if t not in record]
        ensure_application_tags(api, app, principal, kept, check_mode)
    before = {"federated_credentials": [f["name"] for f in fics]} if fics or roles or record else None
    return fics, roles, before


def release_application(
    grants: RoleAssignments,
    api: ApplicationApi,
    batch: Batch,
    app: dict[str, Any],
    principal: dict[str, Any] | None,
    subjects: list[str] | None,
    reads: Reads,
    check_mode: bool,
) -> Released:
    """As the managed identities' ``release``: this cluster's credentials, then its claim; the application goes
    whole (role assignments first) when no other claim is left by then, and no credential of another issuer trusts
    it (read afresh).

    Graph has no per-item change of an application's ``tags`` (a PATCH replaces the list whole) and documents no
    conditional update (``If-Match``) for applications: the claims are read afresh and written whole, under this
    controller's lock. Two clusters converged at once on two nodes can lose one claim: its cluster writes it again on
    its next run, and the credentials (Graph objects of their own, never lost that way) keep the application from
    being deleted while a cluster signs in with it."""
    name = str(app.get("displayName"))
    listed = reads.app_fics.get(str(app["id"]), [])
    names = this_clusters_credentials(batch, listed, subjects)
    removed = remove_credentials(ApplicationFicApi(api, str(app["id"]), name), listed, names, check_mode)
    with object_lock(f"application:{app.get('uniqueName')}"):
        current: dict[str, Any] | None = app
        its_principal = principal
        if not check_mode:
            current = api.by_unique_name(str(app.get("uniqueName")))
            its_principal = api.principal(str(current["appId"])) if current else None
        if current is None:
            return Released(removed, "absent", [])
        tags = list(current.get("tags") or [])
        if not application_others(tags, batch.cluster, batch.cluster_scope):
            parent = ApplicationFicApi(api, str(current["id"]), name)
            fresh = [] if check_mode else parent.list_all()
            if trusted_elsewhere(batch, f"application {name}", fresh, grants.ctx.warnings):
                return Released(removed, "released", [])
            roles = _unassign(grants, batch, application_state(current, its_principal), reads, check_mode)
            return Released(removed, _delete(api, batch, current, its_principal, check_mode), roles)
        kept = application_without_claim(tags, batch.cluster, batch.cluster_scope)
        outcome = ensure_application_tags(api, current, its_principal, kept, check_mode)
    return Released(removed, "released" if outcome.changed or removed else "kept", [])


def _unassign(
    grants: RoleAssignments,
    batch: Batch,
    state: ApplicationState,
    reads: Reads,
    check_mode: bool,
    only: set[tuple[str, str]] | None = None,
    keep: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> list[PrunedAssignment]:
    """Its service principal's role assignments (those in ``only``, if given, that are not in ``keep``)."""
    principal, label = state["service_principal_id"], state["display_name"]
    return grants.remove(batch, principal, label, reads, check_mode, only=only, keep=keep)


def _delete(
    api: ApplicationApi, batch: Batch, app: dict[str, Any], principal: dict[str, Any] | None, check_mode: bool
) -> str:
    outcome = ensure_application(
        api,
        unique_name=None,
        app_id=str(app["appId"]),
        display_name=None,
        tags=None,
        state="absent",
        check_mode=check_mode,
        purge=batch.application_purge,
        known=(app, principal),
    )
    return outcome.action


def prune_applications(
    grants: RoleAssignments,
    api: ApplicationApi,
    batch: Batch,
    reads: Reads,
    resolved: Resolved,
    check_mode: bool,
    pruned: Pruned,
) -> None:
    """Applications made for this cluster that the list no longer declares: role assignments, then the app (or
    this cluster's claim, when shared); on those still declared, this issuer's stale credentials and roles."""
    for app, principal in reads.marked_apps:
        state = application_state(app, principal)
        successor = _successor(batch, app, reads) if batch.defer_replaced else None
        if successor is not None:
            # Its pods sign in as it until they restart with the successor's identity: kept until none does.
            pruned["replaced"].append(
                {
                    "name": state["display_name"],
                    "resource_group": "",
                    "client_id": str(state["app_id"]),
                    "workload": successor.name,
                    "kind": "application",
                }
            )
            continue
        gone: PrunedApplication = {
            "name": state["display_name"],
            "app_id": str(state["app_id"]),
            "purged": batch.application_purge,
        }
        others = application_others(app.get("tags"), batch.cluster, batch.cluster_scope)
        if not others and not _claimed_meanwhile(api, batch, app, check_mode):
            pruned["role_assignments"].extend(_unassign(grants, batch, state, reads, check_mode))
            _delete(api, batch, app, principal, check_mode)
            pruned["applications"].append(gone)
            continue
        let_go = release_application(grants, api, batch, app, principal, None, reads, check_mode)
        pruned["federated_credentials"].extend(
            {"identity": state["display_name"], "name": f["name"], "subject": f["subject"]} for f in let_go.credentials
        )
        pruned["role_assignments"].extend(let_go.roles)
        if let_go.action == "released":
            used_by = [c.described() for c in others]
            pruned["released"].append({"name": state["display_name"], "resource_group": "", "used_by": used_by})
        if let_go.action == "deleted":
            pruned["applications"].append(gone)
    if batch.state == "absent":
        return
    for workload in batch.workloads:  # ours, still declared: this issuer's stale credentials and roles
        found, its_principal = reads.applications.get(workload.name, (None, None))
        if found is None or workload.application_id is not None:
            continue
        state = application_state(found, its_principal)
        keep = grants.declared(workload, resolved)
        pruned["role_assignments"].extend(_unassign(grants, batch, state, reads, check_mode, keep=keep))
        listed = reads.app_fics.get(str(found["id"]), [])
        stale = stale_credentials(batch, listed, workload.subjects)
        parent = ApplicationFicApi(api, str(found["id"]), state["display_name"])
        for row in remove_credentials(parent, listed, stale, check_mode):
            pruned["federated_credentials"].append(
                {"identity": state["display_name"], "name": row["name"], "subject": row["subject"]}
            )


def _claimed_meanwhile(api: ApplicationApi, batch: Batch, app: dict[str, Any], check_mode: bool) -> bool:
    """An application of ours that only this cluster claimed when the plan read it, about to be deleted: read afresh,
    as a cluster converged elsewhere (another node, another job) may have claimed it since."""
    if check_mode:
        return False
    current = api.by_unique_name(str(app.get("uniqueName")))
    return current is not None and bool(application_others(current.get("tags"), batch.cluster, batch.cluster_scope))


def _successor(batch: Batch, app: dict[str, Any], reads: Reads) -> WorkloadSpec | None:
    """The listed workload now on a ServiceAccount this application of ours served on this cluster, under another
    identity (switched to a managed identity, say): the one it was made for, or a subject this cluster's credentials
    on it trust."""
    made_for = set(application_workloads(app.get("tags")))
    trusted = {
        f["subject"]
        for f in reads.app_fics.get(str(app["id"]), [])
        if batch.issuer_url and f["issuer"] == batch.issuer_url
    }
    return next((w for w in batch.workloads if (w.namespace, w.name) in made_for or w.subject in trusted), None)
