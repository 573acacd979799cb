"""_retry and _azure_errors: one policy, decisions by status and code, Azure's exceptions translated once."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from ansible_collections.workload_identity.aks.plugins.module_utils import _retry as retry
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_errors import azure_call, translate
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, KubeApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import (
    PROGRESS_ENV,
    RetryPolicy,
    call,
    decide,
)
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransportResponse
from azure.core.rest import HttpRequest


def error(status: int | None, code: str | None = None, retry_after: float | None = None) -> AzureApiError:
    return AzureApiError("m", status=status, code=code, retry_after=retry_after)


def test_retry_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(budget=10, base_delay=1, max_delay=30, principal_wait=20, conflict_attempts=4)
    # A throttled call waits what it was asked, jittered up to 1.5x; a jittered wait past the budget gives up.
    monkeypatch.setattr(retry.random, "uniform", lambda low, _high: low)
    assert decide(error(429, retry_after=7), 1, 0, policy) == 7  # never sooner than asked
    monkeypatch.setattr(retry.random, "uniform", lambda _low, high: high)
    assert decide(error(429, retry_after=6), 1, 0, policy) == 9
    assert decide(error(429, retry_after=7), 1, 0, policy) is None  # 10.5 s would overrun the 10 s budget
    monkeypatch.undo()
    assert decide(error(503), 1, 0, policy) == 1 and decide(error(503), 2, 0, policy) == 2
    assert decide(error(503), 3, 7, policy) is None  # 4 more seconds would overrun the budget
    assert decide(error(None, "ConnectionError"), 1, 0, policy) == 1
    assert decide(error(400, "BadRequest"), 1, 0, policy) is None
    assert decide(error(409, "RoleAssignmentExists"), 1, 0, policy) is None
    assert decide(error(400, "PrincipalNotFound"), 9, 10, policy) == 5
    assert decide(error(400, "PrincipalNotFound"), 9, 18, policy) == 2
    assert decide(error(400, "PrincipalNotFound"), 9, 20, policy) is None
    fic_conflict = error(409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity")
    delay = decide(fic_conflict, 2, 0, policy)
    assert delay is not None and 0.75 <= delay <= 1.5
    assert decide(fic_conflict, 4, 0, policy) is None


def sdk_error(status: int, body: str, headers: dict[str, str] | None = None) -> HttpResponseError:
    """A real azure-core HttpResponseError around a real HTTP response."""
    raw = requests.Response()
    raw.status_code = status
    raw._content = body.encode()
    raw.headers.update({"Content-Type": "application/json", **(headers or {})})
    response = RequestsTransportResponse(HttpRequest("GET", "https://management.azure.com/x"), raw)
    return HttpResponseError(response=response)


def test_translate_keeps_status_code_message_request_id() -> None:
    translated = translate(
        sdk_error(
            409,
            '{"error": {"code": "RoleAssignmentExists", "message": "exists"}}',
            {"x-ms-request-id": "rid-1", "Retry-After": "3"},
        ),
        "create",
    )
    assert translated is not None and auth_ok(translated)
    assert (translated.status, translated.code, translated.message) == (409, "RoleAssignmentExists", "exists")
    assert translated.request_id == "rid-1" and translated.retry_after == 3
    assert str(translated) == "create: 409 RoleAssignmentExists: exists (x-ms-request-id rid-1)"
    auth = translate(ClientAuthenticationError(message="AADSTS7000215: Invalid client secret provided."), "token")
    assert auth is not None and (auth.status, auth.code) == (401, "AADSTS7000215")
    # Entra throttling or failing while signing in is what it is (retried), not a credential problem.
    for text, status, code in (
        ("Authentication failed: HTTP Error: 500", 500, "EntraUnavailable"),
        ("ClientSecretCredential.get_token failed: 429 Too Many Requests", 429, "EntraThrottled"),
    ):
        busy = translate(ClientAuthenticationError(message=text), "token")
        assert busy is not None and (busy.status, busy.code) == (status, code)
    refused = translate(ClientAuthenticationError(message="Authentication failed: HTTP Error: 400"), "token")
    assert refused is not None and (refused.status, refused.code) == (401, "AuthenticationFailed")
    connection = translate(ServiceRequestError("boom"), "get")
    assert connection is not None and connection.code == "ConnectionError"
    assert translate(KeyError("x"), "get") is None  # not Azure's: a bug, left to raise


def test_call_retries_then_raises_the_translated_error() -> None:
    sleeps: list[float] = []
    attempts = iter(
        [sdk_error(429, '{"error": {"code": "TooManyRequests", "message": "slow"}}', {"Retry-After": "2"}), None]
    )

    def flaky() -> str:
        failure = next(attempts)
        if failure is not None:
            raise failure
        return "ok"

    assert azure_call("op", flaky, RetryPolicy(), sleep=sleeps.append) == "ok"
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] <= 3.0  # at least the Retry-After, jittered
    forbidden = sdk_error(403, '{"error": {"code": "AuthorizationFailed", "message": "no"}}')

    def denied() -> str:
        raise forbidden

    with pytest.raises(AzureApiError) as raised:
        azure_call("op", denied, sleep=sleeps.append)
    assert raised.value.code == "AuthorizationFailed" and len(sleeps) == 1  # not retried

    def buggy() -> str:
        raise KeyError("a bug, not an Azure failure")

    with pytest.raises(KeyError):
        azure_call("op", buggy, sleep=sleeps.append)


def auth_ok(error: AzureApiError) -> bool:
    return isinstance(error, AzureApiError)


def test_kubernetes_conflicts_are_retried_but_not_azure_ones_of_the_same_name() -> None:
    policy = RetryPolicy(conflict_attempts=3)
    conflict = KubeApiError("the object has been modified", status=409, code="Conflict")
    delay = decide(conflict, 1, 0, policy)
    assert delay is not None and 0.5 <= delay <= 1.0
    assert decide(conflict, 3, 0, policy) is None
    assert decide(KubeApiError("exists", status=409, code="AlreadyExists"), 1, 0, policy) is None
    assert decide(AzureApiError("busy", status=409, code="Conflict"), 1, 0, policy) is None
    throttled = decide(KubeApiError("slow down", status=429, code="TooManyRequests", retry_after=4), 1, 0, policy)
    assert throttled is not None and 4 <= throttled <= 6


def test_call_leaves_unrecognised_exceptions_alone() -> None:
    def never(_exc: BaseException, _operation: str) -> None:
        return None

    def buggy() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError):
        call("op", buggy, never, sleep=lambda _s: None)


def test_replication_lag_is_waited_out_for_a_bounded_time() -> None:
    policy = RetryPolicy(principal_wait=20)
    lag = AzureApiError("does not reference a valid application object", status=400, code="Request_BadRequest")
    assert decide(lag, 1, 0, policy) is None  # plain bad input is not retried ...
    lag.replication = True
    assert decide(lag, 1, 0, policy) == 5 and decide(lag, 9, 20, policy) is None  # ... replication is, bounded


def test_throttling_is_waited_out_within_a_time_budget_not_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: low)
    policy = RetryPolicy(budget=300)
    throttled = AzureApiError("slow down", status=429, code="TooManyRequests", retry_after=10)
    assert decide(throttled, 25, 40, policy) == 40  # attempt 25: still inside the budget
    assert decide(throttled, 2, 285, policy) is None  # 20 more seconds would overrun it


def test_a_call_throttled_again_waits_longer_each_time_up_to_four_times_what_is_asked() -> None:
    """Many callers sharing one bucket: retried at once, they would spend its refill on 429s; stretched and jittered,
    their retries spread. Never sooner than the server asks."""
    policy = RetryPolicy(budget=10_000)
    throttled = AzureApiError("slow down", status=429, code="TooManyRequests", retry_after=1)
    for attempt, (low, high) in enumerate([(1, 1.5), (2, 3), (4, 6), (4, 6), (4, 6)], 1):
        delays = [decide(throttled, attempt, 0, policy) for _caller in range(50)]
        assert all(d is not None and low <= d <= high for d in delays), (attempt, delays)
        assert len(set(delays)) > 1  # jittered: callers told the same moment do not come back together
    unavailable = AzureApiError("busy", status=503, code="ServiceUnavailable", retry_after=3)
    assert decide(unavailable, 3, 0, policy) == 3  # a 503's Retry-After is the server's own estimate: kept as is
    reset = AzureApiError("connection reset", code="ConnectionError")
    assert decide(reset, 30, 0, policy) == policy.max_delay  # backs off to the cap, never gives up by count


def test_a_call_still_retried_says_so_every_15_seconds_where_the_action_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    progress = tmp_path / "progress"
    monkeypatch.setenv(PROGRESS_ENV, str(progress))
    now = [0.0]

    def throttled() -> None:
        raise AzureApiError("slow down", status=429, code="TooManyRequests", retry_after=10)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(AzureApiError, match=r"gave up after 7 attempts in 60 s"):
        policy = RetryPolicy(budget=65, throttle_backoff=1.0)
        monkeypatch.setattr(retry.random, "uniform", lambda low, high: low)
        call("list identities", throttled, lambda exc, op: exc, policy, sleep, lambda: now[0])
    # Attempts at 0, 10, ..., 60 s: a line once 15 s have passed since the last (at 20 and 40 s), none after the last.
    line = (
        "still retrying list identities: TooManyRequests (attempt {}, {} s so far of the 65 s retry budget; "
        "next in 10 s)"
    )
    assert progress.read_text().splitlines() == [line.format(3, 20), line.format(5, 40)]


def test_without_the_action_a_retried_call_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    now = [0.0]
    outcomes = iter([AzureApiError("x", status=503), AzureApiError("x", status=503)])

    def flaky() -> str:
        error = next(outcomes, None)
        if error:
            raise error
        return "ok"

    assert call("read", flaky, lambda exc, op: exc, RetryPolicy(base_delay=20), lambda s: None, lambda: now[0]) == "ok"
