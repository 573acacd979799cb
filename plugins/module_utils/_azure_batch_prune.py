# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the batch removes (state=absent) and prunes.

An identity this collection made for this cluster alone goes whole: its role assignments first (Azure would leave
them behind, orphaned), then the identity, which takes its federated credentials with it. One that other clusters
still use is let go of: this cluster's credentials and its claim only (``_azure_batch_shared``). An identity made
elsewhere stays (unless the workload says ``teardown_adopted``): this cluster's credentials on it and the declared
assignments this collection created go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._azure_batch_checks import BatchChecks
from ._azure_batch_reads import Batch, Reads, Resolved, ref_key, role_key
from ._azure_batch_report import batch_report, brief, identity_result, removal_result
from ._azure_federated_credential import IdentityFicApi
from ._ids import parse_scope
from ._inventory import WorkloadSpec, subject_for
from ._ownership import NAMESPACE_TAG, SERVICE_ACCOUNT_TAG, fic_name, made_by_collection, own_credential_names
from ._results import AzureBatchResult, FederatedCredentialRow, IdentityState, Pruned, PrunedAssignment, empty_pruned

Guard = Callable[[AzureBatchResult], None]


class Pruning(BatchChecks):
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
            elif batch.owns(identity["tags"]) and batch.others(identity["tags"]):
                # Other clusters still use it: only this cluster's credentials and its claim go.
                let_go = self.release(batch, identity, workload.subjects, reads, check_mode)
                fics, roles, action = let_go.credentials, let_go.roles, let_go.action
                before = {"identity": brief(identity)} if action == "deleted" else {}
                before["federated_credentials"] = [f["name"] for f in fics]
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
        return batch_report(
            done, self._prune(batch, reads, {}, check_mode), self.remove_orphans(batch, reads, check_mode)
        )

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
            successor = self._successor(batch, identity, reads) if workload is None and batch.defer_replaced else None
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
            others = batch.others(identity["tags"])
            if workload is None and others:
                # Other clusters still use it: this cluster lets go (its credentials, its claim); the rest stays.
                let_go = self.release(batch, identity, None, reads, check_mode)
                pruned["role_assignments"].extend(let_go.roles)
                if let_go.action == "deleted":
                    pruned["identities"].append(
                        {"name": identity["name"], "resource_group": identity["resource_group"]}
                    )
                    continue
                pruned["federated_credentials"].extend(
                    {"identity": identity["name"], "name": f["name"], "subject": f["subject"]}
                    for f in let_go.credentials
                )
                if let_go.action == "released":
                    pruned["released"].append(
                        {
                            "name": identity["name"],
                            "resource_group": identity["resource_group"],
                            "used_by": [c.described() for c in others],
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
        pruned["replaced"].extend(reads.held)
        return pruned

    @staticmethod
    def _successor(batch: Batch, identity: IdentityState, reads: Reads) -> WorkloadSpec | None:
        """The listed workload now on a ServiceAccount this identity of ours served on this cluster (under another
        identity): the one it was made for, or a subject this cluster's credentials on it trust (one shared with
        other clusters may have been made for another's)."""
        tags = identity["tags"]
        made_for = subject_for(tags.get(NAMESPACE_TAG, ""), tags.get(SERVICE_ACCOUNT_TAG, ""))
        trusted = {made_for} | {
            f["subject"]
            for f in reads.fics.get(ref_key(batch.ref_of(identity)), [])
            if batch.issuer_url and f["issuer"] == batch.issuer_url
        }
        return next((w for w in batch.identity_workloads if w.subject in trusted), None)
