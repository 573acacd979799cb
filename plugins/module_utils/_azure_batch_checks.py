# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what only Azure can tell, checked before any write.

For every workload of the batch, on what ``_azure_batch_reads`` read, and all problems at once:

- its identity (the kind's ``check``): a location to create it in, not another cluster's or an operator's found by
  coincidence under the default name, its resource group existing;
- its grants (the role assignments' ``check``, then each data grant kind's: Key Vault,
  Cosmos DB): each role resolves to one definition; none that lets the workload grant
  roles (judged by the role's permissions), nor Contributor at a broad scope, unless allowed; a role with data
  actions at a broad scope warned; each scope where an assignment would be created exists and the automation may
  read its assignments (one read per distinct scope, none where the assignment already exists);
- shared with other clusters (``_azure_batch_shared``): declared alike by each, with room for all of their
  credentials, and exactly the declared grants while a cluster outside the inventory uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._azure_batch_grants import RoleAssignments
from ._azure_batch_kinds import DataGrantKind, IdentityKind
from ._azure_batch_reads import Batch, Reads, Resolved
from ._azure_batch_shared import credential_problem, disagreements, outside_claims, outside_problem
from ._errors import ValidationError
from ._inventory import WorkloadSpec
from ._ownership import Claim


def check_all(
    grants: RoleAssignments,
    batch: Batch,
    reads: Reads,
    kind_of: Callable[[WorkloadSpec], IdentityKind],
    data_grants: Sequence[DataGrantKind] = (),
) -> Resolved:
    """What only Azure can tell, for every workload, before any write: every problem at once."""
    problems: list[str] = []
    resolved: Resolved = {}
    # Those the plan left unchanged were checked by it, on reads a moment older; their credentials are not read again.
    for workload in batch.converged_workloads:
        others, principal = kind_of(workload).check(batch, workload, reads, problems)
        grants.check(batch, workload, reads, resolved, problems, principal)
        for grant_kind in data_grants:
            grant_kind.check(batch, workload, reads, resolved, problems, principal)
        _shared_problems(grants, batch, workload, reads, resolved, (others, principal), problems)
    if problems:
        raise ValidationError(problems)
    return resolved


def _shared_problems(
    grants: RoleAssignments,
    batch: Batch,
    workload: WorkloadSpec,
    reads: Reads,
    resolved: Resolved,
    used: tuple[list[Claim], str | None],
    problems: list[str],
) -> None:
    """Named by workloads of other clusters too: they must agree, and all their credentials fit on it; used by
    clusters the inventory does not declare (``used``: their claims and the principal): it holds exactly what is
    declared."""
    where = f"cluster {batch.cluster}: workload '{workload.name}'"
    problems.extend(disagreements(grants.ctx, batch, workload, reads))
    full = credential_problem(batch, workload, reads)
    others, principal = used
    held = reads.assignments.get(principal.lower(), []) if principal else []
    # A cluster that no longer exists, whose claim this run releases, has nothing left to agree to.
    outside = [c for c in outside_claims(batch, others) if not batch.released(c)]
    refused = outside_problem(batch, workload, outside, resolved, reads, held)
    problems.extend(p for p in (full, f"{where}: {refused}" if refused else None) if p)
