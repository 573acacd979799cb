"""_guard: a plan that deletes much, or everything, is refused with every deletion named, unless confirmed."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._guard import (
    azure_deletions,
    check_deletions,
    kube_deletions,
)


def pruned_identity(name: str, roles: int) -> dict[str, Any]:
    return {
        "identities": [{"name": name, "resource_group": "rg"}],
        "applications": [],
        "federated_credentials": [],
        "role_assignments": [
            {"identity": name, "role": "Reader", "role_definition_guid": "g", "scope": f"/s/{i}", "name": f"n{i}"}
            for i in range(roles)
        ],
    }


def test_an_identity_with_its_assignments_counts_once_and_a_stray_assignment_counts_too() -> None:
    pruned = pruned_identity("id-a", roles=3)
    pruned["role_assignments"].append(
        {"identity": "id-kept", "role": None, "role_definition_guid": "g2", "scope": "/s/x", "name": "n"}
    )
    units, listed = azure_deletions({"workloads": [], "pruned": pruned})  # type: ignore[typeddict-item]
    assert units == 2 and len(listed) == 5
    assert listed[0] == "identity id-a (pruned)" and listed[-1] == "role assignment g2 @ /s/x of id-kept (pruned)"


def test_data_grants_count_with_their_identity_or_per_principal_and_a_listed_workloads_one_by_one() -> None:
    pruned = pruned_identity("id-a", roles=0)
    pruned["access_policies"] = [{"identity": "id-a", "vault": "/v/kv", "permissions": {"secrets": ["get"]}}]
    pruned["cosmos_roles"] = [
        {"identity": "id-a", "role": "R", "role_definition_id": "/d", "scope": "/c/1", "name": "n1"},
        {"identity": "(deleted principal p)", "role": "R", "role_definition_id": "/d", "scope": "/c/2", "name": "n2"},
        {"identity": "(deleted principal p)", "role": "R", "role_definition_id": "/d", "scope": "/c/3", "name": "n3"},
    ]
    workload = {
        "name": "w",
        "identity": {"name": "id-w", "action": "unchanged"},
        "federated_credentials": [],
        "role_assignments": [],
        "access_policies": [{"vault": "/v/kv", "action": "deleted"}],
        "cosmos_roles": [
            {"role": "R", "scope": "/c/4", "action": "deleted"},
            {"role": "R", "scope": "/c/5", "action": "unchanged"},
        ],
    }
    units, listed = azure_deletions({"workloads": [workload], "pruned": pruned})  # type: ignore[typeddict-item]
    # id-a whole (1), the deleted principal's two (1), the listed workload's entry and SQL role (2).
    assert units == 4 and len(listed) == 7
    assert "Cosmos DB SQL role R @ /c/2 of (deleted principal p) (pruned)" in listed
    assert "access policy @ /v/kv" in listed
    # The same principal's orphaned role assignment counts it already: still one unit for it.
    orphan = {
        "action": "deleted",
        "principal_id": "P",
        "role": "R",
        "role_definition_guid": "g",
        "scope": "/s",
        "granted_to": "x",
    }
    plan = {"workloads": [workload], "pruned": pruned, "orphaned_assignments": [orphan]}
    assert azure_deletions(plan)[0] == 4  # type: ignore[arg-type]


def test_kube_counts_released_workloads_and_deleted_namespaces() -> None:
    rows = {
        "controllers": [
            {"kind": "Deployment", "namespace": "a", "name": "x", "action": "unbound", "workload": "w1"},
            {"kind": "CronJob", "namespace": "a", "name": "y", "action": "unbound", "workload": "w1"},
        ],
        "service_accounts": [
            {"kind": "ServiceAccount", "namespace": "a", "name": "w1", "action": "deleted", "workload": "w1"},
            {"kind": "ServiceAccount", "namespace": "b", "name": "w2", "action": "released", "workload": "w2"},
            {"kind": "ServiceAccount", "namespace": "b", "name": "w3", "action": "unchanged", "workload": "w3"},
        ],
        "namespaces": [{"kind": "Namespace", "namespace": None, "name": "a", "action": "deleted"}],
    }
    units, listed = kube_deletions(rows)  # type: ignore[arg-type]
    assert units == 3 and "ServiceAccount b/w2 (released)" in listed and "Namespace a (deleted)" in listed


def test_refused_over_the_limit_or_for_everything_unless_the_cluster_is_named() -> None:
    check_deletions("aks-dev", 5, ["x"] * 5, everything=False, prune_max=5, confirm=None)  # at the limit: fine
    with pytest.raises(ValidationError, match=r"6 workloads' or objects' worth, more than prune_max \(5\)"):
        check_deletions("aks-dev", 6, ["x"] * 6, everything=False, prune_max=5, confirm=None)
    with pytest.raises(ValidationError, match="everything this collection made on the cluster: identity a"):
        check_deletions("aks-dev", 1, ["identity a"], everything=True, prune_max=5, confirm="aks-prod")
    check_deletions("aks-dev", 9, ["x"] * 9, everything=True, prune_max=5, confirm="aks-dev")
    check_deletions("aks-dev", 0, [], everything=True, prune_max=5, confirm=None)  # nothing to delete
