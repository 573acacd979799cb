# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): Azure failures, translated once.

Every call to Azure goes through :func:`azure_call`: the shared retry policy decides, and whatever
azure-core or azure-identity raised leaves as one :class:`AzureApiError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import AzureApiError
from ._retry import TRANSIENT_STATUS, RetryPolicy, call

T = TypeVar("T")
# How to give the collection a credential, for whoever has none set (the first thing a new user meets).
NO_CREDENTIAL_HINT = (
    "Set AZURE_CLIENT_ID, AZURE_SECRET (or AZURE_CLIENT_SECRET) and AZURE_TENANT (or AZURE_TENANT_ID) for a service "
    "principal (AWX's Azure Resource Manager credential injects them), or AZURE_FEDERATED_TOKEN_FILE with "
    "AZURE_CLIENT_ID and AZURE_TENANT_ID for workload identity; or choose auth_source (env, workload_identity, msi, "
    "cli): msi where a managed identity is attached, cli after `az login`"
)
_AADSTS = re.compile(r"AADSTS(\d+)")
_ENTRA_STATUS = re.compile(
    r"(?:HTTP Error:?|[Ss]tatus code:?)\s*(\d{3})"
    r"|\b(\d{3}) (?:Too Many|Internal Server|Bad Gateway|Service Unavailable)"
)


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    return str(value) if value is not None else None


def retry_after(response: Any) -> float | None:
    """The seconds an ARM answer's Retry-After asks for (whole or decimal), when it says."""
    value = _header(response, "Retry-After")
    return float(value) if value and value.replace(".", "", 1).isdigit() else None


def translate(exc: BaseException, operation: str) -> AzureApiError | None:
    """An azure-core / azure-identity exception as an AzureApiError; None for anything else (a bug)."""
    if isinstance(exc, AzureApiError):
        return exc
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if not isinstance(exc, AzureError):
        return None
    if type(exc).__name__ == "CredentialUnavailableError":
        # azure-identity found no credential to try (the CLI fallback with no `az`, or not signed in): no request
        # reached Entra, so no status; what to set instead.
        return AzureApiError(
            f"no Azure credential to sign in with ({_first_line(str(exc))}). {NO_CREDENTIAL_HINT}",
            code="CredentialUnavailable",
            operation=operation,
        )
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        # Raised by azure-identity before any ARM call: a credential problem, or Entra throttling or failing (its
        # token endpoint or its metadata), which azure-identity reports the same way, with the HTTP status in the
        # text: that is retried like any other 429 or 5xx, and reported as what it is.
        text = str(exc.message if hasattr(exc, "message") else exc)
        status = _ENTRA_STATUS.search(text)
        entra_status = int(status.group(1) or status.group(2)) if status else 0
        if entra_status in TRANSIENT_STATUS:
            return AzureApiError(
                f"Entra ID answered {entra_status} while signing in: {_first_line(text)}",
                status=entra_status,
                code="EntraThrottled" if entra_status == 429 else "EntraUnavailable",
                operation=operation,
            )
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
        return AzureApiError(
            str(message),
            status=exc.status_code,
            code=str(code) if code else None,
            request_id=_header(response, "x-ms-request-id"),
            operation=operation,
            retry_after=retry_after(response),
        )
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return AzureApiError(
            f"could not reach Azure: {_first_line(str(exc))}", code="ConnectionError", operation=operation
        )
    return AzureApiError(_first_line(str(exc)) or type(exc).__name__, code=type(exc).__name__, operation=operation)


def azure_call(
    operation: str,
    fn: Callable[[], T],
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """One Azure call under the shared retry policy; failures leave as AzureApiError."""
    return call(operation, fn, translate, policy, sleep=sleep)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
