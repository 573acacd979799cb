# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): one error type for every Azure failure.

Every call to Azure goes through :func:`translate`, so modules handle one exception carrying the
HTTP status, the ARM (or AADSTS) error code, the message and the request id a support ticket needs.
"""

from __future__ import annotations

import re
from typing import Any


class AzureApiError(Exception):
    """A failed Azure call, translated once from whatever the SDK raised."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        operation: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.operation = operation
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        status = f"{self.status} " if self.status else ""
        code = f"{self.code}: " if self.code else ""
        request = f" (x-ms-request-id {self.request_id})" if self.request_id else ""
        return f"{where}{status}{code}{self.message}{request}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
            "operation": self.operation,
        }


class ValidationError(Exception):
    """Bad input, found before anything was sent. ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_AADSTS = re.compile(r"AADSTS(\d+)")


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    return str(value) if value is not None else None


def translate(exc: BaseException, operation: str) -> AzureApiError:
    """Turn an azure-core / azure-identity exception into an AzureApiError."""
    if isinstance(exc, AzureApiError):
        return exc
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        # Raised by azure-identity before any ARM call: a credential problem, not an HTTP status.
        text = str(exc.message if hasattr(exc, "message") else exc)
        match = _AADSTS.search(text)
        return AzureApiError(
            _first_line(text),
            status=401,
            code=f"AADSTS{match.group(1)}" if match else "AuthenticationFailed",
            operation=operation,
        )
    if isinstance(exc, HttpResponseError):
        response = exc.response
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
        message = getattr(error, "message", None) or _first_line(str(exc.message or exc))
        retry_after = _header(response, "Retry-After")
        return AzureApiError(
            str(message),
            status=exc.status_code,
            code=str(code) if code else None,
            request_id=_header(response, "x-ms-request-id"),
            operation=operation,
            retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
        )
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return AzureApiError(
            f"could not reach Azure: {_first_line(str(exc))}", code="ConnectionError", operation=operation
        )
    return AzureApiError(_first_line(str(exc)) or type(exc).__name__, code=type(exc).__name__, operation=operation)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
