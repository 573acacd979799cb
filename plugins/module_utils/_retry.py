# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the one retry policy, for Azure and Kubernetes.

The clients are built with their own retries off (the Azure SDKs' ``retry_total=0``, the
Kubernetes client's ``retries=False``) so that every decision is made here, once: throttling and
transient server errors with ``Retry-After`` honoured, conflicts that only mean "another writer got
there first" (concurrent federated-credential writes on one identity, a Kubernetes optimistic-
concurrency ``Conflict``) with jittered back-off, and a principal not yet replicated
(``PrincipalNotFound``) for a bounded time.

Which exceptions are API failures is decided by the caller's ``translate`` (``_azure_errors`` or
``_kube_client``): anything it does not recognise is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from ._errors import ApiError

T = TypeVar("T")
Translate: TypeAlias = "Callable[[BaseException, str], ApiError | None]"

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CONNECTION_ERROR = "ConnectionError"
PRINCIPAL_NOT_FOUND = "PrincipalNotFound"
# A 500 from the API server because an admission webhook could not be called: it stays so until the webhook is fixed.
WEBHOOK_FAILED = "WebhookFailed"


DEFAULT_BUDGET = 300.0
# Where a call still being retried says so while the module runs (a module answers only when it ends): the
# collection's action plugins set it for modules that run on the controller, read it, and print each line.
PROGRESS_ENV = "WORKLOAD_IDENTITY_PROGRESS_FILE"
PROGRESS_EVERY = 15.0  # seconds a call is retried before its first progress line, and between two


@dataclass(frozen=True)
class RetryPolicy:
    # Seconds a call may spend waiting out throttling, transient and connection errors, however many attempts that
    # takes: sustained throttling is waited out for as long as the operator allows, not a fixed count of tries.
    budget: float = DEFAULT_BUDGET
    base_delay: float = 1.0
    max_delay: float = 30.0
    principal_wait: float = 120.0  # total seconds to wait for a new principal to replicate
    conflict_attempts: int = 10  # for conflicts another writer caused
    throttle_backoff: float = 4.0  # the most a 429's Retry-After is stretched by, as one call is throttled again


def decide(error: ApiError, attempt: int, elapsed: float, policy: RetryPolicy) -> float | None:
    """Seconds to wait before the next attempt, or None to give up. ``attempt`` counts from 1."""
    if error.code == PRINCIPAL_NOT_FOUND or error.replication:
        if elapsed >= policy.principal_wait:
            return None
        return min(5.0, policy.principal_wait - elapsed)
    if error.status == 409 and error.code in error.retriable_conflicts:
        if attempt >= policy.conflict_attempts:
            return None
        # Another write on the same object is in flight: back off with jitter so writers interleave.
        return min(policy.max_delay, policy.base_delay * (1.5 ** (attempt - 1))) * random.uniform(0.5, 1.0)
    transient = (error.status in TRANSIENT_STATUS and error.code != WEBHOOK_FAILED) or error.code == CONNECTION_ERROR
    if not transient:
        return None
    if error.retry_after is not None:
        delay = float(min(max(error.retry_after, 0.0), policy.max_delay * 2))
        if error.status == 429:
            # Throttled: every caller sharing the bucket (the forks and workers of a fleet's run, per subscription and
            # principal) was told about the same moment, and retrying all at once spends the bucket's refill on more
            # 429s. Each retry of one call waits longer (up to throttle_backoff times what the server asks), jittered:
            # never sooner than asked, and the retries spread out.
            delay *= min(2.0 ** (attempt - 1), policy.throttle_backoff) * random.uniform(1.0, 1.5)
    else:
        delay = min(policy.max_delay, policy.base_delay * float(2 ** min(attempt - 1, 16)))
    return delay if elapsed + delay <= policy.budget else None


def call(
    operation: str,
    fn: Callable[[], T],
    translate: Translate,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn`` under the policy; every API failure leaves as the ApiError ``translate`` made of it."""
    policy = policy or RetryPolicy()
    started = clock()
    attempt = 0
    reported = 0.0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            error = translate(exc, operation)
            if error is None:
                raise  # a bug is not an API failure: keep its traceback
            elapsed = clock() - started
            delay = decide(error, attempt, elapsed, policy)
            if delay is None:
                if attempt > 1:
                    # How long it was tried, and under what bound: the operator sees it was not given up at once.
                    error.message += (
                        f" (gave up after {attempt} attempts in {elapsed:.0f} s; "
                        f"the retry budget is {policy.budget:.0f} s, retry_budget)"
                    )
                raise error from exc
            if elapsed >= reported + PROGRESS_EVERY:
                reported = elapsed
                replicating = error.code == PRINCIPAL_NOT_FOUND or error.replication
                bound = (
                    f"{policy.principal_wait:.0f} s replication wait"
                    if replicating
                    else f"{policy.budget:.0f} s retry budget"
                )
                progress(
                    f"still retrying {operation}: {error.code or error.status} (attempt {attempt}, {elapsed:.0f} s "
                    f"so far of the {bound}; next in {delay:.0f} s)"
                )
            sleep(delay)


def progress(line: str) -> None:
    """One line of progress where the action plugin reads it; nowhere when no plugin asked (a module run by hand)."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line.replace("\n", " ") + "\n")
    except OSError:
        pass  # progress is a courtesy: the call's own outcome is what the run reports
