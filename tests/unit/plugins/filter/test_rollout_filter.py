"""The rollout filters that let one changed workload among many cost its own reads: which rows a plan leaves as they
are, and the converge's result with the plan's rows put back in the list's order."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.filter.rollout import client_ids, plan_unchanged, with_plan_rows


def row(name: str, changed: bool = False, kind: str | None = None) -> dict[str, Any]:
    identity = {"name": f"id-{name}", "client_id": f"c-{name}", **({"kind": kind} if kind else {})}
    return {"name": name, "changed": changed, "identity": identity, "federated_credentials": [], "role_assignments": []}


def plan(*rows: dict[str, Any], **extra: Any) -> dict[str, Any]:
    pruned = {"identities": [], "applications": [], "federated_credentials": [], "role_assignments": []}
    return {"workloads": list(rows), "pruned": pruned, "orphaned_assignments": [], **extra}


def test_a_plan_leaves_its_unchanged_managed_identity_workloads_to_the_converge() -> None:
    planned = plan(row("a", changed=True), row("b"), row("c", kind="application"), row("d"))
    assert plan_unchanged(planned) == ["b", "d"]


def test_a_plan_that_prunes_or_reports_anything_reuses_nothing() -> None:
    pruning = plan(row("a"), row("b"))
    pruning["pruned"]["identities"].append({"name": "id-gone", "resource_group": "rg"})
    assert plan_unchanged(pruning) == []
    orphans = plan(row("a"), orphaned_assignments=[{"name": "x", "action": "reported"}])
    assert plan_unchanged(orphans) == []
    assert plan_unchanged({"failed": True, "msg": "no"}) == []


def test_the_converge_gets_the_plans_rows_back_in_the_lists_order() -> None:
    planned = plan(row("a"), row("b", changed=True), row("c"), diff={"before": {"a": 1, "b": 2}, "after": {"a": 1}})
    converged = {
        "changed": True,
        "workloads": [row("b", changed=True)],
        "reused": ["a", "c"],
        "diff": {"before": {"b": 3}, "after": {"b": 4}},
    }
    converged["workloads"][0]["identity"]["action"] = "unchanged"
    merged = with_plan_rows(converged, planned)
    assert [w["name"] for w in merged["workloads"]] == ["a", "b", "c"]
    assert merged["workloads"][1] is converged["workloads"][0]
    assert merged["diff"] == {"before": {"a": 1, "b": 3}, "after": {"a": 1, "b": 4}}
    assert merged["changed"] is True
    # Nothing reused: the result as it is.
    assert with_plan_rows({"workloads": [row("a")]}, planned) == {"workloads": [row("a")]}
    with pytest.raises(AnsibleFilterError):
        with_plan_rows(converged, {"failed": True})


def test_the_kubernetes_side_gets_only_the_ids_it_annotates() -> None:
    rows = [
        row("a"),
        {**row("b"), "identity": {"name": "id-b", "client_id": "c-b", "tenant_id": "t", "tags": {"x": "y"}}},
    ]
    assert client_ids(rows) == [
        {"name": "a", "identity": {"client_id": "c-a", "tenant_id": None}},
        {"name": "b", "identity": {"client_id": "c-b", "tenant_id": "t"}},
    ]
    with pytest.raises(AnsibleFilterError):
        client_ids({"workloads": []})  # type: ignore[arg-type]
