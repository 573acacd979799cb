"""plugins/filter/rollout.py: the two batch results joined into one report."""

from __future__ import annotations

from typing import Any

import pytest

SUB = "04028a0b-9308-4196-891c-eecf0e43500d"
SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults/kv"


def _azure(action: str, role_action: str = "unchanged") -> dict[str, Any]:
    """A workload_identities result, whole as its contract (``_results.AzureBatchResult``) has it."""
    return {
        "changed": action != "unchanged" or role_action != "unchanged",
        "workloads": [
            {
                "name": "api",
                "namespace": "n",
                "service_account": "api",
                "subject": "system:serviceaccount:n:api",
                "identity": {"name": "id-api", "client_id": "c1", "action": action},
                "federated_credentials": [{"name": "f", "subject": "system:serviceaccount:n:api", "action": action}],
                "role_assignments": [
                    {
                        "role": "Reader",
                        "role_definition_guid": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                        "scope": SCOPE,
                        "name": "a1",
                        "action": role_action,
                        "adopted": False,
                        "notes": [],
                    }
                ],
                "changed": action != "unchanged" or role_action != "unchanged",
                "notes": [],
            }
        ],
        "pruned": {
            "identities": [],
            "applications": [],
            "federated_credentials": [],
            "role_assignments": [],
            "replaced": [],
            "released": [],
        },
        "orphaned_assignments": [],
    }


def test_report_status_joins_both_sides() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import (
        rollout_lines,
        rollout_markdown,
        rollout_report,
    )

    kube = {
        "changed": True,
        "service_accounts": [
            {"kind": "ServiceAccount", "namespace": "n", "name": "api", "workload": "api", "action": "unchanged"}
        ],
        "controllers": [
            {
                "kind": "Deployment",
                "namespace": "n",
                "name": "api",
                "workload": "api",
                "action": "bound",
                "note": "its pods restart (rolling update)",
            },
            {"kind": "Deployment", "namespace": "n", "name": "old", "workload": "gone", "action": "unbound"},
        ],
    }
    assert rollout_report(_azure("created"), kube, cluster="c")["workloads"][0]["status"] == "created"
    report = rollout_report(_azure("unchanged"), kube, cluster="c")
    assert report["workloads"][0]["status"] == "changed"  # only its Deployment was bound
    assert report["pruned"] == {
        "kubernetes": [{"kind": "Deployment", "namespace": "n", "name": "old", "action": "unbound"}]
    }
    quiet = {**kube, "changed": False, "controllers": [{**kube["controllers"][0], "action": "unchanged"}]}
    assert rollout_report(_azure("unchanged"), quiet, cluster="c")["counts"] == {
        "created": 0,
        "changed": 0,
        "adopted": 0,
        "unchanged": 1,
        "no_access": 0,
    }
    # An account and a Deployment bound by hand, now marked as this collection's: "adopted", not "changed".
    adopted = {**quiet, "changed": True, "controllers": [{**kube["controllers"][0], "action": "adopted"}]}
    adopted_report = rollout_report(_azure("unchanged"), adopted, cluster="c")
    assert adopted_report["workloads"][0]["status"] == "adopted"
    assert "1 workload(s): 0 were created, 0 changed, 1 adopted, 0 unchanged" in rollout_lines(adopted_report)[1]
    lines = rollout_lines(report)
    assert "      role  Reader @ rg-data: Microsoft.KeyVault/vaults/kv (unchanged)" in lines
    assert "      pods  Deployment api (bound: its pods restart (rolling update))" in lines
    assert "| api | changed | id-api (unchanged, `c1`) |" in rollout_markdown(report)

    # A workload without roles signs in and may do nothing: the plan and the summary say so.
    bare = _azure("unchanged")
    bare["workloads"][0]["role_assignments"] = []
    bare_report = rollout_report(bare, quiet, cluster="c", check_mode=True)
    assert bare_report["workloads"][0]["access"] == "none" and bare_report["counts"]["no_access"] == 1
    bare_lines = rollout_lines(bare_report)
    assert bare_lines[1].endswith("; 1 with no access (no roles)")
    assert "      role  no access (no roles declared)" in bare_lines


def test_notes_and_replaced_identities_are_in_the_summary_and_the_markdown() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import (
        rollout_lines,
        rollout_markdown,
        rollout_report,
    )

    azure = _azure("updated")
    azure["workloads"][0]["notes"] = ["identity id-api kept (client id c1, its pods' sign-in uninterrupted): moved"]
    replaced = {"name": "id-api-old", "resource_group": "rg", "client_id": "c0", "workload": "api"}
    azure["pruned"]["replaced"] = [replaced]
    run = rollout_report(azure, {}, cluster="c", replaced_removed=["id-api-old"])
    lines = rollout_lines(run)
    assert "      note  identity id-api kept (client id c1, its pods' sign-in uninterrupted): moved" in lines
    assert (
        "  replaced identity id-api-old (workload api, client id c0): removed once no pod signs in as it any more"
        in lines
    )
    assert "- api: identity id-api kept" in rollout_markdown(run)
    waited_out = rollout_lines(rollout_report(azure, {}, cluster="c"))
    assert any(
        line.endswith("kept: pods still sign in as it; a later run removes it once none does") for line in waited_out
    )
    plan = rollout_lines(rollout_report(azure, {}, cluster="c", check_mode=True))
    assert any(line.endswith("removed once no pod signs in as it any more") for line in plan)


def test_a_webhook_tenant_other_than_the_identities_is_noted() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import rollout_lines, rollout_report

    azure = _azure("unchanged")
    azure["workloads"][0]["identity"]["tenant_id"] = "tenant-a"
    same = rollout_report(azure, {}, cluster="c", webhook_tenant="tenant-a")
    assert same["notes"] == []
    other = rollout_lines(rollout_report(azure, {}, cluster="c", webhook_tenant="tenant-b"))
    assert other[2].startswith(
        "  note: the webhook's tenant (azureTenantID tenant-b) is not the identities' (tenant-a)"
    )


def test_a_moved_workload_is_its_new_account_and_the_old_one_is_released_not_its_own() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import rollout_report

    azure = _azure("unchanged")  # api, in namespace n now
    kube = {
        "changed": True,
        "service_accounts": [
            {"kind": "ServiceAccount", "namespace": "n", "name": "api", "workload": "api", "action": "created"},
            {"kind": "ServiceAccount", "namespace": "old", "name": "api", "workload": "api", "action": "deleted"},
        ],
        "controllers": [
            {"kind": "Deployment", "namespace": "old", "name": "api", "workload": "api", "action": "unbound"},
        ],
    }
    report = rollout_report(azure, kube, cluster="c")
    assert report["workloads"][0]["service_account_action"] == "created"
    assert report["workloads"][0]["controllers"] == []
    assert report["pruned"]["kubernetes"] == [
        {"kind": "ServiceAccount", "namespace": "old", "name": "api", "action": "deleted"},
        {"kind": "Deployment", "namespace": "old", "name": "api", "action": "unbound"},
    ]


def test_a_shared_identity_this_cluster_let_go_of_is_in_the_summary() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import rollout_lines, rollout_report

    azure = _azure("unchanged")
    azure["pruned"]["released"] = [
        {"name": "id-orders", "resource_group": "rg-ids", "used_by": ["cluster aks-green"]},
        {"name": "orders-app", "resource_group": "", "used_by": ["cluster aks-green", "cluster aks-teal"]},
    ]
    lines = rollout_lines(rollout_report(azure, {}, cluster="aks-blue"))
    assert (
        "  let go of identity id-orders: this cluster's credentials and claim removed, kept for cluster aks-green"
        in (lines)
    )
    kept_for_two = "kept for cluster aks-green, cluster aks-teal"
    assert any(
        line.endswith(f"application orders-app: this cluster's credentials and claim removed, {kept_for_two}")
        for line in lines
    )


def test_plan_changes_nothing_only_when_neither_side_would_change() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import plan_changes_nothing

    def kube(account: str = "unchanged", controller: str = "unchanged", namespace: str = "unchanged") -> dict:
        return {
            "namespaces": [{"kind": "Namespace", "name": "n", "action": namespace}],
            "service_accounts": [{"kind": "ServiceAccount", "namespace": "n", "name": "api", "action": account}],
            "controllers": [{"kind": "Deployment", "namespace": "n", "name": "api", "action": controller}],
        }

    assert plan_changes_nothing(_azure("unchanged"), kube()) is True
    # A missing controller is reported, never made; a namespace another workload holds is kept.
    assert plan_changes_nothing(_azure("unchanged"), kube(controller="missing", namespace="kept")) is True
    assert plan_changes_nothing(_azure("created"), kube()) is False
    assert plan_changes_nothing(_azure("unchanged", role_action="created"), kube()) is False
    assert plan_changes_nothing(_azure("unchanged"), kube(account="adopted")) is False
    assert plan_changes_nothing(_azure("unchanged"), kube(controller="bound")) is False
    pruning = {**_azure("unchanged"), "pruned": {"identities": [{"name": "id-old"}], "role_assignments": []}}
    assert plan_changes_nothing(pruning, kube()) is False
    reported = {**_azure("unchanged"), "orphaned_assignments": [{"name": "a", "action": "reported"}]}
    assert plan_changes_nothing(reported, kube()) is True
    deleted = {**_azure("unchanged"), "orphaned_assignments": [{"name": "a", "action": "deleted"}]}
    assert plan_changes_nothing(deleted, kube()) is False
    # A plan of both sides in one module run (plan_kubernetes) carries the Kubernetes side's: it is read there.
    assert plan_changes_nothing({**_azure("unchanged"), "kubernetes": kube()}) is True
    assert plan_changes_nothing({**_azure("unchanged"), "kubernetes": kube(account="adopted")}) is False
    failed = {"failed": True, "msg": "1 problem(s) on cluster aks-dev, nothing changed: ...", "problems": ["..."]}
    assert plan_changes_nothing({**_azure("unchanged"), "kubernetes": failed}) is False
    assert plan_changes_nothing(_azure("unchanged")) is False
    # A plan that failed (no workloads, or no accounts) is never "nothing to do".
    assert plan_changes_nothing({"failed": True, "msg": "x"}, kube()) is False
    assert plan_changes_nothing(_azure("unchanged"), {"failed": True}) is False
    assert plan_changes_nothing(_azure("unchanged"), None) is False


def test_a_result_that_is_not_the_contract_is_refused_naming_what_is_missing() -> None:
    """A renamed or missing key is an error naming it, never a None or an "unchanged" in the report."""
    from ansible.errors import AnsibleFilterError
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import rollout_report

    renamed = _azure("unchanged")
    renamed["workloads"][0]["role_assignments"][0]["state"] = renamed["workloads"][0]["role_assignments"][0].pop(
        "action"
    )
    with pytest.raises(AnsibleFilterError, match="workload api: a row has no 'action'"):
        rollout_report(renamed, {}, cluster="c")
    no_notes = _azure("unchanged")
    del no_notes["workloads"][0]["notes"]
    with pytest.raises(AnsibleFilterError, match="workload api has no 'notes'"):
        rollout_report(no_notes, {}, cluster="c")
    no_orphans = _azure("unchanged")
    del no_orphans["orphaned_assignments"]
    with pytest.raises(AnsibleFilterError, match="has no 'orphaned_assignments'"):
        rollout_report(no_orphans, {}, cluster="c")
    report = rollout_report(_azure("unchanged"), {}, cluster="c")
    assert report["schema_version"] == 1 and list(report)[0] == "schema_version"
