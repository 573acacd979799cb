# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the batch removes, always through the engines.

Removing a workload (teardown), pruning what the list no longer declares, and cleaning an identity or an
application before it goes (its role assignments first: Azure would leave them behind, orphaned) all
come down to these three steps, shared by both kinds of identity.
"""

from __future__ import annotations

from ._azure_batch_reads import Batch, BatchReader, Reads
from ._azure_federated_credential import FicParent, ensure_federated_credential
from ._azure_identity import ensure_identity
from ._azure_role_assignment import assignment_state, ensure_role_assignment
from ._ids import parse_scope
from ._results import FederatedCredentialRow, FederatedCredentialState, IdentityState, PrunedAssignment


class BatchRemoval(BatchReader):
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
            outcome = ensure_role_assignment(
                self.roles,
                scope=state["scope"],
                role=role,
                principal_id=state["principal_id"],
                principal_type=state["principal_type"] or "ServicePrincipal",
                state="absent",
                check_mode=check_mode,
                listed=[model],
            )
            if outcome.action == "deleted":
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
