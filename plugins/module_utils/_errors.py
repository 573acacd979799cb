# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the collection's error types.

Every failed call, to Azure or to a Kubernetes API server, leaves its client layer as one
:class:`ApiError` (translated once, in ``_azure_errors`` or ``_kube_client``) carrying the HTTP
status, the service's error code, the message and the request id a support ticket needs. Bad input
found before anything was sent is a :class:`ValidationError` listing every problem.
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar


class ApiError(Exception):
    """A failed API call, translated once from whatever the client library raised."""

    service: ClassVar[str] = "API"
    # 409 codes that mean "another writer got there first, try again" rather than "this cannot be done".
    retriable_conflicts: ClassVar[frozenset[str]] = frozenset()

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
        # The directory has not caught up with a write yet (a principal or application just made): worth
        # waiting for, for a bounded time, like PrincipalNotFound.
        self.replication = False

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        status = f"{self.status} " if self.status else ""
        code = f"{self.code}: " if self.code else ""
        request = f" (request id {self.request_id})" if self.request_id else ""
        return f"{where}{status}{code}{self.message}{request}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
            "operation": self.operation,
        }


class AzureApiError(ApiError):
    """A failed call to ARM or Entra ID."""

    service = "Azure"
    retriable_conflicts = frozenset({"ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"})

    def __str__(self) -> str:
        # ARM's header is x-ms-request-id; say so, it is what Azure support asks for.
        return super().__str__().replace("(request id ", "(x-ms-request-id ")


class KubeApiError(ApiError):
    """A failed call to a Kubernetes API server; ``code`` is the Status ``reason`` (NotFound, Conflict, ...)."""

    service = "Kubernetes"
    # An optimistic-concurrency clash (another writer changed the object): re-reading and retrying is safe.
    # AlreadyExists is not here: a create that lost a race needs a decision, not a retry.
    retriable_conflicts = frozenset({"Conflict"})


class DatabaseError(ApiError):
    """A failed sign-in or statement on a database server; ``code`` is its SQLSTATE (or what kept it from answering)."""

    service = "PostgreSQL"


class ValidationError(Exception):
    """Bad input, found before anything was sent. ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def problems_message(problems: list[str], where: str = "") -> str:
    """Every problem in one message, counted and placed (``where``: "in the workloads of <cluster>")."""
    head = f"{len(problems)} problem(s) {where}: " if where else ""
    return head + "; ".join(problems)


def problems_result(problems: list[str], where: str = "") -> dict[str, Any]:
    """A module's failure with every problem found (fail_json's arguments)."""
    return {"msg": problems_message(problems, where), "problems": problems}


def error_result(error: BaseException, where: str = "") -> dict[str, Any]:
    """A module's failure with one error: what failed, status, code, message, request id (fail_json's arguments)."""
    if isinstance(error, ValidationError):
        return problems_result(error.problems, where)
    prefix = f"{where}: " if where else ""
    if isinstance(error, ApiError):
        return {"msg": prefix + str(error), "error": error.to_dict()}
    return {"msg": f"{prefix}{type(error).__name__}: {error}"}


def bug_result(error: BaseException) -> dict[str, Any]:
    """An exception no code path expects (a bug): its type, message and traceback, and where to report it."""
    return {
        "msg": f"unexpected {type(error).__name__}: {error} (a bug in workload_identity.aks: please report it with "
        "this message)",
        "exception": "".join(traceback.format_exception(error)),
    }


class Failure(Exception):
    """A failure already worded as a module's result (``result``: fail_json's arguments), raised where the caller
    decides what a failure does: a module fails with it; a plan of both sides reports one side's beside the other's."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result
