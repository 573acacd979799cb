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
from typing import TYPE_CHECKING, Any

from ._azure_application import (
    ApplicationApi,
    ApplicationFicApi,
    application_state,
    ensure_application,
    ensure_application_tags,
)
from ._azure_batch_reads import PENDING, Batch, Reads, Resolved, role_key
from ._azure_batch_report import removal_result, workload_names
from ._azure_graph import OWNED_BY, PERMISSION_HINT, WRITE_ALL
from ._errors import AzureApiError, ValidationError
from ._ids import parse_scope
from ._inventory import WorkloadSpec
from ._ownership import (
    app_created_role_digests,
    app_created_roles_entries,
    app_created_roles_tags,
    application_cluster_tag,
    application_foreign_owner,
    application_marks,
    application_owned_by,
    application_owner_cluster,
    fic_name,
    own_credential_names,
    role_digest,
)
from ._results import (
    ApplicationState,
    FederatedCredentialRow,
    IdentityResult,
    Outcome,
    Pruned,
    PrunedAssignment,
    RoleAssignmentRow,
    WorkloadResult,
)

if TYPE_CHECKING:
    from ._azure_batch import Workloads


def _identity(state: ApplicationState | None, workload: WorkloadSpec, action: str, owned: bool) -> IdentityResult:
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


class ApplicationSide:
    def __init__(self, engine: Workloads, api: ApplicationApi) -> None:
        self.engine = engine
        self.api = api

    # -- reading --------------------------------------------------------------------------------------
    def read(self, batch: Batch, reads: Reads) -> None:
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
        if cleaning and writer:
            known = {str(app["id"]) for app, _sp in reads.applications.values() if app}
            for app in self.api.marked(application_cluster_tag(batch.cluster)):
                if (
                    not application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope)
                    or str(app["id"]) in known
                ):
                    continue
                reads.marked_apps.append((app, self.api.principal(str(app["appId"]))))

    def check(self, batch: Batch, workload: WorkloadSpec, reads: Reads, problems: list[str]) -> None:
        app, _principal = reads.applications.get(workload.name, (None, None))
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        if app is None and workload.application_id:
            problems.append(
                f"{where}: application_id: no application {workload.application_id} (or the automation "
                "principal may not read it)"
            )
        other = application_foreign_owner(app.get("tags"), batch.cluster, batch.cluster_scope) if app else None
        unique = app.get("uniqueName") if app else None
        if other is not None:
            problems.append(
                f"{where}: application_unique_name: application {unique} was made by this collection for {other}, "
                "not for this cluster; set application_unique_name so that each cluster has its own"
            )
        elif app is not None and application_owner_cluster(app.get("tags")) is None and workload.named_by_default:
            problems.append(
                f"{where}: application_unique_name: the default name {unique} is taken by an app registration this "
                f"collection did not make; to adopt it, set application_id: {app.get('appId')}; else set another "
                "application_unique_name"
            )

    # -- converging -----------------------------------------------------------------------------------
    def converge(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, resolved: Resolved, check_mode: bool
    ) -> tuple[WorkloadResult, dict[str, Any]]:
        app, principal = reads.applications.get(workload.name, (None, None))
        ours = workload.application_id is None
        outcome = ensure_application(
            self.api,
            unique_name=workload.application_unique_name,
            app_id=workload.application_id,
            display_name=workload.application_display_name,
            tags=application_marks(batch.cluster, workload.namespace, workload.name, batch.cluster_scope)
            if ours
            else None,
            state="present",
            check_mode=check_mode,
            known=(app, principal),
        )
        after = outcome.after
        seen: dict[str, Any] = {
            "application": _brief(outcome.before),
            "federated_credentials": {},
            "role_assignments": [],
        }
        planned: dict[str, Any] = {"application": _brief(after), "federated_credentials": {}, "role_assignments": []}
        # A new application's ids are Entra's to assign: check mode plans with placeholders.
        object_id = str(after["id"] if after and after["id"] else "(pending)")
        parent = ApplicationFicApi(self.api, object_id, after["display_name"] if after else "")
        engine = self.engine
        notes: list[str] = []
        exactly_ours = ours and (
            app is None or application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope)
        )
        siblings = reads.app_fics.get(object_id, [])
        fics = engine.trust(batch, workload, parent, siblings, check_mode, (seen, planned, notes), exactly_ours)
        sp = str(after["service_principal_id"] if after and after["service_principal_id"] else PENDING)
        listed = reads.assignments.get(sp.lower(), []) if principal else []
        roles = engine.grant(workload, sp, listed, resolved, check_mode, seen, planned, exact=ours)
        if not ours and app is not None:
            outcome = self._record_created_roles(batch, workload, app, principal, outcome, roles, check_mode)
            after = outcome.after
        changed = (
            outcome.changed
            or any(f["action"] != "unchanged" for f in fics)
            or any(r["action"] != "unchanged" for r in roles)
        )
        result: WorkloadResult = {
            **workload_names(workload),
            "identity": _identity(after, workload, outcome.action, ours),
            "federated_credentials": fics,
            "role_assignments": roles,
            "changed": changed,
            "notes": notes,
        }
        return result, {"before": seen, "after": planned}

    def _record_created_roles(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        app: dict[str, Any],
        principal: dict[str, Any] | None,
        outcome: Outcome[ApplicationState],
        roles: list[RoleAssignmentRow],
        check_mode: bool,
    ) -> Outcome[ApplicationState]:
        """An operator's application records the assignments this run created, so teardown removes only those.

        Recording needs write access to that application; without it (Application.ReadWrite.OwnedBy and not an
        owner), the assignments are kept on teardown, and the result says so.
        """
        tags = list(app.get("tags") or [])
        args = (batch.cluster, workload.namespace, workload.name)
        recorded = app_created_role_digests(tags, *args)
        created = {
            role_digest(parse_scope(row["scope"]).key, row["role_definition_guid"])
            for row in roles
            if row["action"] == "created"
        }
        if created <= recorded:
            return outcome
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
            return outcome
        return recording if outcome.action == "unchanged" else dataclasses.replace(outcome, after=recording.after)

    # -- removing -------------------------------------------------------------------------------------
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
        elif (
            workload.application_id is None
            and application_owned_by(app.get("tags"), batch.cluster, batch.cluster_scope)
        ) or (workload.application_id is not None and workload.teardown_adopted):
            before = {"application": _brief(state)}
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
                roles = self._unassign(batch, state, reads, check_mode, only=only)
                record = app_created_roles_entries(state["tags"], *args)
                if record:
                    kept = [t for t in state["tags"] if t not in record]
                    ensure_application_tags(self.api, app, principal, kept, check_mode)
                if fics or roles or record:
                    before = {"federated_credentials": [f["name"] for f in fics]}
        return removal_result(
            workload, _identity(state, workload, action, workload.application_id is None), fics, roles, before
        )

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


def _brief(state: ApplicationState | None) -> dict[str, Any] | None:
    """The application as a diff shows it: what a user can change, not the ids Entra assigns."""
    if state is None:
        return None
    return {"display_name": state["display_name"], "unique_name": state["unique_name"], "tags": state["tags"]}
