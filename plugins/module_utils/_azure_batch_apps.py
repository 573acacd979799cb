# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the batch's app-registration workloads.

The same steps as for managed identities, through the same engines: the application and its service
principal (``ensure_application``), this cluster's credentials on it (``ensure_federated_credential``
with an application parent), exactly the declared role assignments for its service principal. An
application this collection made carries its marks (``_ownership``); one named by ``application_id`` is
the operator's: never renamed, re-tagged or deleted.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Any

from ._azure_application import (
    ApplicationApi,
    ApplicationFicApi,
    ensure_application,
    ensure_application_tags,
)
from ._azure_batch_apps_removal import (
    application_brief,
    application_result,
    prune_applications,
    remove_application,
)
from ._azure_batch_grants import RoleAssignments
from ._azure_batch_identities import shared_notes
from ._azure_batch_kinds import Converged, Ensured
from ._azure_batch_reads import PENDING, Batch, Reads, Resolved
from ._azure_batch_shared import application_tags
from ._azure_graph import OWNED_BY, PERMISSION_HINT, WRITE_ALL
from ._errors import AzureApiError, ValidationError
from ._ids import parse_scope
from ._inventory import WorkloadSpec
from ._lock import object_lock
from ._ownership import (
    APP_WORKLOAD_TAG_PREFIX,
    FORMAT_VERSION,
    Claim,
    app_created_role_digests,
    app_created_roles_entries,
    app_created_roles_tags,
    application_claim_tag,
    application_cluster_tag,
    application_foreign_owner,
    application_others,
    application_owned_by,
    application_owner_cluster,
    application_workloads,
    role_digest,
)
from ._ownership_assignments import AssignmentMark
from ._results import ApplicationState, IdentityResult, Outcome, Pruned, RoleAssignmentRow


class ApplicationKind:
    """App registrations (an application and its service principal) as a workload's identity."""

    label = "application"

    def __init__(self, grants: RoleAssignments, api: ApplicationApi) -> None:
        self.grants = grants
        self.ctx = grants.ctx
        self.api = api

    # -- reading --------------------------------------------------------------------------------------
    def read(self, batch: Batch, reads: Reads) -> None:
        """The listed workloads' applications, their principals and credentials; with prune or teardown, the
        applications made for this cluster that no listed workload names."""
        listed = [w for w in batch.workloads if w.is_application]
        cleaning = batch.prune or batch.state == "absent"
        if not listed and not cleaning:
            return
        try:
            roles = set(self.api.graph.granted_roles())
        except AzureApiError:
            if listed:
                raise
            return  # no Graph at all: nothing of ours there to prune
        writer = OWNED_BY in roles or bool(roles & set(WRITE_ALL))
        if listed and not writer and not batch.read_only:
            raise ValidationError([f"cluster {batch.cluster}: identity_type application: {PERMISSION_HINT}"])
        for workload in listed:
            app = (
                self.api.by_app_id(str(workload.application_id))
                if workload.application_id
                else self.api.by_unique_name(str(workload.application_unique_name))
            )
            principal = self.api.principal(str(app["appId"])) if app else None
            reads.applications[workload.name] = (app, principal)
            if app:
                reads.app_fics[str(app["id"])] = self.api.list_fics(str(app["id"]), str(app.get("displayName")))
        # Ours by the default name (never an operator's application_id) and not found by it: renamed or moved, perhaps.
        unfound = [w for w in listed if w.named_by_default and reads.applications[w.name][0] is None]
        marked = self._marked(batch) if writer and (cleaning or unfound) else []
        self._continue(batch, reads, unfound, marked)
        if cleaning and writer:
            self._read_marked(batch, reads, marked)

    def _marked(self, batch: Batch) -> list[dict[str, Any]]:
        """The applications this collection made that this cluster uses: made for it (before claims were recorded),
        or claimed by it; one request per tag."""
        found: dict[str, dict[str, Any]] = {}
        for tag in (application_cluster_tag(batch.cluster), application_claim_tag(batch.cluster, batch.cluster_scope)):
            for app in self.api.marked(tag):
                if application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope):
                    found.setdefault(str(app["id"]), app)
        return list(found.values())

    def _continue(self, batch: Batch, reads: Reads, unfound: list[WorkloadSpec], marked: list[dict[str, Any]]) -> None:
        """A workload renamed (same namespace and service account) or moved (same name, another namespace or service
        account) keeps the application this collection made for it on this cluster, as a managed identity does
        (``_azure_batch_reads.continue_identities``): its appId is what its running pods sign in as. Found by its
        marks (``wi-workload:<namespace>/<workload>``) and, for a rename, by a credential of it trusting the same
        subject from this cluster's issuer; only one no other listed workload names; more than one match is none."""
        names = {w.name for w in batch.workloads}
        declared = {str(w.application_unique_name).lower() for w in batch.workloads if w.is_application}
        free = [
            app
            for app in marked
            if str(app.get("uniqueName")).lower() not in declared
            and not application_others(app.get("tags"), batch.cluster, batch.cluster_scope)
        ]
        made_for = {str(app["id"]): application_workloads(app.get("tags")) for app in free}
        for workload in unfound:
            renamed = [
                app
                for app in free
                if any(ns == workload.namespace and name not in names for ns, name in made_for[str(app["id"])])
                and workload.subject in self._trusted(batch, reads, app)
            ]
            moved = [app for app in free if any(name == workload.name for _ns, name in made_for[str(app["id"])])]
            for found, why in (
                (renamed, "workload {old} renamed {new}"),
                (moved, "moved from {old}: the new subject is trusted first; the old one goes with prune"),
            ):
                if len(found) != 1:
                    continue
                app = found[0]
                old = ", ".join(f"{ns}/{name}" for ns, name in made_for[str(app["id"])])
                reads.continued[workload.name] = (
                    f"application {app.get('displayName')} kept (client id {app.get('appId')}, its pods' sign-in "
                    f"uninterrupted): " + why.format(old=old, new=workload.name)
                )
                tags = app.get("tags") or []
                reads.stale_marks[workload.name] = [t for t in tags if t.startswith(APP_WORKLOAD_TAG_PREFIX)]
                workload.application_unique_name = str(app.get("uniqueName"))
                reads.applications[workload.name] = (app, self.api.principal(str(app["appId"])))
                self._trusted(batch, reads, app)
                free.remove(app)
                declared.add(workload.application_unique_name.lower())
                break

    def _trusted(self, batch: Batch, reads: Reads, app: dict[str, Any]) -> set[str]:
        """The subjects an application's credentials trust from this cluster's issuer (listed once per run)."""
        key = str(app["id"])
        if key not in reads.app_fics:
            reads.app_fics[key] = self.api.list_fics(key, str(app.get("displayName")))
        return {f["subject"] for f in reads.app_fics[key] if batch.issuer_url and f["issuer"] == batch.issuer_url}

    def _read_marked(self, batch: Batch, reads: Reads, marked: list[dict[str, Any]]) -> None:
        known = {str(app["id"]) for app, _sp in reads.applications.values() if app}
        # Declared is declared, whether or not the read above found it: another cluster's host of this run may have
        # made it since, with this cluster's claim, and it is not an orphan to let go of.
        declared = {str(w.application_unique_name).lower() for w in batch.workloads if w.is_application} | {
            str(w.application_id).lower() for w in batch.workloads if w.application_id
        }
        for app in marked:
            names = {str(app.get("uniqueName")).lower(), str(app.get("appId")).lower()}
            if str(app["id"]) in known or names & declared:
                continue
            known.add(str(app["id"]))
            reads.marked_apps.append((app, self.api.principal(str(app["appId"]))))
            if application_others(app.get("tags"), batch.cluster, batch.cluster_scope) or batch.defer_replaced:
                # Shared: only this cluster's credentials will go; replaced: whose subject it trusted tells for whom.
                self._trusted(batch, reads, app)

    # -- before any write -----------------------------------------------------------------------------
    def check(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, problems: list[str]
    ) -> tuple[list[Claim], str | None]:
        app, principal = reads.applications.get(workload.name, (None, None))
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        if app is None and workload.application_id:
            problems.append(
                f"{where}: application_id: no application {workload.application_id} (or the automation "
                "principal may not read it)"
            )
        other = application_foreign_owner(app.get("tags"), batch.cluster, batch.cluster_scope) if app else None
        unique = app.get("uniqueName") if app else None
        if other is not None and workload.named_by_default:
            problems.append(
                f"{where}: application_unique_name: application {unique} is used by {other}, not by this cluster; set "
                "application_unique_name so that each cluster has its own, or, to share one application between "
                "clusters, the same application_unique_name on each"
            )
        elif app is not None and application_owner_cluster(app.get("tags")) is None and workload.named_by_default:
            problems.append(
                f"{where}: application_unique_name: the default name {unique} is taken by an app registration this "
                f"collection did not make; to adopt it, set application_id: {app.get('appId')}; else set another "
                "application_unique_name"
            )
        others = (
            application_others(app.get("tags"), batch.cluster, batch.cluster_scope)
            if app and workload.application_id is None
            else []
        )
        return others, (principal or {}).get("id")

    # -- converging -----------------------------------------------------------------------------------
    def ensure(self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool) -> Ensured:
        app, principal = reads.applications.get(workload.name, (None, None))
        found = app  # as the plan read it (a shared one is read again, under its lock, before it is written)
        ours = workload.application_id is None
        others = application_others(app.get("tags"), batch.cluster, batch.cluster_scope) if app else []
        outcome, (app, principal) = self._ensure_application(
            batch, workload, (app, principal), bool(others), check_mode, reads.stale_marks.get(workload.name, [])
        )
        after = outcome.after
        # A new application's ids are Entra's to assign: check mode plans with placeholders.
        object_id = str(after["id"] if after and after["id"] else "(pending)")
        sp = str(after["service_principal_id"] if after and after["service_principal_id"] else PENDING)
        holder = str(after["app_id"] if after and after["app_id"] else "(pending)")
        exactly_ours = ours and (
            app is None
            or application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope)
            and not any(c.cluster == batch.cluster for c in others)
        )
        return Ensured(
            outcome=outcome,
            after=dict(after) if after is not None else None,
            parent=ApplicationFicApi(self.api, object_id, after["display_name"] if after else ""),
            siblings=reads.app_fics.get(object_id, []),
            principal=sp,
            listed=reads.assignments.get(sp.lower(), []) if principal else [],
            mark=AssignmentMark(
                batch.cluster,
                batch.cluster_scope,
                workload.namespace,
                workload.name,
                "application",
                holder,
                format=FORMAT_VERSION,
            ),
            ours=ours,
            exactly_ours=exactly_ours,
            notes=([reads.continued[workload.name]] if workload.name in reads.continued else [])
            + shared_notes(batch, workload, outcome.action, found_meanwhile=app is not None and found is None),
            known=(app, principal),
        )

    def _ensure_application(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        found: tuple[dict[str, Any] | None, dict[str, Any] | None],
        claimed: bool,
        check_mode: bool,
        stale: list[str],
    ) -> tuple[Outcome[ApplicationState], tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        """The application and its service principal ensured; with what it was found as (read afresh when shared).
        ``stale``: marks of the workload it was made for before a rename, replaced by this one's."""
        app, principal = found
        ours = workload.application_id is None
        # Another cluster's host may write this application's tags at the same time: read them afresh, under a lock.
        shared = ours and bool(batch.sharing(workload) or claimed)
        unique = str(workload.application_unique_name)
        with object_lock(f"application:{unique}") if shared and not check_mode else nullcontext():
            if shared and not check_mode:
                app = self.api.by_unique_name(unique)
                principal = self.api.principal(str(app["appId"])) if app else None
            current = [t for t in app.get("tags") or [] if t not in stale] if app else None
            # The claims of clusters that no longer exist, released by this run (ensure_application keeps other tags).
            gone = [
                f"{c.key}={c.scope or ''}"
                for c in application_others(app.get("tags") if app else None, batch.cluster, batch.cluster_scope)
                if c.key and batch.released(c)
            ]
            outcome = ensure_application(
                self.api,
                unique_name=workload.application_unique_name,
                app_id=workload.application_id,
                display_name=workload.application_display_name,
                tags=application_tags(batch, workload, current) if ours else None,
                state="present",
                check_mode=check_mode,
                known=(app, principal),
                retired=[*stale, *gone],
            )
        return outcome, (app, principal)

    def settle(
        self, batch: Batch, workload: WorkloadSpec, ensured: Ensured, roles: list[RoleAssignmentRow], check_mode: bool
    ) -> None:
        """An operator's application records the assignments this run created, so teardown removes only those.

        Recording needs write access to that application; without it (Application.ReadWrite.OwnedBy and not an
        owner), the assignments are kept on teardown, and the result says so.
        """
        app, principal = ensured.known
        if ensured.ours or app is None:
            return
        outcome: Outcome[ApplicationState] = ensured.outcome
        tags = list(app.get("tags") or [])
        args = (batch.cluster, workload.namespace, workload.name)
        recorded = app_created_role_digests(tags, *args)
        created = {
            role_digest(parse_scope(row["scope"]).key, row["role_definition_guid"])
            for row in roles
            if row["action"] == "created"
        }
        if created <= recorded:
            return
        old = set(app_created_roles_entries(tags, *args))
        wanted = [t for t in tags if t not in old] + app_created_roles_tags(*args, recorded | created)
        try:
            recording = ensure_application_tags(self.api, app, principal, wanted, check_mode)
        except AzureApiError as exc:
            if exc.status != 403:
                raise
            for row in roles:
                if row["action"] == "created":
                    row["notes"].append("not recorded on the application (no write access to it): teardown keeps it")
            return
        ensured.outcome = (
            recording if outcome.action == "unchanged" else dataclasses.replace(outcome, after=recording.after)
        )
        ensured.after = dict(ensured.outcome.after) if ensured.outcome.after is not None else None

    def brief(self, state: Any) -> dict[str, Any] | None:
        return application_brief(state)

    def result(self, workload: WorkloadSpec, ensured: Ensured) -> IdentityResult:
        state: Any = ensured.after
        return application_result(state, workload, ensured.outcome.action, ensured.ours)

    # -- letting go -----------------------------------------------------------------------------------
    def remove(self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool) -> Converged:
        return remove_application(self.grants, self.api, batch, workload, reads, check_mode)

    def prune(self, batch: Batch, reads: Reads, resolved: Resolved, check_mode: bool, pruned: Pruned) -> None:
        prune_applications(self.grants, self.api, batch, reads, resolved, check_mode, pruned)
