"""_kube_batch: the Kubernetes side in one call (service_accounts, and workload_identities' plan of both sides), on the
fake cluster of test_kube_bindings: failures worded as the module words them, raised before any change."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import Failure, KubeApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_batch import KubeRequest, bind_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_paths import CLIENT_ID

from .test_kube_bindings import CLUSTER, ORDERS, TENANT, FakeCluster, cluster_with_shop

CLIENT = "11111111-2222-3333-4444-555555555555"
IDENTITIES = [{"name": "orders", "identity": {"client_id": CLIENT, "tenant_id": TENANT}}]
ACCOUNT = "/api/v1/namespaces/shop/serviceaccounts/orders"


class Calls:
    """What bind_workloads did besides its result: connections opened, warnings and deprecations announced."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster, self.connected, self.warnings, self.deprecations = cluster, 0, [], []

    def connect(self) -> FakeCluster:
        self.connected += 1
        return self.cluster

    def run(self, request: KubeRequest, check_mode: bool, diff: bool = True) -> dict[str, Any]:
        return bind_workloads(
            request,
            self.connect,
            check_mode=check_mode,
            diff=diff,
            warn=self.warnings.append,
            on_deprecation=self.deprecations.append,
        )


def test_check_mode_plans_what_a_real_run_then_does_and_the_second_plan_is_unchanged() -> None:
    calls = Calls(cluster_with_shop())
    before = copy.deepcopy(calls.cluster.objects)
    request = KubeRequest(CLUSTER, [ORDERS], IDENTITIES)
    planned = calls.run(request, check_mode=True)
    assert calls.cluster.objects == before, "check mode wrote"
    assert planned["changed"] is True
    assert [(row["name"], row["action"]) for row in planned["service_accounts"]] == [("orders", "adopted")]
    assert planned["diff"]["after"]
    done = calls.run(request, check_mode=False)
    assert [row["action"] for row in done["service_accounts"]] == ["adopted"]
    assert calls.cluster.objects[ACCOUNT]["metadata"]["annotations"][CLIENT_ID] == CLIENT
    again = calls.run(request, check_mode=True, diff=False)
    assert again["changed"] is False and "diff" not in again
    assert calls.connected == 3 and calls.warnings == [] and calls.deprecations == []


def test_a_list_with_problems_fails_naming_them_before_the_cluster_is_reached() -> None:
    calls = Calls(cluster_with_shop())
    bad = {**ORDERS, "namespace": "Not_A_Namespace"}
    with pytest.raises(Failure) as failed:
        calls.run(KubeRequest(CLUSTER, [bad, "orders"], IDENTITIES), check_mode=True)
    result = failed.value.result
    assert result["msg"].startswith(f"2 problem(s) in the workloads of {CLUSTER}: ")
    assert len(result["problems"]) == 2 and all(CLUSTER in problem for problem in result["problems"])
    assert calls.connected == 0


def test_a_real_run_needs_every_client_id_and_changes_nothing_without_one() -> None:
    calls = Calls(cluster_with_shop())
    before = copy.deepcopy(calls.cluster.objects)
    with pytest.raises(Failure) as failed:
        calls.run(KubeRequest(CLUSTER, [ORDERS], []), check_mode=False)
    assert failed.value.result["problems"] == [
        f"cluster {CLUSTER}: workload 'orders': identities: no client id (pass the workloads result of "
        "workload_identity.aks.workload_identities)",
        f"cluster {CLUSTER}: tenant_id: required (or identities that carry it)",
    ]
    assert calls.cluster.objects == before and calls.connected == 0
    # A plan (check mode) may be made before the identities exist: the Azure side's failed plan has no ids.
    assert calls.run(KubeRequest(CLUSTER, [ORDERS], []), check_mode=True)["changed"] is True


def test_an_api_error_is_worded_for_the_module_naming_the_cluster() -> None:
    class Refusing(FakeCluster):
        def get(self, path: str, operation: str) -> dict[str, Any] | None:
            raise KubeApiError("forbidden", status=403, code="Forbidden", operation=operation)

    calls = Calls(Refusing())
    with pytest.raises(Failure) as failed:
        calls.run(KubeRequest(CLUSTER, [ORDERS], IDENTITIES), check_mode=True)
    result = failed.value.result
    assert result["msg"].startswith(f"cluster {CLUSTER}: ") and "403 Forbidden: forbidden" in result["msg"]
    assert result["error"]["service"] == "Kubernetes" and result["error"]["status"] == 403


def test_a_missing_controller_fails_the_plan_or_warns_as_asked() -> None:
    missing = {**ORDERS, "controllers": [{"kind": "Deployment", "name": "gone"}]}
    calls = Calls(cluster_with_shop())
    with pytest.raises(Failure) as failed:
        calls.run(KubeRequest(CLUSTER, [missing], IDENTITIES), check_mode=True)
    assert failed.value.result["msg"].startswith(f"1 problem(s) on cluster {CLUSTER}, nothing changed: ")
    planned = calls.run(KubeRequest(CLUSTER, [missing], IDENTITIES, missing_workloads="warn"), check_mode=True)
    assert [row["action"] for row in planned["controllers"]] == ["missing"]
    assert len(calls.warnings) == 1 and "gone" in calls.warnings[0]
