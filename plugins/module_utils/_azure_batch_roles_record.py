# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): which role assignments on an identity made elsewhere are ours.

An operator's identity (declared with ``identity_name``) may already hold the very assignment a workload declares:
ARM shows it exactly as one this collection would have made (same principal, role and scope). So that a teardown
removes only what the collection created, the identity records a digest of each (scope, role) the collection
created for a workload (``_ownership.created_roles_tags``); an assignment that was there before is adopted and
never recorded, and so stays. Identities this collection made go whole and need no record.
"""

from __future__ import annotations

import dataclasses

from ._azure_batch_grants import RoleAssignments
from ._azure_batch_reads import Batch, Reads
from ._azure_batch_shared import needed_by_others
from ._azure_identity import ensure_identity
from ._ids import IdentityRef, parse_scope
from ._inventory import WorkloadSpec
from ._ownership import created_role_digests, created_roles_keys, created_roles_tags, role_digest
from ._results import IdentityState, Outcome, PrunedAssignment, RoleAssignmentRow


def record_created_roles(
    grants: RoleAssignments,
    batch: Batch,
    workload: WorkloadSpec,
    ref: IdentityRef,
    identity: Outcome[IdentityState],
    roles: list[RoleAssignmentRow],
    check_mode: bool,
) -> Outcome[IdentityState]:
    """Add the assignments this run created to the identity's record; the identity's outcome, recording included."""
    after = identity.after
    if after is None:  # nothing to record on: the caller passes an identity that exists
        return identity
    recorded = created_role_digests(after["tags"], batch.cluster, workload.namespace, workload.name)
    created = {
        role_digest(parse_scope(row["scope"]).key, row["role_definition_guid"])
        for row in roles
        if row["action"] == "created"
    }
    if created <= recorded:
        return identity
    recording = ensure_identity(
        grants.ctx.identities,
        ref,
        state="present",
        location=None,
        tags=created_roles_tags(batch.cluster, workload.namespace, workload.name, recorded | created),
        purge_tags=False,
        check_mode=check_mode,
        known=after,
    )
    return recording if identity.action == "unchanged" else dataclasses.replace(identity, after=recording.after)


def remove_created_assignments(
    grants: RoleAssignments,
    batch: Batch,
    workload: WorkloadSpec,
    identity: IdentityState,
    reads: Reads,
    check_mode: bool,
) -> tuple[list[PrunedAssignment], list[str]]:
    """Teardown on an identity made elsewhere: the declared assignments it records as created, then the record.

    Returns the removed assignments and the record's tag keys that were (or would be) dropped.
    """
    created = created_role_digests(identity["tags"], batch.cluster, workload.namespace, workload.name)
    declared = {
        (parse_scope(spec.scope).key, grants.resolve_declared(batch, workload, reads, position).guid)
        for position, spec in enumerate(workload.roles)
    }
    # Another cluster that keeps using the identity (not torn down in this run) may need an assignment this one
    # created: it found it there, so recorded nothing, and would lose it.
    still_needed = needed_by_others(grants.ctx, batch, workload, reads)
    removed = grants.remove(
        batch,
        identity["principal_id"],
        identity["name"],
        reads,
        check_mode,
        only={pair for pair in declared if role_digest(*pair) in created},
        keep=still_needed,
    )
    record = created_roles_keys(identity["tags"], batch.cluster, workload.namespace, workload.name)
    if record:
        ensure_identity(
            grants.ctx.identities,
            batch.ref_of(identity),
            state="present",
            location=None,
            tags={k: v for k, v in identity["tags"].items() if k not in record},
            purge_tags=True,
            check_mode=check_mode,
            known=identity,
        )
    return removed, record
