"""Blob storage's data plane: a storage account's containers at ``https://<account>.blob.core.windows.net`` (through the
public-hostnames proxy) or ``<sandbox>/dataplane/blob/<account>`` (directly), authorized as Azure Storage authorizes
an Entra token.

- Authentication: a bearer token from Entra with audience ``https://storage.azure.com`` (or the account's own
  ``https://<account>.blob.core.windows.net``); ``x-ms-version`` is required, and a token needs 2017-11-09 or later.
  Without a token: 401 ``NoAuthenticationInformation`` with the challenge the Storage SDKs read the tenant from.
- Authorization: the data actions of the caller's role assignments at the container, the account or above
  (``blobServices/containers/blobs/read`` to list a container's blobs); refused: 403
  ``AuthorizationPermissionMismatch``. Conditions on assignments are not evaluated here. Shared keys and SAS are not
  emulated: Entra tokens only.
- What is served: a container's blob list (``?restype=container&comp=list``), empty (the sandbox keeps no blobs); a
  container is the ARM resource ``.../blobServices/default/containers/<name>`` (404 ``ContainerNotFound`` if none).
Errors are Azure Storage's XML ``<Error><Code/><Message/></Error>`` with ``x-ms-error-code``.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from . import ids, jwt, rbac
from .core import Context, Response, Route, utc_now_iso

if TYPE_CHECKING:
    from .app import Sandbox

AUDIENCES = ("https://storage.azure.com",)
PREFIX = ("dataplane", "blob")
OAUTH_FROM = "2017-11-09"  # the first x-ms-version that takes an Entra token
LIST_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
STORAGE_TYPE = "microsoft.storage/storageaccounts"


class StorageError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> Response:
        request_id = str(uuid.uuid4())
        text = f"{self.message}\nRequestId:{request_id}\nTime:{utc_now_iso()}"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{self.code}</Code><Message>{escape(text)}</Message></Error>"
        ).encode()
        headers = {"x-ms-error-code": self.code, "x-ms-request-id": request_id, **self.headers}
        return Response(self.status, body, headers, "application/xml")


class BlobDataPlane:
    def __init__(self, app: Sandbox) -> None:
        self.app = app

    def route(self, request: Any, segs: list[str], low: list[str]) -> Route | None:
        if tuple(low[:2]) != PREFIX or len(low) < 3:
            return None
        account, rest = segs[2], segs[3:]
        listing = (
            len(rest) == 1
            and request.method == "GET"
            and request.q("restype") == "container"
            and request.q("comp") == "list"
        )
        operation = "blob.containers.listBlobs" if listing else "blob.unsupported"
        return Route(operation, "storage", lambda c: self._answer(c, account, rest, listing))

    def _answer(self, ctx: Context, account: str, rest: list[str], listing: bool) -> Response:
        try:
            return self._serve(ctx, account, rest, listing)
        except StorageError as exc:
            return exc.response()

    def _serve(self, ctx: Context, account: str, rest: list[str], listing: bool) -> Response:
        request = ctx.request
        found = self._account(account)
        if found is None:
            # In Azure the account's DNS name would not resolve: there is no one to answer.
            raise StorageError(404, "AccountNotFound", f"No storage account named '{account}' exists.")
        claims = self._authenticate(request, account)
        version = request.headers.get("x-ms-version", "")
        if not version:
            raise StorageError(
                400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified."
            )
        if version < OAUTH_FROM:
            raise StorageError(
                403,
                "AuthenticationFailed",
                f"Authentication scheme Bearer is not supported in this version ({version}): use {OAUTH_FROM} or "
                "later.",
            )
        if not listing:
            raise StorageError(400, "UnsupportedHttpVerb", "The sandbox's blob service lists a container's blobs only.")
        container = rest[0]
        container_id = f"{found['id']}/blobServices/default/containers/{container}"
        if self.app.store.get("generic", ids.norm(container_id)) is None:
            raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
        self._authorize(claims, container_id)
        base = request.origin or f"{self.app.base_url}/{PREFIX[0]}/{PREFIX[1]}/{account}"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="{escape(base)}/" ContainerName="{escape(container)}">'
            "<Blobs /><NextMarker /></EnumerationResults>"
        ).encode()
        return Response(200, body, {"x-ms-version": version}, "application/xml")

    def _account(self, name: str) -> dict[str, Any] | None:
        for key, record in self.app.store.all("generic").items():
            scope = ids.parse_scope(key)
            if scope.kind == "resource" and scope.key.endswith(f"/providers/{STORAGE_TYPE}/{name.lower()}"):
                return dict(record["body"])
        return None

    def _authenticate(self, request: Any, account: str) -> dict[str, Any]:
        authority = "https://login.microsoftonline.com" if request.origin else self.app.base_url
        challenge = {
            "WWW-Authenticate": f"Bearer authorization_uri={authority}/{self.app.tenant_id}/oauth2/authorize "
            "resource_id=https://storage.azure.com"
        }
        scheme, _space, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise StorageError(
                401, "NoAuthenticationInformation", "Server failed to authenticate the request.", challenge
            )
        try:
            claims = jwt.verify(token.strip(), self.app._entra_key.public_key())
        except jwt.InvalidToken as exc:
            raise StorageError(
                401, "InvalidAuthenticationInfo", "Server failed to authenticate the request.", challenge
            ) from exc
        audience = str(claims.get("aud", "")).rstrip("/").lower()
        own = f"https://{account.lower()}.blob.core.windows.net"
        if float(claims.get("exp", 0)) < time.time() or audience not in (*AUDIENCES, own):
            raise StorageError(
                401,
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Please refer to the information in the www-authenticate "
                "header.",
                challenge,
            )
        return dict(claims)

    def _authorize(self, claims: dict[str, Any], container_id: str) -> None:
        scope = ids.parse_scope(container_id)
        for record in self.app.assignments_applying(scope, str(claims.get("oid"))):
            role = self.app.role_definition(record["role_guid"])
            if role and rbac.permits(role["permissions"], LIST_BLOBS, data_action=True):
                return
        raise StorageError(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
