# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the one retry policy for Azure calls.

The SDK clients are built with their own retries off (``retry_total=0``) so that every decision is
made here, once: throttling and transient server errors with ``Retry-After`` honoured, and the
Azure-specific cases: a principal not yet replicated (``PrincipalNotFound``, for a bounded time)
and concurrent federated-credential writes on one identity (409).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ._errors import AzureApiError, translate

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CONCURRENT_FIC_WRITE = "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"
PRINCIPAL_NOT_FOUND = "PrincipalNotFound"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # for throttling, transient and connection errors
    base_delay: float = 1.0
    max_delay: float = 30.0
    principal_wait: float = 120.0  # total seconds to wait for a new principal to replicate
    fic_attempts: int = 10


def decide(error: AzureApiError, attempt: int, elapsed: float, policy: RetryPolicy) -> float | None:
    """Seconds to wait before the next attempt, or None to give up. ``attempt`` counts from 1."""
    if error.code == PRINCIPAL_NOT_FOUND:
        if elapsed >= policy.principal_wait:
            return None
        return min(5.0, policy.principal_wait - elapsed)
    if error.status == 409 and error.code == CONCURRENT_FIC_WRITE:
        if attempt >= policy.fic_attempts:
            return None
        # Another write on the same identity is in flight: back off with jitter so writers interleave.
        return min(policy.max_delay, policy.base_delay * (1.5 ** (attempt - 1))) * random.uniform(0.5, 1.0)
    transient = error.status in TRANSIENT_STATUS or error.code == "ConnectionError"
    if not transient or attempt >= policy.attempts:
        return None
    if error.retry_after is not None:
        return min(max(error.retry_after, 0.0), policy.max_delay * 2)
    return min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))


def is_azure_error(exc: BaseException) -> bool:
    """What Azure (or azure-core, or azure-identity) raised, as opposed to a bug in our own code."""
    from azure.core.exceptions import AzureError

    return isinstance(exc, (AzureError, AzureApiError))


def call(
    operation: str,
    fn: Callable[[], T],
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn`` under the policy; every failure leaves as an AzureApiError."""
    policy = policy or RetryPolicy()
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not is_azure_error(exc):
                raise  # a bug is not an Azure failure: keep its traceback
            error = translate(exc, operation)
            delay = decide(error, attempt, clock() - started, policy)
            if delay is None:
                raise error from exc
            sleep(delay)
