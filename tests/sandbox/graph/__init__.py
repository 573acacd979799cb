"""Microsoft Graph: its own service at ``{base}/graph/``, over the directory the rest of the sandbox shares.

Its own pipeline, as in Azure: tokens for the Graph audience only (an ARM token is refused, and Graph
tokens are refused by ARM), the caller's Graph app roles from the token's ``roles`` claim, its own
throttling bucket, OData error bodies and paging. Where each API lives:

- ``applications.py``: /applications (+ owners, alternate keys, upsert) and their federatedIdentityCredentials
- ``service_principals.py``: /servicePrincipals (+ alternate key, upsert, owners)
- ``directory_objects.py``: /directory/deletedItems (soft delete, restore) and /directoryObjects
- ``odata.py``: alternate keys, $filter, $select, paging
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import jwt
from ..core import Caller, Context, GraphError, Request, Response, Route
from ..directory import OWNED_BY, READ_ALL, WRITE_ALL
from .odata import split_key

if TYPE_CHECKING:
    from ..app import Sandbox

PUBLIC_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
VERSIONS = ("v1.0", "beta")


def denied() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def not_found(what: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{what}' does not exist or one of its queried reference-property objects are not present.",
    )


class GraphApi:
    def __init__(self, app: Sandbox) -> None:
        from .applications import Applications
        from .directory_objects import DirectoryObjects
        from .service_principals import ServicePrincipals

        self.app = app
        self.directory = app.directory
        self.applications = Applications(self)
        self.service_principals = ServicePrincipals(self)
        self.objects = DirectoryObjects(self)

    @property
    def base_url(self) -> str:
        """What clients are told Graph is (microsoftGraphResourceId), without the trailing slash."""
        return f"{self.app.base_url}/graph"

    def base_for(self, request: Request) -> str:
        """Graph's base for the URLs of an answer: graph.microsoft.com when the client came that way."""
        return request.origin or self.base_url

    @property
    def audiences(self) -> set[str]:
        return {a.lower() for a in (*PUBLIC_AUDIENCES, self.base_url)}

    # -- routing --------------------------------------------------------------------------------------
    def route(self, request: Request, segs: list[str], low: list[str]) -> Route | None:
        if not low or low[0] != "graph":
            return None
        if len(segs) < 3 or segs[1] not in VERSIONS:
            return Route("graph.invalid", "graph", lambda c: _raise(_bad_version(segs)))
        rest = segs[2:]
        collection, key = split_key(rest[0])
        handlers: dict[str, tuple[str, Callable[[Context], Response]]] = {
            "applications": ("applications", lambda c: self.applications.dispatch(c, key, rest[1:])),
            "servicePrincipals": ("servicePrincipals", lambda c: self.service_principals.dispatch(c, key, rest[1:])),
            "directory": ("directory", lambda c: self.objects.dispatch_directory(c, rest[1:])),
            "directoryObjects": ("directoryObjects", lambda c: self.objects.dispatch_objects(c, key, rest[1:])),
        }
        found = handlers.get(collection)
        if found is None:
            message = f"Resource not found for the segment '{rest[0]}'."
            return Route("graph.unknown", "graph", lambda c: _raise(GraphError(400, "BadRequest", message)))
        name, handler = found
        return Route(f"graph.{name}", "graph", handler)

    # -- the pipeline's Graph steps -------------------------------------------------------------------
    def authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _space, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", {"WWW-Authenticate": "Bearer"}
            )
        try:
            claims = jwt.verify(token.strip(), self.app._entra_key.public_key())
        except jwt.InvalidToken as exc:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from exc
        if float(claims.get("exp", 0)) < time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        if str(claims.get("aud", "")).rstrip("/").lower() not in self.audiences:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        roles = claims.get("roles") or []
        return Caller(str(claims.get("oid")), str(claims.get("appid")), str(claims.get("tid")), tuple(roles))

    def take_token(self, caller: Caller) -> None:
        if not self.app.settings.throttling:
            return
        allowed, _remaining, retry_after = self.app.throttle.take("graph", self.app.tenant_id, caller.app_id)
        if not allowed:
            raise GraphError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"Retry-After": str(retry_after)},
            )

    # -- what every collection shares -----------------------------------------------------------------
    @staticmethod
    def can_read_all(caller: Caller | None) -> bool:
        return bool(caller and READ_ALL & set(caller.roles))

    @staticmethod
    def can_write_all(caller: Caller | None) -> bool:
        return bool(caller and WRITE_ALL & set(caller.roles))

    @staticmethod
    def owned_by_caller(caller: Caller | None) -> bool:
        return bool(caller and OWNED_BY in caller.roles)

    def visible(self, caller: Caller | None, owners: list[str]) -> bool:
        """Readable by the caller: with a read permission, or owned under Application.ReadWrite.OwnedBy."""
        if self.can_read_all(caller):
            return True
        return self.owned_by_caller(caller) and caller is not None and caller.principal_id in owners

    def require_write(self, caller: Caller | None, owners: list[str]) -> None:
        if self.can_write_all(caller):
            return
        if self.owned_by_caller(caller) and caller is not None and caller.principal_id in owners:
            return
        raise denied()

    def fresh(self, created_at: float) -> bool:
        """Created too recently to be read back: Graph is eventually consistent (settings)."""
        window = self.app.settings.graph_replication_seconds
        return bool(window) and time.time() - created_at < window

    def context(self, what: str) -> str:
        return f"{self.base_url}/v1.0/$metadata#{what}"

    @staticmethod
    def created_if_missing(request: Request) -> bool:
        prefer = request.headers.get("prefer", "")
        return "create-if-missing" in [p.strip().lower() for p in prefer.split(",")]


def _bad_version(segs: list[str]) -> GraphError:
    version = segs[1] if len(segs) > 1 else ""
    return GraphError(400, "BadRequest", f"Invalid version: {version}")


def _raise(error: GraphError) -> Any:
    raise error
