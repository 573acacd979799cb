# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): a small Microsoft Graph client.

Built on azure-core's pipeline with the credential the other modules use (no Graph SDK: a module's
start stays what ``make bench`` shows), its retries off so that ``_retry`` decides, and Graph's
OData errors translated once into :class:`AzureApiError`: a 403 names the permission to grant.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ._azure_errors import azure_call
from ._errors import AzureApiError
from ._retry import RetryPolicy

# The application permissions (app roles) this collection can work with, least privileged first.
OWNED_BY = "Application.ReadWrite.OwnedBy"
WRITE_ALL = ("Application.ReadWrite.All", "Directory.ReadWrite.All")
PERMISSION_HINT = (
    "the automation principal needs the Microsoft Graph application permission "
    f"{OWNED_BY} (enough for applications it creates) or Application.ReadWrite.All, with admin consent"
)
UPSERT = {"Prefer": "create-if-missing"}


def quote(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


class GraphClient:
    """``request`` returns (status, JSON body or None); every failure leaves as AzureApiError."""

    def __init__(
        self, credential: Any, endpoint: str, ca_bundle: str | None, user_agent: str, policy: RetryPolicy
    ) -> None:
        from azure.core import PipelineClient
        from azure.core.pipeline import policies

        self.endpoint = endpoint.rstrip("/")
        self.scope = f"{self.endpoint}/.default"
        self.credential = credential
        self.policy = policy
        self.requests = 0
        self._verify: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
        self._client: Any = PipelineClient(
            base_url=self.endpoint,
            policies=[
                policies.HeadersPolicy(),
                policies.UserAgentPolicy(user_agent),
                policies.BearerTokenCredentialPolicy(credential, self.scope),
            ],
        )

    def granted_roles(self) -> list[str]:
        """The Graph application permissions in this credential's token (read from it, no request)."""
        token = azure_call("get a Microsoft Graph token", lambda: self.credential.get_token(self.scope), self.policy)
        try:
            payload = token.token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return []
        return [str(r) for r in claims.get("roles") or []]

    def request(
        self, method: str, path: str, operation: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        def send() -> tuple[int, Any]:
            from azure.core.rest import HttpRequest

            self.requests += 1
            request = HttpRequest(method, f"{self.endpoint}/v1.0{path}", json=body, headers=headers or {})
            response = self._client.send_request(request, **self._verify)
            if response.status_code >= 400:
                raise _error(response, operation)
            return response.status_code, response.json() if response.content else None

        return azure_call(operation, send, self.policy)

    def get(self, path: str, operation: str) -> dict[str, Any] | None:
        """The object, or None on 404."""
        try:
            body = self.request("GET", path, operation)[1]
            return dict(body) if body is not None else None
        except AzureApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, operation: str) -> list[Any]:
        """Every page of a collection, following @odata.nextLink."""
        items: list[Any] = []
        _status, body = self.request("GET", path, operation)
        while True:
            items.extend(body.get("value") or [])
            link = body.get("@odata.nextLink")
            if not link:
                return items
            _status, body = self.request("GET", link.split("/v1.0", 1)[1], operation)


def _error(response: Any, operation: str) -> AzureApiError:
    try:
        detail = response.json().get("error") or {}
    except (ValueError, AttributeError):
        detail = {}
    code = detail.get("code") or str(response.status_code)
    message = detail.get("message") or response.text()
    if response.status_code == 403:
        message = f"{message} ({PERMISSION_HINT})"
    retry_after = response.headers.get("Retry-After")
    error = AzureApiError(
        str(message),
        status=response.status_code,
        code=str(code),
        request_id=response.headers.get("request-id"),
        operation=operation,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )
    # A service principal asked for right after its application was made: Graph has not replicated the
    # application yet. Waited out (bounded) by the retry policy, not reported as bad input.
    error.replication = response.status_code == 400 and "does not reference a valid application object" in message
    return error
