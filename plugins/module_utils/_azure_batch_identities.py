# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the batch's user-assigned managed identities.

One identity kind (``_azure_batch_kinds.IdentityKind``), through the engines the single-object modules use
(``ensure_identity``, ``ensure_federated_credential``). An identity this collection made carries its marks and the
claims of the clusters that use it (``_ownership``); one made elsewhere (named by ``identity_name``) is used as it
is, and records which role assignments this collection created on it (``_azure_batch_roles_record``).

Letting go: an identity made for this cluster alone goes whole, its role assignments first (Azure would leave them
behind, orphaned), then the identity, which takes its federated credentials with it. One that other clusters still
use is let go of: this cluster's credentials and its claim only (``_azure_batch_shared``). One made elsewhere stays
(unless the workload says ``teardown_adopted``): this cluster's credentials on it and the declared assignments this
collection created go.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from ._azure_batch_grants import RoleAssignments
from ._azure_batch_kinds import Converged, Ensured
from ._azure_batch_reads import PENDING, Batch, Reads, Resolved, ref_key
from ._azure_batch_removal import (
    Released,
    remove_credentials,
    stale_credentials,
    this_clusters_credentials,
    trusted_elsewhere,
)
from ._azure_batch_report import brief, identity_result, removal_result
from ._azure_batch_roles_record import record_created_roles, remove_created_assignments
from ._azure_batch_shared import identity_tags
from ._azure_federated_credential import IdentityFicApi
from ._azure_identity import ensure_identity, normalise_location
from ._errors import ValidationError
from ._ids import IdentityRef
from ._inventory import WorkloadSpec, subject_for
from ._limits import TAGS_PER_RESOURCE
from ._lock import object_lock
from ._ownership import (
    FORMAT_VERSION,
    NAMESPACE_TAG,
    SERVICE_ACCOUNT_TAG,
    Claim,
    foreign_owner,
    made_by_collection,
    others_claims,
    own_credential_names,
    owned_by,
    place_described,
    recorded_others,
    without_claim,
)
from ._ownership_assignments import AssignmentMark
from ._results import (
    FederatedCredentialRow,
    IdentityResult,
    IdentityState,
    Outcome,
    Pruned,
    PrunedAssignment,
    RoleAssignmentRow,
)


class ManagedIdentityKind:
    label = "identity"

    def __init__(self, grants: RoleAssignments) -> None:
        self.grants = grants
        self.ctx = grants.ctx

    # -- before any write ---------------------------------------------------------------------------
    def check(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, problems: list[str]
    ) -> tuple[list[Claim], str | None]:
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        ref = batch.ref(workload)
        identity = reads.identity(ref)
        if identity is None and not batch.location:
            problems.append(
                f"{where}: location: identity {workload.identity_name} does not exist and no "
                "location was given to create it in"
            )
        if identity is None and ref.resource_group.lower() in reads.missing_groups:
            problems.append(
                f"{where}: identity_resource_group: resource group {ref.resource_group} does not exist "
                f"(identity {workload.identity_name} would be made there)"
            )
        if identity is not None and workload.named_by_default:
            problem = self._default_name_problem(batch, workload, identity)
            if problem:
                problems.append(f"{where}: identity_name: {problem}")
        if identity is None:
            return [], None
        return batch.others(identity["tags"]), identity["principal_id"]

    @staticmethod
    def _default_name_problem(batch: Batch, workload: WorkloadSpec, identity: IdentityState) -> str | None:
        owner = foreign_owner(identity["tags"], batch.cluster, batch.cluster_scope)
        if owner is not None:
            # A default name carries its cluster's: found in use elsewhere, it is a same-named cluster's, never
            # an identity to share (sharing is asked for by naming the identity on each cluster).
            place = place_described(batch.cluster_scope)
            this = f"this cluster ({place})" if place else "this cluster"
            return (
                f"identity {workload.identity_name} in {batch.ref(workload).resource_group} is used by "
                f"{owner}, not by {this}; set identity_name (or identity_resource_group) so that each cluster has "
                "its own, or, to share one identity between clusters, the same identity_name on each"
            )
        if not made_by_collection(identity["tags"]):
            return (
                f"the default name {workload.identity_name} is taken in "
                f"{identity['resource_group']} by an identity this collection did not make; to adopt it, set "
                f"identity_name: {workload.identity_name} (and identity_resource_group: "
                f"{identity['resource_group']}); else set another identity_name"
            )
        return None

    # -- converging ---------------------------------------------------------------------------------
    def ensure(self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool) -> Ensured:
        ref = batch.ref(workload)
        known = reads.identity(ref)
        # Identities made elsewhere are used as they are; only ours carry (and keep) our tags.
        ours = known is None or made_by_collection(known["tags"])
        # Another cluster's host may write this identity's tags at the same time: read them afresh, under a lock. So
        # is one named explicitly that the plan found missing: a cluster this run does not know of (another slice of
        # the job, another job) may have made it since; made meanwhile, it is claimed, not made again (a second PUT
        # would replace the first one's tags, its claim with them).
        shared = ours and bool(
            batch.sharing(workload)
            or (known and batch.others(known["tags"]))
            or (known is None and not workload.named_by_default)
        )
        with object_lock(ref.id) if shared and not check_mode else nullcontext():
            if shared and not check_mode:
                known = self.ctx.identities.get(ref)
                ours = known is None or made_by_collection(known["tags"])
            identity, moved = self._identity(batch, workload, ref, known, ours, check_mode)
        notes: list[str] = [reads.continued[workload.name]] if workload.name in reads.continued else []
        notes += shared_notes(
            batch, workload, identity.action, found_meanwhile=known is not None and not reads.identity(ref)
        )
        after: dict[str, Any] | None = dict(identity.after) if identity.after is not None else None
        if after is not None and not after["tenant_id"]:
            # A new identity (check mode): its tenant is the subscription's, as every identity read there has.
            after["tenant_id"] = next((i["tenant_id"] for i in reads.identities.values() if i["tenant_id"]), None)
        principal = (after["principal_id"] if after else None) or PENDING
        return Ensured(
            outcome=identity,
            after=after,
            parent=IdentityFicApi(self.ctx.fics, ref),
            siblings=reads.fics.get(ref_key(ref), []),
            principal=principal,
            listed=reads.assignments.get(principal.lower(), []) if known else [],
            mark=AssignmentMark(
                batch.cluster,
                batch.cluster_scope,
                workload.namespace,
                workload.name,
                "identity",
                f"{ref.resource_group}/{ref.name}",
                format=FORMAT_VERSION,
            ),
            ours=ours,
            exactly_ours=known is None or batch.owns(known["tags"]),
            notes=notes + moved,
            known=ref,
        )

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
            self.ctx.identities,
            ref,
            state="present",
            location=location,
            tags=tags or None,
            purge_tags=ours,
            check_mode=check_mode,
            known=known,
        )
        return outcome, notes

    def settle(
        self, batch: Batch, workload: WorkloadSpec, ensured: Ensured, roles: list[RoleAssignmentRow], check_mode: bool
    ) -> None:
        if ensured.ours:
            self._confirm_claim(batch, workload, ensured, check_mode)
            return
        if ensured.after is None:
            return
        ensured.outcome = record_created_roles(
            self.grants, batch, workload, ensured.known, ensured.outcome, roles, check_mode
        )
        ensured.after = dict(ensured.outcome.after) if ensured.outcome.after is not None else None

    def _confirm_claim(self, batch: Batch, workload: WorkloadSpec, ensured: Ensured, check_mode: bool) -> None:
        """An identity this run made under an explicit name, its credentials and grants written since: read again.
        A cluster this run does not know of (another slice, another job) that found it missing at the same moment
        made it too, and its PUT replaced the tags, this cluster's claim with them: written again, by name. (The
        claim of whichever PUT came first is lost only if the other's lands after this read: one workload's writes
        later, not one round trip.)"""
        if check_mode or ensured.outcome.action != "created" or workload.named_by_default or ensured.known is None:
            return
        current = self.ctx.identities.get(ensured.known)
        if current is None or owned_by(current["tags"], batch.cluster, batch.cluster_scope):
            return
        outcome = ensure_identity(
            self.ctx.identities,
            ensured.known,
            state="present",
            location=None,
            tags=identity_tags(batch, workload, current["tags"]),
            purge_tags=True,
            check_mode=False,
            known=current,
        )
        ensured.after = dict(outcome.after) if outcome.after is not None else ensured.after

    def brief(self, state: Any) -> dict[str, Any] | None:
        return brief(state)

    def result(self, workload: WorkloadSpec, ensured: Ensured) -> IdentityResult:
        state: Any = ensured.after
        return identity_result(state, workload.identity_name, ensured.outcome.action, owned=ensured.ours)

    # -- letting go ---------------------------------------------------------------------------------
    def remove(self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool) -> Converged:
        """state=absent for one workload: ours goes whole; shared is let go of; made elsewhere keeps all but ours."""
        identity = reads.identity(batch.ref(workload))
        fics: list[FederatedCredentialRow] = []
        roles: list[PrunedAssignment] = []
        before: dict[str, Any] | None = None
        if identity is None:
            action = "absent"
        elif batch.owns(identity["tags"]) and (
            batch.others(identity["tags"]) or self._claimed_meanwhile(batch, identity, check_mode)
        ):
            # Other clusters still use it: only this cluster's credentials and its claim go.
            let_go = self.release(batch, identity, workload.subjects, reads, check_mode)
            fics, roles, action = let_go.credentials, let_go.roles, let_go.action
            before = {"identity": brief(identity)} if action == "deleted" else {}
            before["federated_credentials"] = [f["name"] for f in fics]
        elif batch.owns(identity["tags"]) or (workload.teardown_adopted and not made_by_collection(identity["tags"])):
            # Ours, or adopted and the inventory says to remove it all the same.
            before = {"identity": brief(identity)}
            roles = self.grants.remove(batch, identity["principal_id"], identity["name"], reads, check_mode)
            action = self._remove_identity(batch, identity, check_mode)
        else:
            # Made by this collection for another cluster (that cluster's to remove), or made elsewhere.
            action = "kept"
            if not made_by_collection(identity["tags"]):
                fics, roles, before = self._leave_adopted(batch, workload, identity, reads, check_mode)
        return removal_result(workload, identity_result(identity, workload.identity_name, action), fics, roles, before)

    def _leave_adopted(
        self, batch: Batch, workload: WorkloadSpec, identity: IdentityState, reads: Reads, check_mode: bool
    ) -> tuple[list[FederatedCredentialRow], list[PrunedAssignment], dict[str, Any] | None]:
        """An identity made elsewhere keeps all but this cluster's credentials and the assignments it created."""
        ref = batch.ref_of(identity)
        listed = reads.fics.get(ref_key(ref), [])
        ours = own_credential_names(batch.cluster, workload.subjects, batch.issuer_url, listed)
        fics = remove_credentials(IdentityFicApi(self.ctx.fics, ref), listed, ours, check_mode)
        roles, record = remove_created_assignments(self.grants, batch, workload, identity, reads, check_mode)
        before = {"federated_credentials": [f["name"] for f in fics]} if fics or roles or record else None
        return fics, roles, before

    def release(
        self, batch: Batch, identity: IdentityState, subjects: list[str] | None, reads: Reads, check_mode: bool
    ) -> Released:
        """This cluster lets go of an identity of ours that other clusters use: its credentials (for these subjects;
        all of this cluster's when None), then its claim. The identity and its role assignments stay for the others;
        when none is left by then (they let go at the same moment), it goes whole, as the last one's.

        The claim goes by name (ARM's Tags API, ``ensure_identity``), and ARM's answer is the claims left after it,
        other writers' included: of two clusters letting go at once, the second sees none left and deletes. Before
        deleting, the identity's credentials are listed afresh: one trusting another issuer means a cluster still
        signs in with it (its claim lost to a writer without the Tags API, or its credential made by hand), and the
        identity stays."""
        ref = batch.ref_of(identity)
        listed = reads.fics.get(ref_key(ref), [])
        names = this_clusters_credentials(batch, listed, subjects)
        removed = remove_credentials(IdentityFicApi(self.ctx.fics, ref), listed, names, check_mode)
        # The lock serves the whole-tags fallback on this controller; the Tags API needs none.
        with object_lock(ref.id):
            current = identity if check_mode else self.ctx.identities.get(ref)
            if current is None:
                return Released(removed, "absent", [])
            if others_claims(current["tags"], batch.cluster, batch.cluster_scope):
                outcome = ensure_identity(
                    self.ctx.identities,
                    ref,
                    state="present",
                    location=None,
                    tags=without_claim(current["tags"], batch.cluster, batch.cluster_scope),
                    purge_tags=True,
                    check_mode=check_mode,
                    known=current,
                )
                action = "released" if outcome.changed or removed else "kept"
                if check_mode or outcome.after is None:
                    return Released(removed, action, [])
                current = outcome.after
                if recorded_others(current["tags"], batch.cluster, batch.cluster_scope):
                    return Released(removed, action, [])
            fresh = [] if check_mode else self.ctx.fics.list_all(ref)
            if trusted_elsewhere(batch, f"identity {ref.name}", fresh, self.ctx.warnings):
                return Released(removed, "released", [])
            roles = self.grants.remove(batch, current["principal_id"], current["name"], reads, check_mode)
            return Released(removed, self._remove_identity(batch, current, check_mode), roles)

    def _claimed_meanwhile(self, batch: Batch, identity: IdentityState, check_mode: bool) -> bool:
        """An identity of ours that only this cluster claimed when the plan read it, about to be deleted: read afresh,
        as a cluster converged elsewhere (another node, another job) may have claimed it since."""
        if check_mode:
            return False
        current = self.ctx.identities.get(batch.ref_of(identity))
        return current is not None and bool(batch.others(current["tags"]))

    def whole_tags_warning(self, batch: Batch) -> None:
        """Said once a run wrote identity tags whole because ARM refused it the Tags API."""
        warning = self.ctx.identities.whole_tags_warning(
            f"cluster {batch.cluster}",
            "the claim of a cluster converged at the same moment on another execution node or by another job",
        )
        if warning:
            self.ctx.warnings.append(warning)

    def _remove_identity(self, batch: Batch, identity: IdentityState, check_mode: bool) -> str:
        outcome = ensure_identity(
            self.ctx.identities,
            batch.ref_of(identity),
            state="absent",
            location=None,
            tags=None,
            purge_tags=False,
            check_mode=check_mode,
            known=identity,
        )
        return outcome.action

    def prune(self, batch: Batch, reads: Reads, resolved: Resolved, check_mode: bool, pruned: Pruned) -> None:
        """What this collection made for this cluster and the list no longer declares: identities whole (or let go
        of, when shared), and on those still declared, this issuer's stale credentials and undeclared roles."""
        absent = batch.state == "absent"
        listed = {ref_key(batch.ref(w)): w for w in batch.identity_workloads}
        declared = {} if absent else listed
        handled = set(listed) if absent else set()
        for key, identity in sorted(reads.identities.items()):
            if key in handled or not batch.owns(identity["tags"]):
                continue  # never touch what this collection (for this cluster) did not make
            workload = declared.get(key)
            if workload is not None:
                # The plan pruned nothing, so nothing of an identity it left unchanged (neither read nor resolved now).
                if not batch.reuses(workload):
                    self._prune_declared(batch, workload, identity, reads, resolved, check_mode, pruned)
                continue
            successor = self._successor(batch, identity, reads) if batch.defer_replaced else None
            if successor is not None:
                pruned["replaced"].append(
                    {
                        "name": identity["name"],
                        "resource_group": identity["resource_group"],
                        "client_id": str(identity["client_id"]),
                        "workload": successor.name,
                    }
                )
            elif batch.others(identity["tags"]) or self._claimed_meanwhile(batch, identity, check_mode):
                self._prune_shared(batch, identity, reads, check_mode, pruned)
            else:
                pruned["role_assignments"].extend(
                    self.grants.remove(batch, identity["principal_id"], identity["name"], reads, check_mode)
                )
                self._remove_identity(batch, identity, check_mode)
                pruned["identities"].append({"name": identity["name"], "resource_group": identity["resource_group"]})

    def _prune_shared(
        self, batch: Batch, identity: IdentityState, reads: Reads, check_mode: bool, pruned: Pruned
    ) -> None:
        """Other clusters still use it: this cluster lets go (its credentials, its claim); the rest stays."""
        others = batch.others(identity["tags"])
        let_go = self.release(batch, identity, None, reads, check_mode)
        pruned["role_assignments"].extend(let_go.roles)
        if let_go.action == "deleted":
            pruned["identities"].append({"name": identity["name"], "resource_group": identity["resource_group"]})
            return
        pruned["federated_credentials"].extend(
            {"identity": identity["name"], "name": f["name"], "subject": f["subject"]} for f in let_go.credentials
        )
        if let_go.action == "released":
            pruned["released"].append(
                {
                    "name": identity["name"],
                    "resource_group": identity["resource_group"],
                    "used_by": [c.described() for c in others],
                }
            )

    def _prune_declared(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        identity: IdentityState,
        reads: Reads,
        resolved: Resolved,
        check_mode: bool,
        pruned: Pruned,
    ) -> None:
        """Ours and still declared: the role assignments it no longer declares, this issuer's stale credentials."""
        pruned["role_assignments"].extend(
            self.grants.remove(
                batch,
                identity["principal_id"],
                identity["name"],
                reads,
                check_mode,
                keep=self.grants.declared(workload, resolved),
            )
        )
        ref = batch.ref_of(identity)
        listed = reads.fics.get(ref_key(ref), [])
        stale = stale_credentials(batch, listed, workload.subjects)
        for row in remove_credentials(IdentityFicApi(self.ctx.fics, ref), listed, stale, check_mode):
            pruned["federated_credentials"].append(
                {"identity": identity["name"], "name": row["name"], "subject": row["subject"]}
            )

    @staticmethod
    def _successor(batch: Batch, identity: IdentityState, reads: Reads) -> WorkloadSpec | None:
        """The listed workload now on a ServiceAccount this identity of ours served on this cluster (under another
        identity, of either kind: a workload switched to an app registration is one): the one it was made for, or a
        subject this cluster's credentials on it trust (one shared with other clusters may have been made for
        another's)."""
        tags = identity["tags"]
        made_for = subject_for(tags.get(NAMESPACE_TAG, ""), tags.get(SERVICE_ACCOUNT_TAG, ""))
        trusted = {made_for} | {
            f["subject"]
            for f in reads.fics.get(ref_key(batch.ref_of(identity)), [])
            if batch.issuer_url and f["issuer"] == batch.issuer_url
        }
        return next((w for w in batch.workloads if w.subject in trusted), None)


def shared_notes(batch: Batch, workload: WorkloadSpec, action: str, found_meanwhile: bool) -> list[str]:
    """What a report says of an identity (or application) other clusters of this run share: made once, by the first
    host to get there; the others find it."""
    peers = ", ".join(sorted({peer.cluster for peer, _theirs in batch.sharing(workload) if peer.in_run}))
    if not peers:
        return []
    if found_meanwhile:
        return [f"made meanwhile by the host of another cluster of this run that shares it ({peers}); found here"]
    if action == "created":
        return [f"shared with cluster(s) {peers} of this run: made once, by the first to get there; the others find it"]
    return []
