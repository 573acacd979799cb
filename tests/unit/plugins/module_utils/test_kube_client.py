"""_kube_client: which cluster and which credentials, errors translated naming the object, the shared retries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import KubeApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_client import (
    KubeClient,
    KubeConnection,
    translate,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import RetryPolicy
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError


@pytest.fixture(autouse=True)
def no_home_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent-home-for-tests")


def test_a_named_context_is_never_mixed_with_an_injected_host_and_token() -> None:
    both = KubeConnection({"context": "aks-prod", "host": "https://aks-dev:443", "api_key": "dev-token"}, {})
    assert (both.source, both.host, both.api_key) == ("context", None, None)
    assert "context aks-prod is used as the kubeconfig defines it" in both.warnings[0]
    assert KubeConnection({"host": "https://h", "api_key": "t"}, {}).source == "host"
    assert KubeConnection({"kubeconfig": "/k"}, {}).source == "kubeconfig"
    assert KubeConnection({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).source == "in-cluster"
    with pytest.raises(KubeApiError, match="no kubeconfig, context, host"):
        KubeConnection({}, {}).api_client()


def test_kube_auth_azure_says_it_ignores_an_injected_bearer_token() -> None:
    awx = KubeConnection(
        {"kube_auth": "azure", "aks_cluster": "rg-aks/aks-prod", "host": "https://h:443", "api_key": "sa-token"}, {}
    )
    assert awx.source == "azure" and (awx.host, awx.api_key) == (None, None)
    [warning] = awx.warnings
    assert "kube_auth azure signs in to rg-aks/aks-prod" in warning and "host and api_key" in warning
    assert "sa-token" not in warning
    assert KubeConnection({"kube_auth": "azure", "aks_cluster": "rg-aks/aks-prod"}, {}).warnings == []


def test_a_bearer_token_beside_a_named_context_that_is_missing_says_which_variable_to_unset(tmp_path: Any) -> None:
    """AWX's bearer-token credential with an inventory that names a context per cluster: no kubeconfig has it."""
    awx = KubeConnection({"context": "aks-prod", "host": "https://aks-prod:443", "api_key": "sa-token"}, {})
    with pytest.raises(KubeApiError) as raised:
        awx.api_client()
    message = str(raised.value)
    assert "context aks-prod (workload_identity_kube_context) cannot be loaded" in message
    assert "unset workload_identity_kube_context for this cluster" in message
    assert "sa-token" not in message
    # A kubeconfig without that context: named, and nothing about a bearer token when none was given.
    (tmp_path / "config").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(KubeApiError, match=f"context aks-prod .* cannot be loaded from {tmp_path}/config") as raised:
        KubeConnection({"context": "aks-prod", "kubeconfig": str(tmp_path / "config")}, {}).api_client()
    assert "K8S_AUTH_HOST" not in str(raised.value)


def status(code: int, reason: str, message: str, headers: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=code, reason=reason)
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "message": message})
    exc.headers = headers or {}
    return exc


def test_translation_names_the_operation_and_says_what_went_wrong() -> None:
    denied = translate(
        status(400, "BadRequest", 'admission webhook "policy.example" denied the request: no'), "bound Deployment a/b"
    )
    assert denied is not None and str(denied).startswith(
        "bound Deployment a/b: 400 BadRequest: refused by an admission"
    )
    expired = translate(status(401, "Unauthorized", "Unauthorized", {"Audit-Id": "a1"}), "list service accounts")
    assert expired is not None and "expired or revoked token" in expired.message and expired.request_id == "a1"
    throttled = translate(status(429, "TooManyRequests", "slow down", {"Retry-After": "3"}), "x")
    assert throttled is not None and throttled.retry_after == 3
    unreachable = translate(MaxRetryError(None, "/api", "refused"), "x")  # type: ignore[arg-type]
    assert unreachable is not None and unreachable.code == "ConnectionError"
    assert translate(KeyError("bug"), "x") is None


class Response:
    def __init__(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.status, self.reason, self.body = code, "r", json.dumps(body).encode()
        self.headers = headers or {}

    def read(self) -> bytes:
        return self.body


class ScriptedApiClient:
    """Answers from a script, as the kubernetes ApiClient's newer generator does."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str]] = []
        self.timeouts: list[Any] = []

    def param_serialize(self, method: str, path: str, **kwargs: Any) -> tuple[str, str]:
        return (method, path)

    def call_api(self, method: str, path: str, _request_timeout: Any = None) -> Response:
        self.sent.append((method, path))
        self.timeouts.append(_request_timeout)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Response(*answer)


def test_conflicts_and_throttling_are_retried_then_given_up() -> None:
    conflict = (409, {"kind": "Status", "reason": "Conflict", "message": "the object has been modified"})
    throttled = (429, {"reason": "TooManyRequests", "message": "slow"}, {"Retry-After": "7"})
    api = ScriptedApiClient([conflict, throttled, (200, {"ok": 1})])
    sleeps: list[float] = []
    client = KubeClient(api, RetryPolicy(), sleep=sleeps.append)
    client.patch("/apis/apps/v1/namespaces/a/deployments/b", {"spec": {}}, "bound Deployment a/b")
    assert len(api.sent) == 3 and client.requests == 3
    # The API server's Retry-After, honoured: at least 7 s, stretched as the call's second retry (2x) and jittered.
    assert len(sleeps) == 2 and 14 <= sleeps[1] <= 21
    exists = ScriptedApiClient([(409, {"reason": "AlreadyExists", "message": 'serviceaccounts "x" already exists'})])
    with pytest.raises(KubeApiError) as raised:
        KubeClient(exists, RetryPolicy(), sleep=sleeps.append).create(
            "/api/v1/namespaces/a/serviceaccounts", {}, "created x"
        )
    assert raised.value.code == "AlreadyExists" and len(exists.sent) == 1  # a lost race needs a decision, not a retry
    assert KubeClient(ScriptedApiClient([(404, {"reason": "NotFound"})]), sleep=sleeps.append).get("/x", "read") is None


def test_a_stopped_api_server_is_a_bounded_wait_then_a_failure_saying_so() -> None:
    from urllib3.exceptions import ReadTimeoutError

    hung = ScriptedApiClient([ReadTimeoutError(None, "/api", "Read timed out.") for _attempt in range(10)])
    sleeps: list[float] = []
    with pytest.raises(KubeApiError) as raised:
        KubeClient(hung, RetryPolicy(budget=5), sleep=sleeps.append).get("/api/v1/namespaces/a", "read Namespace a")
    # Every request is bounded (connect, read); the calls are retried under the budget, then given up naming it.
    assert set(hung.timeouts) == {(10, 60)} and len(hung.sent) == 4 and sleeps == [1.0, 2.0, 4.0]
    message = str(raised.value)
    assert message.startswith("read Namespace a: ConnectionError: the API server did not answer within 10 s")
    assert "gave up after 4 attempts in 0 s; the retry budget is 5 s, retry_budget" in message
