"""ARM: user-assigned managed identities (Microsoft.ManagedIdentity) and their federated credentials."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from .. import ids
from ..core import ApiError, Context, Response
from .common import (
    FIC_FIELD_MAX,
    FIC_NAME_RE,
    FIC_TYPE,
    IDENTITY_NAME_RE,
    IDENTITY_TYPE,
    ArmBase,
    _scope,
    _validate_tags,
)

if TYPE_CHECKING:
    pass


class IdentitiesProvider(ArmBase):
    _fic_busy: dict[str, float]
    _fic_lock: threading.Lock

    # -- user-assigned identities ------------------------------------------------------------------
    def list_identities(self, ctx: Context, sub: str, rg: str | None) -> Response:
        if rg is None:
            self._require_subscription(sub)
            scope = ids.parse_scope(f"/subscriptions/{sub}")
        else:
            self._require_rg(sub, rg)
            scope = ids.parse_scope(f"/subscriptions/{sub}/resourceGroups/{rg}")
        self.app.authorize(ctx, "Microsoft.ManagedIdentity/userAssignedIdentities/read", scope)
        prefix = scope.key + "/"
        items = [r["body"] for k, r in sorted(self.store.all("identity").items()) if k.startswith(prefix)]
        return self._page(ctx, items)

    def identity(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = _scope(segs)
        sub, rg, name = scope.subscription or "", scope.resource_group or "", scope.names[0]
        action = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.ManagedIdentity/userAssignedIdentities/{action}", scope)
        self._require_rg(sub, rg)
        key = scope.key
        with self.store.lock:
            existing = self.store.get("identity", key)
            if method == "GET":
                if existing is None:
                    raise self._not_found("Microsoft.ManagedIdentity/userAssignedIdentities", name, rg)
                return Response(200, existing["body"])
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                with self.store.transaction():
                    for k in list(self.store.all("fic")):
                        if k.startswith(key + "/"):
                            self.store.delete("fic", k)
                    self._drop_principal(existing)
                    self.store.delete("identity", key)
                return Response(200)
            body = ctx.request.json_object()
            if method == "PATCH":
                if existing is None:
                    raise self._not_found("Microsoft.ManagedIdentity/userAssignedIdentities", name, rg)
                new = copy.deepcopy(existing["body"])
                if "tags" in body:
                    new["tags"] = _validate_tags(body["tags"])
                if isinstance(body.get("properties"), dict) and "isolationScope" in body["properties"]:
                    new["properties"]["isolationScope"] = body["properties"]["isolationScope"]
                self.store.put("identity", key, {**existing, "body": new})
                return Response(200, new)
            if not IDENTITY_NAME_RE.fullmatch(name):
                raise ApiError(
                    400,
                    "InvalidResourceName",
                    f"Resource name '{name}' is invalid. The name can contain only letters, numbers, "
                    "underscores and hyphens, must start with a letter or number, and be 3 to 128 "
                    "characters long.",
                )
            location = body.get("location")
            if not location:
                raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
            location = str(location).lower().replace(" ", "")
            tags = _validate_tags(body.get("tags") or {})
            if existing is not None:
                if existing["body"]["location"] != location:
                    raise ApiError(
                        400,
                        "InvalidResourceLocation",
                        f"The resource '{name}' already exists in location '{existing['body']['location']}'"
                        f" in resource group '{rg}'. A resource with the same name cannot be created in "
                        f"location '{location}'. Please select a new resource name.",
                    )
                new = copy.deepcopy(existing["body"])
                new["tags"] = tags
                self.store.put("identity", key, {**existing, "body": new})
                return Response(200, new)
            principal_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
            new = {
                "id": f"/subscriptions/{sub}/resourcegroups/{rg}/providers/{IDENTITY_TYPE}/{name}",
                "name": name,
                "type": IDENTITY_TYPE,
                "location": location,
                "tags": tags,
                "properties": {
                    "isolationScope": "None",
                    "tenantId": self.app.tenant_id,
                    "principalId": principal_id,
                    "clientId": client_id,
                },
            }
            with self.store.transaction():
                self.store.put("identity", key, {"body": new})
                # Its service principal, in the directory Graph and the token endpoint read.
                self.app.directory.add_principal(
                    {
                        "principal_id": principal_id,
                        "app_id": client_id,
                        "display_name": name,
                        "sp_type": "ManagedIdentity",
                        "identity_key": key,
                        "resource_id": new["id"],
                    }
                )
            return Response(201, new)

    # -- federated identity credentials ------------------------------------------------------------
    def _fic_parent(self, ctx: Context, segs: list[str], action: str) -> tuple[ids.Scope, dict[str, Any]]:
        scope = _scope(segs[:8])
        self.app.authorize(ctx, f"{FIC_TYPE}/{action}", _scope(segs) if len(segs) > 8 else scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        identity = self.store.get("identity", scope.key)
        if identity is None:
            raise self._not_found(IDENTITY_TYPE, scope.names[0], scope.resource_group or "")
        return scope, identity

    def list_fics(self, ctx: Context, segs: list[str]) -> Response:
        scope, _identity = self._fic_parent(ctx, segs, "read")
        prefix = scope.key + "/federatedidentitycredentials/"
        items = [r["body"] for k, r in sorted(self.store.all("fic").items()) if k.startswith(prefix)]
        return self._page(ctx, items)

    def fic(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        scope, identity = self._fic_parent(ctx, segs, action)
        name = segs[9]
        key = ids.norm("/".join(segs))
        if method == "GET":
            record = self.store.get("fic", key)
            if record is None:
                raise self._not_found(FIC_TYPE, f"{scope.names[0]}/{name}", scope.resource_group or "")
            return Response(200, record["body"])
        body = ctx.request.json_object() if method == "PUT" else {}
        if method == "PUT":
            props = self._validate_fic(name, body)
        with self._fic_write(scope.key), self.store.lock:
            existing = self.store.get("fic", key)
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                self.store.delete("fic", key)
                return Response(200)
            prefix = scope.key + "/federatedidentitycredentials/"
            siblings = {k: r for k, r in self.store.all("fic").items() if k.startswith(prefix) and k != key}
            for other in siblings.values():
                p = other["body"]["properties"]
                if p["issuer"] == props["issuer"] and p["subject"] == props["subject"]:
                    raise ApiError(
                        400,
                        "BadRequest",
                        f"Federated identity credential '{other['body']['name']}' already has issuer "
                        f"'{props['issuer']}' and subject '{props['subject']}'. The combination of "
                        "issuer and subject must be unique for an identity.",
                    )
            if existing is None and len(siblings) >= self.app.settings.fic_limit:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"The identity '{scope.names[0]}' already has {len(siblings)} federated identity "
                    f"credentials; at most {self.app.settings.fic_limit} are allowed.",
                )
            new = {
                "id": f"{identity['body']['id']}/federatedIdentityCredentials/{name}",
                "name": name,
                "type": FIC_TYPE,
                "properties": props,
            }
            created_at = existing["created_at"] if existing and existing["body"]["properties"] == props else time.time()
            self.store.put("fic", key, {"body": new, "created_at": created_at})
            return Response(200 if existing else 201, new)

    def _validate_fic(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if not FIC_NAME_RE.fullmatch(name):
            raise ApiError(
                400,
                "BadRequest",
                f"The federated identity credential name '{name}' is invalid. It must start with a letter "
                "or number, contain only letters, numbers, hyphens and underscores, and be 3 to 120 "
                "characters long.",
            )
        props = body.get("properties")
        if not isinstance(props, dict):
            raise ApiError(400, "BadRequest", "The request body must contain 'properties'.")
        issuer, subject, audiences = props.get("issuer"), props.get("subject"), props.get("audiences")
        if not isinstance(issuer, str) or not issuer:
            raise ApiError(400, "BadRequest", "The 'issuer' property is required.")
        if not issuer.startswith("https://") or len(issuer) > FIC_FIELD_MAX:
            raise ApiError(400, "BadRequest", f"The issuer must be an https URL of at most {FIC_FIELD_MAX} characters.")
        if not isinstance(subject, str) or not subject or len(subject) > FIC_FIELD_MAX:
            raise ApiError(
                400, "BadRequest", f"The 'subject' property is required and must be at most {FIC_FIELD_MAX} characters."
            )
        if (
            not isinstance(audiences, list)
            or len(audiences) != 1
            or not isinstance(audiences[0], str)
            or not audiences[0]
            or len(audiences[0]) > FIC_FIELD_MAX
        ):
            raise ApiError(
                400, "BadRequest", f"Exactly one audience of at most {FIC_FIELD_MAX} characters is required."
            )
        return {"issuer": issuer, "subject": subject, "audiences": list(audiences)}

    class _FicWrite:
        def __init__(self, api: IdentitiesProvider, identity_key: str) -> None:
            self.api, self.key = api, identity_key

        def __enter__(self) -> None:
            api, now = self.api, time.monotonic()
            with api._fic_lock:
                if api._fic_busy.get(self.key, 0) > now:
                    raise ApiError(
                        409,
                        "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                        "Too many Federated Identity Credentials are written concurrently for the managed "
                        "identity. Please retry after the previous write has completed.",
                    )
                self.until = now + api.app.settings.fic_write_seconds
                api._fic_busy[self.key] = self.until

        def __exit__(self, *exc: object) -> None:
            # The write "takes" the window: concurrent writes during it see the identity busy.
            remaining = self.until - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            with self.api._fic_lock:
                if self.api._fic_busy.get(self.key) == self.until:
                    del self.api._fic_busy[self.key]

    def _fic_write(self, identity_key: str) -> IdentitiesProvider._FicWrite:
        return IdentitiesProvider._FicWrite(self, identity_key)
