# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the interfaces the batch's pipeline converges through.

**Identity kinds.** A workload signs in as a user-assigned managed identity (``_azure_batch_identities``) or as an
app registration, an application and its service principal (``_azure_batch_apps``). Each kind answers the same few
questions, so that converging one workload is one flow (``_azure_batch.Workloads``): what only Azure can tell before
any write (``check``), its identity ensured and what trusting a subject and granting a role need of it (``ensure``
returns ``Ensured``), what it does once the workload's writes are done (``settle``: the record of what was granted
on an identity the collection did not make; the claim on one just made, confirmed), how the result reports it
(``brief``, ``result``), and letting go of it: the workload removed (``remove``), what the list no longer declares
(``prune``).

**Grant kinds.** What gives a principal access (``_azure_batch_grants.RoleAssignments`` is the first). A grant kind
knows its scope and how it is read in bulk (with the subscription's reads, before planning), checks every declared
grant before any write, ensures exactly the declared ones through its engine with the collection's mark, removes a
principal's (all, or those not declared any more), finds its marked grants whose principal is gone
(``_azure_batch_orphans``), and is proven by ``verify`` where the service can tell.

**Data grant kinds** (``DataGrantKind``): the grants a data service keeps itself, declared in the same ``roles``: Key
Vault's access policies (``_azure_batch_access_policies``) and Cosmos DB's SQL role assignments
(``_azure_batch_cosmos``). The pipeline treats them alike, in a loop: read per vault or account, checked after the
role assignments, ensured after them, removed with the principal (teardown, prune), and their rows under their own
``report_key``. To add one: a class with the ``DataGrantKind`` methods, its engine (the only code that writes), its
rows in ``_results``, and an entry in ``Workloads.data_grants``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ._azure_batch_reads import Batch, Reads, Resolved
from ._azure_federated_credential import FicParent
from ._inventory import WorkloadSpec
from ._ownership_assignments import AssignmentMark
from ._results import (
    FederatedCredentialState,
    IdentityResult,
    Outcome,
    Pruned,
    PrunedAssignment,
    RoleAssignmentRow,
    WorkloadResult,
)

Converged = tuple[WorkloadResult, dict[str, Any]]  # a workload's result, and its before/after diff


@dataclass
class Ensured:
    """A workload's identity (or application), ensured, with what trusting its subjects and granting its roles need."""

    outcome: Outcome[Any]  # what ensuring it did; replaced when recording granted roles changes it again
    after: dict[str, Any] | None  # its state after, with what check mode can predict of it
    parent: FicParent  # where its federated credentials live
    siblings: list[FederatedCredentialState]  # the credentials on it, as read
    principal: str  # the object id its roles are granted to (``PENDING`` until Entra assigns one)
    listed: list[Any]  # that principal's role assignments, as read
    mark: AssignmentMark  # what this collection writes on the grants it makes for it
    ours: bool  # made by this collection: exactly the declared grants (unset means none)
    exactly_ours: bool  # made by this collection for this very cluster (name and place)
    notes: list[str]
    known: Any  # what the kind read of it, for its own later steps (recording granted roles)


class IdentityKind(Protocol):
    label: str  # how its diff names it: "identity" or "application"

    def check(self, batch: Batch, workload: WorkloadSpec, reads: Reads, problems: list[str]) -> tuple[Any, str | None]:
        """Its problems before any write, appended; returns the other clusters' claims on it and its principal."""

    def ensure(self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool) -> Ensured:
        """Its identity (or application) made or kept as declared, and what trusting and granting need of it."""

    def settle(
        self, batch: Batch, workload: WorkloadSpec, ensured: Ensured, roles: list[RoleAssignmentRow], check_mode: bool
    ) -> None:
        """Once the workload's writes are done. On one the collection did not make: which grants it created, so that
        teardown removes only those. On one it just made under an explicit name: its claim is still there."""

    def brief(self, state: Any) -> dict[str, Any] | None:
        """What a diff shows of it: what a user can change, not the ids Azure assigns."""

    def result(self, workload: WorkloadSpec, ensured: Ensured) -> IdentityResult:
        """How the batch result reports it (the Kubernetes side reads its client id)."""

    def remove(self, batch: Batch, workload: WorkloadSpec, reads: Reads, check_mode: bool) -> Converged:
        """state=absent for one workload: its own goes whole, a shared one is let go of, an operator's is kept."""

    def prune(self, batch: Batch, reads: Reads, resolved: Resolved, check_mode: bool, pruned: Pruned) -> None:
        """What this collection made for this cluster of its kind and the list no longer declares."""


class GrantKind(Protocol):
    report_key: str  # its rows' key in a workload's result and diff

    def check(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: Resolved,
        problems: list[str],
        principal: str | None,
    ) -> None:
        """Each declared grant resolved and allowed, before any write; every problem appended."""

    def ensure(
        self,
        workload: WorkloadSpec,
        principal: str,
        listed: list[Any],
        resolved: Resolved,
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any]],
        exact: bool,
        mark: AssignmentMark,
    ) -> list[RoleAssignmentRow]:
        """Exactly the declared grants for the principal, through the kind's engine, marked as the collection's."""

    def remove(
        self,
        batch: Batch,
        principal_id: str | None,
        label: str,
        reads: Reads,
        check_mode: bool,
        only: set[tuple[str, str]] | None = None,
        keep: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
    ) -> list[PrunedAssignment]:
        """The principal's grants of this kind (those in ``only``, if given) that are not in ``keep``, removed."""


class DataGrantKind(Protocol):
    """A grant a data service keeps itself (Key Vault's access policies, Cosmos DB's SQL roles): declared in ``roles``
    beside ARM role assignments, read per vault or account the workloads name, without a description to carry the
    collection's mark (what it made is told by a record on the identity, or by the name it gives)."""

    report_key: str  # its rows' key in a workload's result, its diff and the pruned result

    def read(self, batch: Batch, reads: Reads) -> None:
        """What the workloads name, read once per vault or account (every one of the subscription when needed)."""

    def check(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: Resolved,
        problems: list[str],
        principal: str | None,
    ) -> None:
        """Each declared grant possible and allowed, and each ARM role on its services judged; every problem
        appended (after the role assignments' check: ``resolved`` holds the workload's ARM roles)."""

    def declared(self, workload: WorkloadSpec) -> list[Any]:
        """The workload's entries of this kind."""

    def declared_keys(self, workload: WorkloadSpec, reads: Reads) -> set[str]:
        """Its entries as ``remove`` keeps or takes them."""

    def ensure(
        self,
        workload: WorkloadSpec,
        principal: str,
        reads: Reads,
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any]],
        exact: bool,
        recorded: set[str] | frozenset[str] = frozenset(),
    ) -> list[Any]:
        """The declared grants for the principal (``exact``: its identity is this collection's; ``recorded``: those
        ``made_here`` on an operator's); its rows, the diff's sides filled in."""

    def remove(
        self,
        batch: Batch,
        principal_id: str | None,
        label: str,
        reads: Reads,
        check_mode: bool,
        keep: set[str] | frozenset[str] = frozenset(),
        only: set[str] | None = None,
    ) -> list[Any]:
        """The principal's grants of this kind on every vault or account but ``keep`` (or ``only`` those), removed."""

    def removed_rows(self, gone: list[Any], notes: list[str]) -> list[Any]:
        """What ``remove`` removed, as a workload's rows."""

    def diff_lines(self, gone: list[Any]) -> list[str]:
        """What ``remove`` removed, as the diff's before side shows it."""

    def to_record(self, rows: list[Any]) -> list[RoleAssignmentRow]:
        """What ``ensure`` created that an operator's identity must record as the collection's."""

    def made_here(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, principal: str | None, recorded: set[str]
    ) -> set[str]:
        """Of the workload's entries, those this collection made on an operator's identity (``recorded``: the digests
        the identity's record holds), which no other cluster sharing it declares."""

    def in_use(self, batch: Batch) -> bool:
        """Whether this cluster's list declares grants of this kind at all."""
