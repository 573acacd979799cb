# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the batch removes, always through the engines.

Removing a workload (teardown), pruning what the list no longer declares, and cleaning an identity or an
application before it goes (its role assignments first: Azure would leave them behind, orphaned) all
come down to these three steps, shared by both kinds of identity.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._azure_batch_reads import Batch, BatchReader, Reads, identity_key
from ._azure_federated_credential import FicParent, IdentityFicApi, ensure_federated_credential
from ._azure_identity import ensure_identity
from ._azure_role_assignment import Role, assignment_state, ensure_role_assignment
from ._ids import parse_scope
from ._lock import object_lock
from ._ownership import others_claims, own_credential_names, without_claim
from ._results import FederatedCredentialRow, FederatedCredentialState, IdentityState, PrunedAssignment


class Released(NamedTuple):
    """What letting go of a shared identity did: this cluster's credentials removed, and ``released`` (its claim
    removed, others' left), ``deleted`` (no other claim was left by then: the identity went whole, ``roles`` first),
    or ``kept`` (nothing of this cluster's was on it)."""

    credentials: list[FederatedCredentialRow]
    action: str
    roles: list[PrunedAssignment]


class BatchRemoval(BatchReader):
    def release(
        self, batch: Batch, identity: IdentityState, subjects: list[str] | None, reads: Reads, check_mode: bool
    ) -> Released:
        """This cluster lets go of an identity of ours that other clusters use: its credentials (for these subjects;
        all of this cluster's when None), then its claim. The identity and its role assignments stay for the others;
        when none is left by then (they let go at the same moment), it goes whole, as the last one's."""
        ref = batch.ref_of(identity)
        listed = reads.fics.get(identity_key(identity["resource_group"], identity["name"]), [])
        names = self.this_clusters_credentials(batch, listed, subjects)
        removed = self.remove_credentials(IdentityFicApi(self.fics, ref), listed, names, check_mode)
        # Another cluster may add or release its own claim at this moment: read the tags afresh, under a lock.
        with object_lock(ref.id):
            current = identity if check_mode else self.identities.get(ref)
            if current is None:
                return Released(removed, "absent", [])
            if not others_claims(current["tags"], batch.cluster, batch.cluster_scope):
                roles = self.remove_assignments(batch, current["principal_id"], current["name"], reads, check_mode)
                return Released(removed, self._remove_identity(batch, current, check_mode), roles)
            tags = without_claim(current["tags"], batch.cluster, batch.cluster_scope)
            outcome = ensure_identity(
                self.identities,
                ref,
                state="present",
                location=None,
                tags=tags,
                purge_tags=True,
                check_mode=check_mode,
                known=current,
            )
        return Released(removed, "released" if outcome.changed or removed else "kept", [])

    @staticmethod
    def this_clusters_credentials(
        batch: Batch, listed: list[FederatedCredentialState], subjects: list[str] | None
    ) -> list[str]:
        """This cluster's credentials on a shared identity or application: for these subjects (named by ``fic_name``,
        trusting its issuer when known); for none given, every one named after it that trusts its issuer (none when
        the issuer is unknown: the name alone could be another cluster's, ``aks-dev-2`` starts like ``aks-dev``)."""
        if subjects is not None:
            return own_credential_names(batch.cluster, subjects, batch.issuer_url, listed)
        prefix = f"{batch.cluster}-".lower()
        return [f["name"] for f in listed if f["issuer"] == batch.issuer_url and f["name"].lower().startswith(prefix)]

    def _remove_identity(self, batch: Batch, identity: IdentityState, check_mode: bool) -> str:
        outcome = ensure_identity(
            self.identities,
            batch.ref_of(identity),
            state="absent",
            location=None,
            tags=None,
            purge_tags=False,
            check_mode=check_mode,
            known=identity,
        )
        return outcome.action

    def remove_credentials(
        self, parent: FicParent, listed: list[FederatedCredentialState], names: list[str], check_mode: bool
    ) -> list[FederatedCredentialRow]:
        """The named credentials, through the engine; returns what was (or would be) deleted."""
        removed: list[FederatedCredentialRow] = []
        for name in names:
            outcome = ensure_federated_credential(
                parent,
                name,
                state="absent",
                issuer=None,
                subject=None,
                audiences=None,
                check_mode=check_mode,
                siblings=listed,
            )
            if outcome.before is not None and outcome.action == "deleted":
                row: FederatedCredentialRow = {
                    "name": outcome.before["name"],
                    "subject": outcome.before["subject"],
                    "action": "deleted",
                }
                removed.append(row)
        return removed

    def remove_assignments(
        self,
        batch: Batch,
        principal_id: str | None,
        label: str,
        reads: Reads,
        check_mode: bool,
        only: set[tuple[str, str]] | None = None,
        keep: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
    ) -> list[PrunedAssignment]:
        """Delete the identity's assignments (those in ``only``, if given) that are not in ``keep``.

        Both sets hold (scope key, role definition GUID) pairs; returns what was (or would be) deleted.
        """
        removed: list[PrunedAssignment] = []
        for model in reads.assignments.get(str(principal_id).lower(), []):
            state = assignment_state(model)
            pair = (parse_scope(state["scope"]).key, state["role_definition_guid"])
            if (only is not None and pair not in only) or pair in keep:
                continue
            role = reads.role_of(batch.subscription_id, model)
            if self.delete_listed(model, role, check_mode) == "deleted":
                removed.append(
                    {
                        "identity": label,
                        "role": role.name,
                        "role_definition_guid": state["role_definition_guid"],
                        "scope": state["scope"],
                        "name": state["name"],
                    }
                )
        return removed

    def delete_listed(self, model: Any, role: Role, check_mode: bool) -> str:
        """One role assignment as listed, deleted through the engine; its action (``deleted``, or ``absent``)."""
        state = assignment_state(model)
        return ensure_role_assignment(
            self.roles,
            scope=state["scope"],
            role=role,
            principal_id=state["principal_id"],
            principal_type=state["principal_type"] or "ServicePrincipal",
            state="absent",
            check_mode=check_mode,
            listed=[model],
        ).action
