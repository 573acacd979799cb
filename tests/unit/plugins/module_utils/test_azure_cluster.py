"""_azure_cluster: the issuer update is sent once, waits out a busy cluster, re-polls failed polls, reports failure."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_cluster import (
    API_VERSION,
    ClusterApi,
    ClusterNotFound,
    ensure_issuer,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import RetryPolicy
from azure.core.exceptions import HttpResponseError

from .fakes import ArmAnswer

CLUSTER = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks"


class FakeClusters:
    """An ARM client's pipeline, answering for one cluster as AKS does: a PUT starts an operation that reads as
    Updating for a few polls (and answers 201 with the operation's status URL, which the engine does not poll)."""

    def __init__(self, state: str = "Succeeded", polls_per_operation: int = 2) -> None:
        self.body = {
            "id": CLUSTER,
            "name": "aks",
            "properties": {"provisioningState": state, "kubernetesVersion": "1.36.3", "oidcIssuerProfile": {}},
        }
        self.busy_polls = 0 if state == "Succeeded" else polls_per_operation
        self.polls_per_operation = polls_per_operation
        self.sent: list[dict[str, Any]] = []
        self.put_errors: list[Exception] = []
        self.get_errors: list[Exception] = []
        self.after_put: list[Exception] = []  # get errors armed once an update is accepted
        self.outcome = "Succeeded"
        self.retry_after: str | None = None  # what AKS says when it accepts an update
        self.urls: list[str] = []

    def format_url(self, path: str) -> str:
        return "https://management.azure.com" + path

    def send_request(self, request: Any) -> ArmAnswer:
        self.urls.append(request.url)
        assert request.url == self.format_url(f"{CLUSTER}?api-version={API_VERSION}")
        if request.method == "GET":
            if self.get_errors:
                raise self.get_errors.pop(0)
            if self.busy_polls:
                self.busy_polls -= 1
                if not self.busy_polls:
                    self.body["properties"]["provisioningState"] = self.outcome
            return ArmAnswer(200, copy.deepcopy(self.body))
        assert request.method == "PUT"
        if self.put_errors:
            raise self.put_errors.pop(0)
        body = json.loads(request.content)
        self.sent.append(copy.deepcopy(body))
        self.body = copy.deepcopy(body)
        self.body["properties"]["provisioningState"] = "Updating"
        self.busy_polls = self.polls_per_operation
        self.get_errors, self.after_put = self.after_put, []
        headers = {"Azure-AsyncOperation": "https://management.azure.com/operations/1"}
        headers.update({"Retry-After": self.retry_after} if self.retry_after is not None else {})
        return ArmAnswer(201, copy.deepcopy(self.body), headers)


def api_over(clusters: FakeClusters) -> tuple[ClusterApi, list[float]]:
    sleeps: list[float] = []
    client = type("Client", (), {"_client": clusters})()
    return ClusterApi(client, "s", RetryPolicy(base_delay=0), polling_interval=2, sleep=sleeps.append), sleeps


def http_error(status: int, code: str) -> HttpResponseError:
    error = HttpResponseError(message=code)
    error.status_code = status
    error.error = type("E", (), {"code": code, "message": code})()  # type: ignore[assignment]
    return error


def enable(api: ClusterApi) -> Any:
    return ensure_issuer(api, "rg", "aks", oidc_issuer=True, workload_identity=None, check_mode=False)


def test_a_busy_cluster_is_waited_for_then_updated_once() -> None:
    clusters = FakeClusters(state="Upgrading", polls_per_operation=3)
    api, sleeps = api_over(clusters)
    done = enable(api)
    assert done.action == "updated" and done.after and done.after["oidc_issuer_enabled"]
    assert len(clusters.sent) == 1 and sleeps == [2, 2, 2]  # one for the upgrade, two for the update


def test_another_operation_started_in_between_is_waited_for_and_the_change_made_on_a_fresh_read() -> None:
    clusters = FakeClusters()
    clusters.put_errors = [http_error(409, "OperationNotAllowed")]
    api, _sleeps = api_over(clusters)
    enable(api)
    assert len(clusters.sent) == 1 and clusters.sent[0]["properties"]["oidcIssuerProfile"] == {"enabled": True}


def test_a_failed_poll_is_polled_again_never_re_sent() -> None:
    clusters = FakeClusters()
    clusters.after_put = [http_error(500, "InternalServerError")]
    api, _sleeps = api_over(clusters)
    assert enable(api).changed and len(clusters.sent) == 1


def test_an_operation_that_failed_on_the_server_is_reported_with_the_provisioning_state() -> None:
    clusters = FakeClusters()
    clusters.outcome = "Failed"
    api, _sleeps = api_over(clusters)
    with pytest.raises(AzureApiError, match="ended Failed") as failed:
        enable(api)
    assert failed.value.code == "OperationFailed" and len(clusters.sent) == 1


def test_check_mode_says_it_will_wait_for_a_busy_cluster() -> None:
    api, _sleeps = api_over(FakeClusters(state="Updating"))
    plan = ensure_issuer(api, "rg", "aks", oidc_issuer=True, workload_identity=None, check_mode=True)
    assert plan.changed and "the run waits for that operation first" in plan.notes[-1]


def test_a_failed_cluster_is_reconciled_by_sending_the_update_again_then_left_alone() -> None:
    clusters = FakeClusters(state="Failed")
    clusters.busy_polls = 0  # Failed is where the last operation ended, not one still running
    clusters.body["properties"]["oidcIssuerProfile"] = {"enabled": True}  # asked for, not carried out
    api, _sleeps = api_over(clusters)
    plan = ensure_issuer(api, "rg", "aks", oidc_issuer=True, workload_identity=None, check_mode=True)
    assert plan.changed and "sent again to reconcile" in plan.notes[-1] and clusters.sent == []
    done = enable(api)
    assert done.changed and done.after and done.after["provisioning_state"] == "Succeeded"
    assert len(clusters.sent) == 1 and not enable(api).changed


def test_the_wait_follows_the_retry_after_aks_gives_when_it_accepts_the_update() -> None:
    for said, waits in (("1", [1.0]), ("0.5", [0.5]), (None, [2]), ("0", [2]), ("soon", [2])):
        clusters = FakeClusters()
        clusters.retry_after = said
        api, sleeps = api_over(clusters)
        ensure_issuer(api, "rg", "aks", oidc_issuer=True, workload_identity=None, check_mode=False)
        assert sleeps == waits, said


def test_a_cluster_arm_does_not_know_is_not_found_naming_it_and_its_group() -> None:
    clusters = FakeClusters()
    clusters.get_errors = [http_error(404, "ResourceNotFound")]
    api, _sleeps = api_over(clusters)
    with pytest.raises(ClusterNotFound, match="no AKS cluster aks in resource group rg"):
        enable(api)
    assert clusters.sent == [] and len(clusters.urls) == 1  # read once, at the SDK's api-version; nothing sent
