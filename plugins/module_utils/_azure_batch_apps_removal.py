# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the batch removes of its app registrations.

An application this collection made that only this cluster uses goes whole (its service principal's role
assignments first); one other clusters still use is let go of (this cluster's credentials and claim); an operator's
(named by ``application_id``) keeps everything but this cluster's credentials and the assignments this collection
created on it, as its record says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._azure_application import (
    ApplicationApi,
    ApplicationFicApi,
    application_state,
    ensure_application,
    ensure_application_tags,
)
from ._azure_batch_reads import Batch, Reads, Resolved, role_key
from ._azure_batch_removal import Released
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
    fic_name,
    own_credential_names,
    role_digest,
)
from ._results import (
    ApplicationState,
    FederatedCredentialRow,
    IdentityResult,
    Pruned,
    PrunedAssignment,
    WorkloadResult,
)

if TYPE_CHECKING:
    from ._azure_batch import Workloads


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


class ApplicationRemoval:
    engine: Workloads
    api: ApplicationApi

    def remove(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool
    ) -> tuple[WorkloadResult, dict[str, Any]]:
        """Ours (made for this cluster) goes whole, role assignments first; someone else's keeps all but ours."""
        app, principal = reads.applications.get(workload.name, (None, None))
        state = application_state(app, principal) if app else None
        fics: list[FederatedCredentialRow] = []
        roles: list[PrunedAssignment] = []
        before: dict[str, Any] | None = None
        if app is None or state is None:
            action = "absent"
        elif workload.application_id is None and application_others(
            app.get("tags"), batch.cluster, batch.cluster_scope
        ):
            # Other clusters still use it: only this cluster's credentials and its claim go.
            let_go = self.release(batch, app, principal, workload.subjects, reads, check_mode)
            fics, roles, action = let_go.credentials, let_go.roles, let_go.action
            before = {"application": application_brief(state)} if action == "deleted" else {}
            before["federated_credentials"] = [f["name"] for f in fics]
        elif (
            workload.application_id is None
            and application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope)
        ) or (workload.application_id is not None and workload.teardown_adopted):
            before = {"application": application_brief(state)}
            roles = self.engine.remove_assignments(
                batch, state["service_principal_id"], state["display_name"], reads, check_mode
            )
            action = self._delete(batch, app, principal, check_mode)
        else:
            action = "kept"
            if workload.application_id is not None:  # the operator's: only this cluster's trust and roles go
                parent = ApplicationFicApi(self.api, str(app["id"]), state["display_name"])
                listed = reads.app_fics.get(str(app["id"]), [])
                names = own_credential_names(batch.cluster, workload.subjects, batch.issuer_url, listed)
                fics = self.engine.remove_credentials(parent, listed, names, check_mode)
                args = (batch.cluster, workload.namespace, workload.name)
                created = app_created_role_digests(state["tags"], *args)
                declared = {
                    (parse_scope(spec.scope).key, self.engine.resolve_declared(batch, workload, reads, n).guid)
                    for n, spec in enumerate(workload.roles)
                }
                only = {pair for pair in declared if role_digest(*pair) in created}
                keep = needed_by_others(self.engine, batch, workload, reads)
                roles = self._unassign(batch, state, reads, check_mode, only=only, keep=keep)
                record = app_created_roles_entries(state["tags"], *args)
                if record:
                    kept = [t for t in state["tags"] if t not in record]
                    ensure_application_tags(self.api, app, principal, kept, check_mode)
                if fics or roles or record:
                    before = {"federated_credentials": [f["name"] for f in fics]}
        return removal_result(
            workload, application_result(state, workload, action, workload.application_id is None), fics, roles, before
        )

    def release(
        self,
        batch: Batch,
        app: dict[str, Any],
        principal: dict[str, Any] | None,
        subjects: list[str] | None,
        reads: Reads,
        check_mode: bool,
    ) -> Released:
        """As the managed identities' ``release``: this cluster's credentials, then its claim; the application goes
        whole (role assignments first) when no other claim is left by then."""
        name = str(app.get("displayName"))
        listed = reads.app_fics.get(str(app["id"]), [])
        names = self.engine.this_clusters_credentials(batch, listed, subjects)
        removed = self.engine.remove_credentials(
            ApplicationFicApi(self.api, str(app["id"]), name), listed, names, check_mode
        )
        with object_lock(f"application:{app.get('uniqueName')}"):
            current: dict[str, Any] | None = app
            its_principal = principal
            if not check_mode:
                current = self.api.by_unique_name(str(app.get("uniqueName")))
                its_principal = self.api.principal(str(current["appId"])) if current else None
            if current is None:
                return Released(removed, "absent", [])
            tags = list(current.get("tags") or [])
            if not application_others(tags, batch.cluster, batch.cluster_scope):
                roles = self._unassign(batch, application_state(current, its_principal), reads, check_mode)
                return Released(removed, self._delete(batch, current, its_principal, check_mode), roles)
            kept = application_without_claim(tags, batch.cluster, batch.cluster_scope)
            outcome = ensure_application_tags(self.api, current, its_principal, kept, check_mode)
        return Released(removed, "released" if outcome.changed or removed else "kept", [])

    def _unassign(
        self,
        batch: Batch,
        state: ApplicationState,
        reads: Reads,
        check_mode: bool,
        only: set[tuple[str, str]] | None = None,
        keep: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
    ) -> list[PrunedAssignment]:
        """Its service principal's role assignments (those in ``only``, if given, that are not in ``keep``)."""
        principal, label = state["service_principal_id"], state["display_name"]
        return self.engine.remove_assignments(batch, principal, label, reads, check_mode, only=only, keep=keep)

    def _delete(self, batch: Batch, app: dict[str, Any], principal: dict[str, Any] | None, check_mode: bool) -> str:
        outcome = ensure_application(
            self.api,
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

    def prune(self, batch: Batch, reads: Reads, resolved: Resolved, check_mode: bool, pruned: Pruned) -> None:
        """Applications made for this cluster that the list no longer declares: role assignments, then the app."""
        for app, principal in reads.marked_apps:
            state = application_state(app, principal)
            others = application_others(app.get("tags"), batch.cluster, batch.cluster_scope)
            if others:
                let_go = self.release(batch, app, principal, None, reads, check_mode)
                pruned["federated_credentials"].extend(
                    {"identity": state["display_name"], "name": f["name"], "subject": f["subject"]}
                    for f in let_go.credentials
                )
                pruned["role_assignments"].extend(let_go.roles)
                if let_go.action == "released":
                    pruned["released"].append(
                        {
                            "name": state["display_name"],
                            "resource_group": "",
                            "used_by": [c.described() for c in others],
                        }
                    )
                if let_go.action != "deleted":
                    continue
                pruned["applications"].append(
                    {"name": state["display_name"], "app_id": str(state["app_id"]), "purged": batch.application_purge}
                )
                continue
            pruned["role_assignments"].extend(
                self.engine.remove_assignments(
                    batch, state["service_principal_id"], state["display_name"], reads, check_mode
                )
            )
            self._delete(batch, app, principal, check_mode)
            pruned["applications"].append(
                {"name": state["display_name"], "app_id": str(state["app_id"]), "purged": batch.application_purge}
            )
        if batch.state == "absent":
            return
        for workload in batch.workloads:  # ours, still declared: this issuer's stale credentials and roles
            found, its_principal = reads.applications.get(workload.name, (None, None))
            if found is None or workload.application_id is not None:
                continue
            state = application_state(found, its_principal)
            wanted = {
                (parse_scope(r.scope).key, resolved[role_key(workload, r.role, r.scope)].guid) for r in workload.roles
            }
            pruned["role_assignments"].extend(
                self.engine.remove_assignments(
                    batch, state["service_principal_id"], state["display_name"], reads, check_mode, keep=wanted
                )
            )
            names = {fic_name(batch.cluster, s).lower() for s in workload.subjects}
            listed = reads.app_fics.get(str(found["id"]), [])
            stale = [
                f["name"]
                for f in listed
                if f["issuer"] == batch.issuer_url
                and f["name"].lower() not in names
                and f["subject"] not in workload.subjects
            ]
            parent = ApplicationFicApi(self.api, str(found["id"]), state["display_name"])
            for row in self.engine.remove_credentials(parent, listed, stale, check_mode):
                pruned["federated_credentials"].append(
                    {"identity": state["display_name"], "name": row["name"], "subject": row["subject"]}
                )
