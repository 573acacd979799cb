"""Graph's /servicePrincipals: app registrations' and managed identities' principals, in one directory."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..core import Caller, Context, GraphError, Response
from . import denied, not_found
from .collection import GraphCollection
from .odata import compile_filter, page, select

if TYPE_CHECKING:
    pass

FILTERABLE = {"id", "appId", "displayName", "servicePrincipalNames", "servicePrincipalType", "tags", "alternativeNames"}
WRITABLE = {"tags", "displayName", "notes", "appRoleAssignmentRequired", "accountEnabled", "description"}


class ServicePrincipals(GraphCollection):
    name = "servicePrincipals"

    def create_new(self, ctx: Context) -> Response:
        return self.create(ctx, ctx.request.json_object())

    def dispatch(self, ctx: Context, key: dict[str, str] | None, rest: list[str]) -> Response:
        method = ctx.request.method
        if key is None and not rest:
            return self.collection(ctx)
        if key is None:
            key, rest = {"id": rest[0]}, rest[1:]
        if rest == ["owners"] and method == "GET":
            record = self._find(ctx, key)
            items = [self.graph.objects.stub(o) for o in record.get("owners") or []]
            return Response(
                200, {"@odata.context": self.graph.context("directoryObjects"), "value": [i for i in items if i]}
            )
        if rest:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")
        if method == "GET":
            record = self._find(ctx, key)
            body = select(self.directory.sp_body(record), ctx.request, "servicePrincipal")
            return Response(200, {"@odata.context": self.graph.context("servicePrincipals/$entity"), **body})
        if method == "PATCH":
            return self.update(ctx, key)
        if method == "DELETE":
            record = self._find(ctx, key, for_write=True)
            if record.get("sp_type") == "ManagedIdentity":
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "A managed identity's service principal cannot be deleted; delete the managed identity.",
                )
            self.directory.delete_principal(record)
            return Response(204)
        raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed on a servicePrincipal.")

    # -- permissions ----------------------------------------------------------------------------------
    def _owners(self, record: dict[str, Any]) -> list[str]:
        """Who may manage it under Application.ReadWrite.OwnedBy: its owners and its application's."""
        owners = list(record.get("owners") or [])
        app = self.directory.application(record["application_id"]) if record.get("application_id") else None
        return owners + (app["owners"] if app else [])

    def _lookup(self, key: dict[str, str]) -> dict[str, Any] | None:
        ((name, value),) = key.items()
        if name == "id":
            return self.directory.principal(value)
        if name == "appId":
            return self.directory.principal_by_app_id(value)
        raise GraphError(400, "BadRequest", f"The alternate key '{name}' is not defined on type 'servicePrincipal'.")

    def _find(self, ctx: Context, key: dict[str, str], for_write: bool = False) -> dict[str, Any]:
        record = self._lookup(key)
        what = next(iter(key.values()))
        if record is None or (not for_write and self.graph.fresh(record.get("created_at", 0))):
            raise not_found(what)
        if for_write:
            self.graph.require_write(ctx.caller, self._owners(record))
        elif not self.graph.visible(ctx.caller, self._owners(record)):
            raise denied()
        return record

    # -- the collection -------------------------------------------------------------------------------
    def list_all(self, ctx: Context) -> Response:
        caller = ctx.caller
        if not (self.graph.can_read_all(caller) or self.graph.owned_by_caller(caller)):
            raise denied()
        matches = compile_filter(ctx.request.q("$filter"), "ServicePrincipal", FILTERABLE)
        items = []
        for record in self.directory.principals():
            if not self.graph.visible(caller, self._owners(record)) or self.graph.fresh(record.get("created_at", 0)):
                continue
            body = self.directory.sp_body(record)
            if matches(body):
                items.append(select(body, ctx.request, "servicePrincipal"))
        url = f"{self.graph.base_for(ctx.request)}/v1.0/servicePrincipals"
        context = self.graph.context("servicePrincipals")
        return Response(200, page(items, ctx.request, url, self.graph.app.settings.graph_page_size, context))

    def create(self, ctx: Context, body: dict[str, Any], app_id: str | None = None) -> Response:
        app_id = app_id or body.get("appId")
        if not isinstance(app_id, str) or not app_id:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'appId' of resource 'ServicePrincipal'.",
            )
        with self.store.lock:
            app = self.directory.application_by("appId", app_id)
            # An application just made is not yet everywhere in the directory (replication, as in Entra).
            if app is None or self.graph.fresh(app["created_at"]):
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"The appId '{app_id}' of the service principal does not reference a valid application object.",
                )
            self.graph.require_write(ctx.caller, app["owners"])
            if self.directory.principal_by_app_id(app_id) is not None:
                raise GraphError(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "The service principal cannot be created, updated, or restored because the service principal "
                    f"name {app_id} is already in use.",
                )
            record = self.directory.add_principal(
                {
                    "principal_id": str(uuid.uuid4()),
                    "app_id": app["body"]["appId"],
                    "display_name": app["body"]["displayName"],
                    "sp_type": "Application",
                    "application_id": app["body"]["id"],
                    "owners": [ctx.caller.principal_id] if isinstance(ctx.caller, Caller) else [],
                    "tags": list(body.get("tags") or []),
                }
            )
        context = self.graph.context("servicePrincipals/$entity")
        return Response(201, {"@odata.context": context, **self.directory.sp_body(record)})

    def update(self, ctx: Context, key: dict[str, str]) -> Response:
        record = self._lookup(key)
        if record is None:
            name, value = next(iter(key.items()))
            if name == "appId" and self.graph.created_if_missing(ctx.request):
                return self.create(ctx, ctx.request.json_object(), app_id=value)
            raise not_found(value)
        self.graph.require_write(ctx.caller, self._owners(record))
        changes = ctx.request.json_object()
        for name in changes:
            if name not in WRITABLE and not name.startswith("@odata") and name != "appId":
                raise GraphError(400, "Request_BadRequest", f"Property '{name}' is read-only and cannot be set.")
        updated = dict(record)
        if "tags" in changes:
            updated["tags"] = list(changes["tags"] or [])
        if "displayName" in changes:
            updated["display_name"] = changes["displayName"]
        self.directory.add_principal(updated)
        return Response(204)
