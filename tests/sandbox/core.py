"""Request, response and error types shared by the sandbox's APIs."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Graph's answer to a body it cannot parse (the text kiota's compression handler also recognises).
GRAPH_UNREADABLE_BODY = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
)


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    # Which service answers it (set by the pipeline once routed): a body it cannot read is refused in that
    # service's own error shape.
    service: str = "arm"
    # The public origin the client used (``https://graph.microsoft.com`` through proxy.py), or "" for the
    # sandbox's own URL: what the URLs in the answer are built on.
    origin: str = ""

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        parsed = urllib.parse.urlsplit(target)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        return cls(
            method.upper(), urllib.parse.unquote(parsed.path), query, {k.lower(): v for k, v in headers.items()}, body
        )

    def q(self, name: str) -> str | None:
        """A query parameter, matched case-insensitively as ARM does."""
        low = name.lower()
        for key, value in self.query.items():
            if key.lower() == low:
                return value
        return None

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.unreadable("The request content was invalid and could not be deserialized.") from exc

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            raise self.unreadable("The request content must be a JSON object.")
        return body

    def unreadable(self, arm_message: str) -> Exception:
        """A body that is not the JSON expected: ARM's 400 InvalidRequestContent, or Graph's own 400."""
        if self.service == "graph":
            return GraphError(400, "BadRequest", GRAPH_UNREADABLE_BODY)
        return ApiError(400, "InvalidRequestContent", arm_message)

    def form(self) -> dict[str, str]:
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class ApiError(Exception):
    """An ARM error: ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, {"error": {"code": self.code, "message": self.message}}, dict(self.headers))


class EntraError(Exception):
    """An OAuth2 error as the Entra token endpoint writes it (AADSTS codes)."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{error} AADSTS{aadsts}: {description}")
        self.status, self.error, self.aadsts, self.description = status, error, aadsts, description

    def response(self) -> Response:
        trace = str(uuid.uuid4())
        return Response(
            self.status,
            {
                "error": self.error,
                "error_description": f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace} "
                f"Correlation ID: {uuid.uuid4()} Timestamp: {utc_now_iso()}",
                "error_codes": [self.aadsts],
                "timestamp": utc_now_iso(),
                "trace_id": trace,
                "correlation_id": str(uuid.uuid4()),
                "error_uri": "https://login.microsoftonline.com/error?code=" + str(self.aadsts),
            },
        )


class GraphError(Exception):
    """A Microsoft Graph error: OData ``{"error": {"code", "message", "innerError": {...}}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self, request_id: str = "", client_request_id: str = "") -> Response:
        request_id = request_id or str(uuid.uuid4())
        inner = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": client_request_id or request_id,
        }
        body = {"error": {"code": self.code, "message": self.message, "innerError": inner}}
        return Response(self.status, body, dict(self.headers))


@dataclass
class Caller:
    principal_id: str
    app_id: str
    tenant_id: str
    # Microsoft Graph application permissions (app roles) the token carries in its `roles` claim.
    roles: tuple[str, ...] = ()


@dataclass
class Context:
    request: Request
    caller: Caller | None = None


Handler = Callable[[Context], Response]


@dataclass
class Route:
    """What a request is: its operation name (stats, faults), which service, and its handler."""

    operation: str
    service: str  # arm | graph | entra | oidc | control
    handler: Handler
    subscription: str | None = None


def paged(
    items: list[dict[str, Any]], request: Request, base_url: str, page_size: int, token_param: str = "$skiptoken"
) -> dict[str, Any]:
    """One page of a list plus a nextLink that carries the offset, as ARM pages."""
    top = request.q("$top")
    size = page_size
    if top:
        try:
            size = max(1, min(int(top), 1000))
        except ValueError as exc:
            raise ApiError(400, "InvalidParameter", f"The value '{top}' of $top is not valid.") from exc
    token = request.q(token_param)
    try:
        start = int(token) if token else 0
    except ValueError as exc:
        raise ApiError(400, "InvalidParameter", f"The value '{token}' of {token_param} is not valid.") from exc
    page = items[start : start + size]
    result: dict[str, Any] = {"value": page}
    if start + size < len(items):
        query = {k: v for k, v in request.query.items() if k.lower() != token_param.lower()}
        query[token_param] = str(start + size)
        result["nextLink"] = base_url + urllib.parse.quote(request.path) + "?" + urllib.parse.urlencode(query)
    return result
