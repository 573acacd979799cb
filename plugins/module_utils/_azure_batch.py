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

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

from ._azure_application import ApplicationApi
from ._azure_batch_apps import ApplicationSide
from ._azure_batch_prune import Guard, Pruning
from ._azure_batch_reads import PENDING, AzureApis, Batch, Reads, Resolved, ref_key, role_key
from ._azure_batch_report import batch_report, brief, identity_result, workload_names
from ._azure_batch_shared import identity_tags
from ._azure_federated_credential import FederatedCredentialApi, FicParent, IdentityFicApi, ensure_federated_credential
from ._azure_identity import IdentityApi, ensure_identity, normalise_location
from ._azure_role_assignment import RoleAssignmentApi, ensure_role_assignment
from ._errors import ValidationError
from ._ids import IdentityRef
from ._inventory import WorkloadSpec
from ._limits import DEFAULT_AUDIENCE, FIC_FIELD_MAX, TAGS_PER_RESOURCE
from ._lock import object_lock
from ._ownership import (
    fic_name,
    made_by_collection,
)
from ._ownership_assignments import (
    DESCRIPTION_MAX,
    AssignmentMark,
    made_by_collection_assignment,
    marked_description,
)
from ._results import (
    AzureBatchResult,
    FederatedCredentialRow,
    FederatedCredentialState,
    IdentityState,
    Outcome,
    RoleAssignmentRow,
    WorkloadResult,
)
from ._retry import RetryPolicy


def issuer_problems(cluster: str, issuer_url: str | None) -> list[str]:
    if not issuer_url or not issuer_url.startswith("https://") or len(issuer_url) > FIC_FIELD_MAX:
        return [f"cluster {cluster}: issuer_url: must be the cluster's https OIDC issuer URL (got {issuer_url!r})"]
    return []


class Workloads(Pruning):
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

    def read(self, batch: Batch, workers: int = 1) -> Reads:
        if any(w.is_application for w in batch.workloads) and self.apps is None:
            raise ValidationError([f"cluster {batch.cluster}: identity_type application: no Microsoft Graph client"])
        reads = super().read(batch, workers)
        if self.apps is not None:
            self.apps.read(batch, reads)
        reads.orphans = self.find_orphans(batch, reads, self.apps.api if self.apps is not None else None)
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
        planned = batch_report(
            plans, self._prune(batch, reads, resolved, True), self.remove_orphans(batch, reads, True)
        )
        if guard is not None:
            guard(planned)
        if check_mode:
            return planned
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            done = list(pool.map(lambda w: self._workload(batch, w, reads, resolved, False), batch.workloads))
        orphaned = self.remove_orphans(batch, reads, False)
        return batch_report(done, self._prune(batch, reads, resolved, False), orphaned)

    def _workload(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, resolved: Resolved, check_mode: bool
    ) -> tuple[WorkloadResult, dict[str, Any]]:
        if workload.is_application and self.apps is not None:
            return self.apps.converge(batch, workload, reads, resolved, check_mode)
        ref = batch.ref(workload)
        known = reads.identity(ref)
        # Identities made elsewhere are used as they are; only ours carry (and keep) our tags.
        ours = known is None or made_by_collection(known["tags"])
        # Another cluster's host may write this identity's tags at the same time: read them afresh, under a lock.
        shared = ours and bool(batch.sharing(workload) or (known and batch.others(known["tags"])))
        with object_lock(ref.id) if shared and not check_mode else nullcontext():
            if shared and not check_mode:
                known = self.identities.get(ref)
            identity, moved = self._identity(batch, workload, ref, known, ours, check_mode)
        notes: list[str] = [reads.continued[workload.name]] if workload.name in reads.continued else []
        notes += moved
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
        mark = AssignmentMark(
            batch.cluster,
            batch.cluster_scope,
            workload.namespace,
            workload.name,
            "identity",
            f"{ref.resource_group}/{ref.name}",
        )
        roles = self.grant(workload, principal, listed, resolved, check_mode, seen, planned, exact=ours, mark=mark)
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

    def _identity(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        ref: IdentityRef,
        known: IdentityState | None,
        ours: bool,
        check_mode: bool,
    ) -> tuple[Outcome[IdentityState], list[str]]:
        """The workload's identity ensured, and what the run should say about its location."""
        # On its own identity, unset means none: a tag it set that the inventory dropped goes (others' stay).
        tags = identity_tags(batch, workload, known["tags"] if known else None) if ours else workload.tags
        if len(tags) > TAGS_PER_RESOURCE:
            raise ValidationError(
                [
                    f"tags: identity {workload.identity_name} would carry {len(tags)} tags, more than Azure allows "
                    f"({TAGS_PER_RESOURCE}), with the marks and the claims of the clusters that use it; declare "
                    "fewer tags"
                ]
            )
        location, notes = batch.location, []
        if known and location and normalise_location(location) != known["location"]:
            # The batch's location is where new identities go; one cannot move, and needs not (sign-in is global).
            notes.append(
                f"identity {known['name']} stays in {known['location']} (new identities go to "
                f"{normalise_location(location)}; an identity cannot move)"
            )
            location = None
        outcome = ensure_identity(
            self.identities,
            ref,
            state="present",
            location=location,
            tags=tags or None,
            purge_tags=ours,
            check_mode=check_mode,
            known=known,
        )
        return outcome, notes

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
        mark: AssignmentMark,
    ) -> list[RoleAssignmentRow]:
        """Exactly the declared role assignments, for the principal of an identity or an application.

        ``exact`` for this collection's own identity or application: on its assignments, unset means none (a
        condition dropped from the inventory, or added by hand, is removed). What this collection grants carries
        ``mark`` at the end of its description; an operator's assignment is adopted as it is, and reported so.
        """
        roles: list[RoleAssignmentRow] = []
        for position, spec in enumerate(workload.roles):
            role = resolved[role_key(workload, spec.role, spec.scope)]
            written = marked_description(spec.description, mark.text)
            if len(written) > DESCRIPTION_MAX:
                raise ValidationError(
                    [
                        f"roles[{position}].description: with the collection's mark ({len(mark.text)} characters) it "
                        f"would be {len(written)} characters, more than Azure keeps ({DESCRIPTION_MAX}); shorten it to "
                        f"at most {DESCRIPTION_MAX - len(mark.text) - 1}"
                    ]
                )
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
                mark=mark.text,
            )
            if outcome.before:
                seen["role_assignments"].append(f"{role.name} @ {spec.scope}")
            planned["role_assignments"].append(f"{role.name} @ {spec.scope}")
            before = outcome.before
            adopted = before is not None and not made_by_collection_assignment(
                before["name"], before["description"], before["scope"], role.guid, principal
            )
            roles.append(
                {
                    "role": role.name,
                    "role_definition_guid": role.guid,
                    "scope": spec.scope,
                    # A new principal's assignments are named after it, and Entra assigns it on creation.
                    "name": None if principal == PENDING or not outcome.after else outcome.after["name"],
                    "action": outcome.action,
                    "adopted": adopted,
                    "notes": outcome.notes,
                }
            )
        return roles
