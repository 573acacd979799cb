# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the Azure batch's result, shaped once.

Per workload what was done (``WorkloadResult``), what prune removed, and a before/after diff of what a
user can change (not the ids Azure assigns), for the module's result and ``--diff``.
"""

from __future__ import annotations

from typing import Any, cast

from ._inventory import WorkloadSpec
from ._results import (
    AzureBatchResult,
    FederatedCredentialRow,
    IdentityResult,
    IdentityState,
    OrphanedAssignment,
    Pruned,
    PrunedAssignment,
    RoleAssignmentRow,
    WorkloadResult,
)


def workload_result(
    workload: WorkloadSpec,
    identity: IdentityResult,
    fics: list[FederatedCredentialRow],
    roles: list[RoleAssignmentRow],
    changed: bool,
    notes: list[str],
) -> WorkloadResult:
    """One workload's row: its names, and what was done for its identity, credentials and role assignments (its access
    policy entries, only when it has some, are added by the caller)."""
    return {
        "name": workload.name,
        "namespace": workload.namespace,
        "service_account": workload.service_account,
        "subject": workload.subject,
        "identity": identity,
        "federated_credentials": fics,
        "role_assignments": roles,
        "changed": changed,
        "notes": notes,
    }


def identity_result(state: IdentityState | None, name: str, action: str, owned: bool | None = None) -> IdentityResult:
    """The identity as reported per workload: its state (when it exists or will), what was done, whether ours."""
    # IdentityResult is IdentityState with every key optional (an absent identity has only a name) plus two.
    result = cast(IdentityResult, {**state} if state is not None else {"name": name})
    result["action"] = action
    if owned is not None:
        result["owned"] = owned
    return result


def batch_report(
    done: list[tuple[WorkloadResult, dict[str, Any]]], pruned: Pruned, orphaned: list[OrphanedAssignment]
) -> AzureBatchResult:
    """The result, and a before/after diff per workload (pruned and orphaned objects appear only before)."""
    workloads = [result for result, _diff in done]
    deleted = [o for o in orphaned if o["action"] == "deleted"]
    changed = any(w["changed"] for w in workloads) or any(pruned.values()) or bool(deleted)
    before: dict[str, Any] = {w["name"]: diff["before"] for w, diff in done}
    after = {w["name"]: diff["after"] for w, diff in done}
    if any(pruned.values()):
        before["(pruned)"] = pruned
    if deleted:
        before["(orphaned role assignments)"] = deleted
    return {
        "changed": changed,
        "workloads": workloads,
        "pruned": pruned,
        "orphaned_assignments": orphaned,
        "diff": {"before": before, "after": after},
    }


def brief(identity: IdentityState | None) -> dict[str, Any] | None:
    """The identity as a diff shows it: what the user can change, not the ids Azure assigns."""
    if identity is None:
        return None
    return {
        "name": identity["name"],
        "resource_group": identity["resource_group"],
        "location": identity["location"],
        "tags": identity["tags"],
    }


def removal_result(
    workload: WorkloadSpec,
    identity: IdentityResult,
    fics: list[FederatedCredentialRow],
    roles: list[PrunedAssignment],
    before: dict[str, Any] | None,
) -> tuple[WorkloadResult, dict[str, Any]]:
    """What removing one workload did (identity or application alike), and its diff (nothing after)."""
    if before is not None:
        before["role_assignments"] = [f"{r['role'] or r['role_definition_guid']} @ {r['scope']}" for r in roles]
    removed: list[RoleAssignmentRow] = [
        {
            "role": r["role"],
            "role_definition_guid": r["role_definition_guid"],
            "scope": r["scope"],
            "name": r["name"],
            "action": "deleted",
            "adopted": False,
            "notes": [],
        }
        for r in roles
    ]
    changed = identity.get("action") in ("deleted", "released") or bool(fics or roles)
    return workload_result(workload, identity, fics, removed, changed, []), {"before": before, "after": None}
