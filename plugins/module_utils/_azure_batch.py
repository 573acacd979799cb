# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): every workload of a cluster, on Azure, in one task.

1. The list is validated by ``_inventory`` before this module is reached.
2. ``_azure_batch_reads`` reads in bulk.
3. Plan with the engines the single-object modules use, in check mode, on those reads: runtime
   problems (unknown roles, full identities, foreign identities) surface before any write, and the
   plan is what check mode reports.
4. Unless in check mode, converge: a bounded pool of workloads at a time; a workload's writes run in
   order (so FIC writes on one identity never overlap). Creates, updates, removals and prune all go
   through the same ``ensure_*`` engines: this module never writes to Azure itself.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._azure_application import ApplicationApi
from ._azure_batch_apps import ApplicationSide
from ._azure_batch_checks import BatchChecks
from ._azure_batch_reads import PENDING, AzureApis, Batch, Reads, Resolved, ref_key, role_key
from ._azure_batch_report import batch_report, brief, identity_result, removal_result, workload_names
from ._azure_federated_credential import FederatedCredentialApi, FicParent, IdentityFicApi, ensure_federated_credential
from ._azure_identity import IdentityApi, ensure_identity, normalise_location
from ._azure_role_assignment import RoleAssignmentApi, ensure_role_assignment
from ._errors import ValidationError
from ._ids import parse_scope
from ._inventory import WorkloadSpec
from ._limits import DEFAULT_AUDIENCE, FIC_FIELD_MAX
from ._ownership import (
    NAMESPACE_TAG,
    SERVICE_ACCOUNT_TAG,
    fic_name,
    identity_marks,
    made_by_collection,
    own_credential_names,
    tags_with_record,
)
from ._results import (
    AzureBatchResult,
    FederatedCredentialRow,
    FederatedCredentialState,
    IdentityState,
    Pruned,
    PrunedAssignment,
    RoleAssignmentRow,
    WorkloadResult,
    empty_pruned,
)
from ._retry import RetryPolicy

Guard = Callable[[AzureBatchResult], None]


def issuer_problems(cluster: str, issuer_url: str | None) -> list[str]:
    if not issuer_url or not issuer_url.startswith("https://") or len(issuer_url) > FIC_FIELD_MAX:
        return [f"cluster {cluster}: issuer_url: must be the cluster's https OIDC issuer URL (got {issuer_url!r})"]
    return []


class Workloads(BatchChecks):
    """Reads (as its BatchReader base), plans and converges one cluster's workloads, of both kinds."""

    def __init__(self, apis: AzureApis, applications: ApplicationApi | None = None) -> None:
        super().__init__(apis)
        self.apps = ApplicationSide(self, applications) if applications is not None else None

    @classmethod
    def from_clients(
        cls, msi: Any, authorization: Any, policy: RetryPolicy, subscription_id: str, graph: Any = None
    ) -> Workloads:
        identities, fics = IdentityApi(msi, policy), FederatedCredentialApi(msi, policy)
        apis = AzureApis(identities, fics, RoleAssignmentApi(authorization, policy), subscription_id)
        return cls(apis, ApplicationApi(graph) if graph is not None else None)

    def read(self, batch: Batch) -> Reads:
        if any(w.is_application for w in batch.workloads) and self.apps is None:
            raise ValidationError([f"cluster {batch.cluster}: identity_type application: no Microsoft Graph client"])
        reads = super().read(batch)
        if self.apps is not None:
            self.apps.read(batch, reads)
        return reads

    # -- planning and converging ------------------------------------------------------------------
    def converge(
        self, batch: Batch, reads: Reads, check_mode: bool, workers: int, guard: Guard | None = None
    ) -> AzureBatchResult:
        """``guard`` sees the plan before any write and may refuse it (raising ValidationError)."""
        resolved = self._check(batch, reads)
        # Plan first, with no writes: surfaces the rest of the problems (all of them), and is check mode's answer.
        plans: list[tuple[WorkloadResult, dict[str, Any]]] = []
        problems: list[str] = []
        for workload in batch.workloads:
            try:
                plans.append(self._workload(batch, workload, reads, resolved, True))
            except ValidationError as exc:
                problems.extend(f"cluster {batch.cluster}: workload '{workload.name}': {p}" for p in exc.problems)
        if problems:
            raise ValidationError(problems)
        planned = batch_report(plans, self._prune(batch, reads, resolved, True))
        if guard is not None:
            guard(planned)
        if check_mode:
            return planned
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            done = list(pool.map(lambda w: self._workload(batch, w, reads, resolved, False), batch.workloads))
        return batch_report(done, self._prune(batch, reads, resolved, False))

    def _workload(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, resolved: Resolved, check_mode: bool
    ) -> tuple[WorkloadResult, dict[str, Any]]:
        if workload.is_application and self.apps is not None:
            return self.apps.converge(batch, workload, reads, resolved, check_mode)
        ref = batch.ref(workload)
        known = reads.identity(ref)
        # Identities made elsewhere are used as they are; only ours carry (and keep) our tags.
        ours = known is None or made_by_collection(known["tags"])
        marks = identity_marks(
            batch.cluster, workload.namespace, workload.service_account, workload.name, batch.cluster_scope
        )
        # On its own identity, unset means none: a tag it set that the inventory dropped goes (others' stay).
        tags = tags_with_record(known["tags"] if known else None, workload.tags, marks) if ours else workload.tags
        notes: list[str] = [reads.continued[workload.name]] if workload.name in reads.continued else []
        location = batch.location
        if known and location and normalise_location(location) != known["location"]:
            # The batch's location is where new identities go; one cannot move, and needs not (sign-in is global).
            notes.append(
                f"identity {known['name']} stays in {known['location']} (new identities go to "
                f"{normalise_location(location)}; an identity cannot move)"
            )
            location = None
        identity = ensure_identity(
            self.identities,
            ref,
            state="present",
            location=location,
            tags=tags or None,
            purge_tags=ours,
            check_mode=check_mode,
            known=known,
        )
        after = identity.after
        if after is not None and not after["tenant_id"]:
            # A new identity (check mode): its tenant is the subscription's, as every identity read there has.
            after = {
                **after,
                "tenant_id": next((i["tenant_id"] for i in reads.identities.values() if i["tenant_id"]), None),
            }
        principal = (after["principal_id"] if after else None) or PENDING
        seen: dict[str, Any] = {
            "identity": brief(identity.before),
            "federated_credentials": {},
            "role_assignments": [],
        }
        planned: dict[str, Any] = {"identity": brief(after), "federated_credentials": {}, "role_assignments": []}
        fics = self.trust(
            batch,
            workload,
            IdentityFicApi(self.fics, ref),
            reads.fics.get(ref_key(ref), []),
            check_mode,
            (seen, planned, notes),
            exactly_ours=known is None or batch.owns(known["tags"]),
        )
        listed = reads.assignments.get(principal.lower(), []) if known else []
        roles = self.grant(workload, principal, listed, resolved, check_mode, seen, planned, exact=ours)
        if not ours and after is not None:
            identity = self.record_created_roles(batch, workload, ref, identity, roles, check_mode)
            after = identity.after
            planned["identity"] = brief(after)
        changed = (
            identity.changed
            or any(f["action"] != "unchanged" for f in fics)
            or any(r["action"] != "unchanged" for r in roles)
        )
        result: WorkloadResult = {
            **workload_names(workload),
            "identity": identity_result(after, workload.identity_name, identity.action, owned=ours),
            "federated_credentials": fics,
            "role_assignments": roles,
            "changed": changed,
            "notes": notes,
        }
        return result, {"before": seen, "after": planned}

    def trust(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        parent: FicParent,
        siblings: list[FederatedCredentialState],
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any], list[str]],
        exactly_ours: bool,
    ) -> list[FederatedCredentialRow]:
        """One credential per subject from this cluster's issuer, on an identity or an application.

        ``sides``: the diff's before and after, and the workload's notes, filled in. ``exactly_ours``: the parent was
        made by this collection for this very cluster (name and place), so a credential of this cluster's name that
        trusts another issuer is this cluster's from before it was re-created, and is moved to the new issuer. On a
        parent shared with others, that credential may be another cluster's of the same name: it is left alone, and
        this cluster's gets a name of its own.
        """
        seen, planned, notes = sides
        fics: list[FederatedCredentialRow] = []
        for subject in workload.subjects:
            name = fic_name(batch.cluster, subject)
            taken = next((f for f in siblings if f["name"].lower() == name.lower()), None)
            if taken is not None and taken["issuer"] != batch.issuer_url:
                if exactly_ours:
                    notes.append(
                        f"federated credential {taken['name']}: issuer changes from {taken['issuer']} to "
                        f"{batch.issuer_url} (the cluster's issuer is not the one it trusted)"
                    )
                else:
                    notes.append(
                        f"federated credential {taken['name']} on {parent.label} trusts another issuer "
                        f"({taken['issuer']}): another cluster named {batch.cluster}, or this one before it was "
                        "re-created; left as it is"
                    )
                    name = fic_name(batch.cluster, subject, batch.issuer_url)
            fic = ensure_federated_credential(
                parent,
                name,
                state="present",
                issuer=batch.issuer_url,
                subject=subject,
                audiences=[DEFAULT_AUDIENCE],
                check_mode=check_mode,
                siblings=siblings,
                adopt=True,
            )
            # An adopted credential keeps its own name: report that one, so prune and teardown leave it alone.
            fics.append({"name": fic.after["name"] if fic.after else name, "subject": subject, "action": fic.action})
            for side, state in ((seen, fic.before), (planned, fic.after)):
                if state:
                    side["federated_credentials"][state["name"]] = {
                        "issuer": state["issuer"],
                        "subject": state["subject"],
                    }
        return fics

    def grant(
        self,
        workload: WorkloadSpec,
        principal: str,
        listed: list[Any],
        resolved: Resolved,
        check_mode: bool,
        seen: dict[str, Any],
        planned: dict[str, Any],
        exact: bool,
    ) -> list[RoleAssignmentRow]:
        """Exactly the declared role assignments, for the principal of an identity or an application.

        ``exact`` for this collection's own identity or application: on its assignments, unset means none (a
        condition or description dropped from the inventory, or added by hand, is removed).
        """
        roles: list[RoleAssignmentRow] = []
        for spec in workload.roles:
            role = resolved[role_key(workload, spec.role, spec.scope)]
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
                exact=exact,
            )
            if outcome.before:
                seen["role_assignments"].append(f"{role.name} @ {spec.scope}")
            planned["role_assignments"].append(f"{role.name} @ {spec.scope}")
            roles.append(
                {
                    "role": role.name,
                    "role_definition_guid": role.guid,
                    "scope": spec.scope,
                    # A new principal's assignments are named after it, and Entra assigns it on creation.
                    "name": None if principal == PENDING or not outcome.after else outcome.after["name"],
                    "action": outcome.action,
                    "notes": outcome.notes,
                }
            )
        return roles

    # -- removing ---------------------------------------------------------------------------------
    def remove(self, batch: Batch, reads: Reads, check_mode: bool, guard: Guard | None = None) -> AzureBatchResult:
        """state=absent; ``guard`` sees the plan (the same removal in check mode) before any write."""
        if guard is None:
            return self._remove(batch, reads, check_mode)
        planned = self._remove(batch, reads, True)
        guard(planned)
        return planned if check_mode else self._remove(batch, reads, False)

    def _remove(self, batch: Batch, reads: Reads, check_mode: bool) -> AzureBatchResult:
        """state=absent for the listed workloads (and, with prune, everything else made for this cluster).

        An identity this collection made for this cluster goes whole: its role assignments first (Azure would
        leave them behind, orphaned), then the identity, which takes its federated credentials with it. An
        identity made elsewhere stays (unless the workload says ``teardown_adopted``): only this cluster's
        credentials on it and the declared assignments this collection created go.
        """
        done = []
        for workload in batch.workloads:
            if workload.is_application and self.apps is not None:
                done.append(self.apps.remove(batch, workload, reads, check_mode))
                continue
            ref = batch.ref(workload)
            identity = reads.identity(ref)
            fics: list[FederatedCredentialRow] = []
            roles: list[PrunedAssignment] = []
            before: dict[str, Any] | None = None
            if identity is None:
                action = "absent"
            elif batch.owns(identity["tags"]) or (
                workload.teardown_adopted and not made_by_collection(identity["tags"])
            ):
                # Ours, or adopted and the inventory says to remove it all the same.
                before = {"identity": brief(identity)}
                roles = self.remove_assignments(batch, identity["principal_id"], identity["name"], reads, check_mode)
                action = self._remove_identity(batch, identity, check_mode)
            else:
                # Made by this collection for another cluster (that cluster's to remove), or made elsewhere.
                action = "kept"
                if not made_by_collection(identity["tags"]):
                    ref = batch.ref_of(identity)
                    listed = reads.fics.get(ref_key(ref), [])
                    ours = own_credential_names(batch.cluster, workload.subjects, batch.issuer_url, listed)
                    fics = self.remove_credentials(IdentityFicApi(self.fics, ref), listed, ours, check_mode)
                    roles, record = self.remove_created_assignments(batch, workload, identity, reads, check_mode)
                    if fics or roles or record:
                        before = {"federated_credentials": [f["name"] for f in fics]}
            done.append(
                removal_result(workload, identity_result(identity, workload.identity_name, action), fics, roles, before)
            )
        return batch_report(done, self._prune(batch, reads, {}, check_mode))

    def _prune(self, batch: Batch, reads: Reads, resolved: Resolved, check_mode: bool) -> Pruned:
        """What this collection made for this cluster and the list no longer declares (only with prune)."""
        pruned = empty_pruned()
        if not batch.prune:
            return pruned
        absent = batch.state == "absent"
        listed = {ref_key(batch.ref(w)): w for w in batch.identity_workloads}
        declared = {} if absent else listed
        handled = set(listed) if absent else set()
        for key, identity in sorted(reads.identities.items()):
            if key in handled or not batch.owns(identity["tags"]):
                continue  # never touch what this collection (for this cluster) did not make
            workload = declared.get(key)
            successor = self._successor(batch, identity) if workload is None and batch.defer_replaced else None
            if successor is not None:
                pruned["replaced"].append(
                    {
                        "name": identity["name"],
                        "resource_group": identity["resource_group"],
                        "client_id": str(identity["client_id"]),
                        "workload": successor.name,
                    }
                )
                continue
            wanted_roles = (
                {(parse_scope(r.scope).key, resolved[role_key(workload, r.role, r.scope)].guid) for r in workload.roles}
                if workload
                else set()
            )
            pruned["role_assignments"].extend(
                self.remove_assignments(
                    batch, identity["principal_id"], identity["name"], reads, check_mode, keep=wanted_roles
                )
            )
            if workload is None:
                self._remove_identity(batch, identity, check_mode)
                pruned["identities"].append({"name": identity["name"], "resource_group": identity["resource_group"]})
                continue
            wanted = {fic_name(batch.cluster, s).lower() for s in workload.subjects}
            # Only credentials trusting this cluster's issuer are this cluster's to prune.
            subjects = set(workload.subjects)
            stale = [
                f["name"]
                for f in reads.fics.get(key, [])
                if f["issuer"] == batch.issuer_url and f["name"].lower() not in wanted and f["subject"] not in subjects
            ]
            ref = batch.ref_of(identity)
            for row in self.remove_credentials(
                IdentityFicApi(self.fics, ref), reads.fics.get(key, []), stale, check_mode
            ):
                pruned["federated_credentials"].append(
                    {"identity": identity["name"], "name": row["name"], "subject": row["subject"]}
                )
        if self.apps is not None:
            self.apps.prune(batch, reads, resolved, check_mode, pruned)
        return pruned

    @staticmethod
    def _successor(batch: Batch, identity: IdentityState) -> WorkloadSpec | None:
        """The listed workload now on the ServiceAccount this identity of ours was made for (under another identity)."""
        tags = identity["tags"]
        return next(
            (
                w
                for w in batch.identity_workloads
                if (w.namespace, w.service_account) == (tags.get(NAMESPACE_TAG), tags.get(SERVICE_ACCOUNT_TAG))
            ),
            None,
        )
