# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): ARM requests the SDKs this collection requires do not cover.

Key Vault's ``accessPolicies`` operations and Cosmos DB's SQL role definitions and assignments are a handful of REST
calls; rather than require two more SDKs for them, they go through an ARM SDK client's own pipeline (its credential,
retry, user agent and proxy settings), under the collection's retry policy. Cosmos DB's writes are long-running: the
``Azure-AsyncOperation`` they answer with is polled until it ends, as the SDK's poller would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ._azure_errors import azure_call, retry_after
from ._errors import AzureApiError
from ._retry import RetryPolicy

_DONE = {"succeeded", "failed", "canceled", "cancelled"}


class ArmRestClient:
    """Requests to ARM at one api-version, through an SDK client's pipeline."""

    def __init__(
        self,
        client: Any,
        api_version: str,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.policy = policy or RetryPolicy()
        self.sleep = sleep

    def send(self, method: str, path: str, operation: str, body: Any = None) -> dict[str, Any]:
        """One request (a path, or a full URL such as a ``nextLink``); its JSON body (empty when it has none). A
        long-running write's operation is waited for, and fails as the operation does."""
        found, status_url, wait = self._send(method, path, operation, body)
        if status_url:
            self._wait(status_url, operation, wait or 1.0)
        return found

    def start(self, method: str, path: str, operation: str, body: Any = None) -> tuple[dict[str, Any], float | None]:
        """A long-running write, sent (retried only until it is accepted) and not waited for: its JSON body, and the
        seconds the service asked to wait between polls (its Retry-After), if it said. The caller follows it."""
        found, _status_url, wait = self._send(method, path, operation, body)
        return found, wait

    def _send(
        self, method: str, path: str, operation: str, body: Any
    ) -> tuple[dict[str, Any], str | None, float | None]:
        from azure.core.rest import HttpRequest

        pipeline = self.client._client  # pylint: disable=protected-access
        joiner = "&" if "?" in path else "?"
        url = pipeline.format_url(f"{path}{joiner}api-version={self.api_version}") if path.startswith("/") else path

        def send() -> tuple[dict[str, Any], str | None, float | None]:
            response = pipeline.send_request(HttpRequest(method, url, json=body))
            response.raise_for_status()
            found = dict(response.json()) if response.content else {}
            status_url = response.headers.get("Azure-AsyncOperation") if response.status_code in (201, 202) else None
            return found, status_url, retry_after(response)

        return azure_call(operation, send, self.policy)

    def _wait(self, status_url: str, operation: str, wait: float) -> None:
        """Poll a long-running operation until it ends, within the retry policy's budget."""
        started = time.monotonic()
        while True:
            self.sleep(min(wait, 10.0))
            status = self.send("GET", status_url, operation)
            state = str(status.get("status") or "").lower()
            if state == "succeeded":
                return
            if state in _DONE:
                error = status.get("error") or {}
                raise AzureApiError(
                    str(error.get("message") or f"the operation ended {status.get('status')}"),
                    code=str(error.get("code") or status.get("status")),
                    operation=operation,
                )
            if time.monotonic() - started > self.policy.budget:
                raise AzureApiError(
                    f"still {status.get('status') or 'running'} after {self.policy.budget:.0f} s",
                    code="OperationTimedOut",
                    operation=operation,
                )

    def pages(self, path: str, operation: str) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``nextLink``."""
        page: dict[str, Any] | None = self.send("GET", path, operation)
        while page is not None:
            yield from page.get("value") or []
            link = page.get("nextLink")
            page = self.send("GET", link, operation) if link else None

    def get_or_none(self, path: str, operation: str) -> dict[str, Any] | None:
        """The resource; None when it does not exist."""
        try:
            return self.send("GET", path, operation)
        except AzureApiError as exc:
            if exc.status == 404:
                return None
            raise
