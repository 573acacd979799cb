"""_azure_arm_rest: ARM requests through an SDK client's pipeline, and long-running writes waited for as ARM answers
them (Cosmos DB's SQL role assignments): polled until they end, a failed operation an error with ARM's words, and a
budget that bounds the wait. The pipeline is a fake that answers as ARM does; the sandbox answers for real in
tests/integration/modules/test_cosmos_roles.py."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_arm_rest import ArmRestClient
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import RetryPolicy

from .fakes import ArmAnswer

STATUS = "https://management.azure.com/subscriptions/s/providers/Microsoft.DocumentDB/locations/x/operationsStatus/1"


class Pipeline:
    """Answers each request with the next answer, and records what was asked."""

    def __init__(self, answers: list[ArmAnswer]) -> None:
        self.answers, self.asked = answers, []

    def format_url(self, path: str) -> str:
        return "https://management.azure.com" + path

    def send_request(self, request: Any) -> ArmAnswer:
        self.asked.append((request.method, request.url))
        return self.answers.pop(0)


def client(answers: list[ArmAnswer], budget: float = 60.0) -> tuple[ArmRestClient, Pipeline, list[float]]:
    pipeline = Pipeline(answers)
    slept: list[float] = []
    sdk = type("Sdk", (), {"_client": pipeline})()
    return ArmRestClient(sdk, "2024-11-15", RetryPolicy(budget=budget), sleep=slept.append), pipeline, slept


def test_a_long_running_write_is_polled_until_it_succeeds_waiting_as_arm_asks() -> None:
    accepted = ArmAnswer(202, None, {"Azure-AsyncOperation": STATUS, "Retry-After": "2"})
    rest, pipeline, slept = client(
        [accepted, ArmAnswer(200, {"status": "InProgress"}), ArmAnswer(200, {"status": "Succeeded"})]
    )
    assert rest.send("PUT", "/x/sqlRoleAssignments/a", "assign", {"properties": {}}) == {}
    assert [m for m, _u in pipeline.asked] == ["PUT", "GET", "GET"]
    assert pipeline.asked[0][1].endswith("/x/sqlRoleAssignments/a?api-version=2024-11-15")
    assert pipeline.asked[1][1] == STATUS and slept == [2.0, 2.0]


def test_a_failed_operation_is_an_error_with_arms_words_and_a_stuck_one_ends_at_the_budget() -> None:
    accepted = ArmAnswer(202, None, {"Azure-AsyncOperation": STATUS})
    failed = ArmAnswer(200, {"status": "Failed", "error": {"code": "BadRequest", "message": "The scope is not valid."}})
    rest, _pipeline, _slept = client([accepted, failed])
    with pytest.raises(AzureApiError) as error:
        rest.send("PUT", "/x/sqlRoleAssignments/a", "assign SQL role", {})
    assert error.value.code == "BadRequest" and "The scope is not valid." in str(error.value)

    rest, _pipeline, _slept = client([accepted] + [ArmAnswer(200, {"status": "InProgress"})] * 3, budget=0.0)
    with pytest.raises(AzureApiError) as stuck:
        rest.send("PUT", "/x/sqlRoleAssignments/a", "assign SQL role", {})
    assert stuck.value.code == "OperationTimedOut"


def test_a_list_follows_its_next_links_and_a_read_is_not_polled() -> None:
    rest, pipeline, slept = client(
        [
            ArmAnswer(200, {"value": [{"id": "a"}], "nextLink": "https://m/next"}),
            ArmAnswer(200, {"value": [{"id": "b"}]}),
        ]
    )
    assert [item["id"] for item in rest.pages("/x/list", "list")] == ["a", "b"]
    assert pipeline.asked[1] == ("GET", "https://m/next") and slept == []
