"""Graph's /directory/deletedItems (soft delete, restore, permanent delete) and /directoryObjects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core import Context, GraphError, Response
from . import denied, not_found
from .odata import page

if TYPE_CHECKING:
    from . import GraphApi

KINDS = {
    "microsoft.graph.application": "deletedApplication",
    "microsoft.graph.serviceprincipal": "deletedPrincipal",
}


class DirectoryObjects:
    def __init__(self, graph: GraphApi) -> None:
        self.graph = graph
        self.directory = graph.directory
        self.store = graph.app.store

    def stub(self, object_id: str) -> dict[str, Any] | None:
        """A directory object as owners and getByIds list it."""
        principal = self.directory.principal(object_id)
        if principal is not None:
            return {"@odata.type": "#microsoft.graph.servicePrincipal", **self.directory.sp_body(principal)}
        app = self.directory.application(object_id)
        if app is not None:
            return {"@odata.type": "#microsoft.graph.application", **self.directory.app_body(app)}
        return None

    # -- /directoryObjects -----------------------------------------------------------------------------
    def dispatch_objects(self, ctx: Context, key: dict[str, str] | None, rest: list[str]) -> Response:
        if key is None and rest == ["getByIds"] and ctx.request.method == "POST":
            if not self.graph.can_read_all(ctx.caller) and not self.graph.owned_by_caller(ctx.caller):
                raise denied()
            body = ctx.request.json_object()
            types = {t.lower() for t in body.get("types") or []}
            found = []
            for object_id in body.get("ids") or []:
                stub = self.stub(str(object_id))
                if stub is None:
                    continue
                kind = stub["@odata.type"].removeprefix("#microsoft.graph.").lower()
                if types and kind not in types:
                    continue
                if self.graph.can_read_all(ctx.caller) or ctx.caller and ctx.caller.principal_id == stub["id"]:
                    found.append(stub)
            return Response(200, {"@odata.context": self.graph.context("directoryObjects"), "value": found})
        if key is None and len(rest) == 1 and ctx.request.method == "GET":
            stub = self.stub(rest[0])
            if stub is None:
                raise not_found(rest[0])
            if not self.graph.can_read_all(ctx.caller):
                raise denied()
            return Response(200, {"@odata.context": self.graph.context("directoryObjects/$entity"), **stub})
        raise GraphError(400, "BadRequest", "Resource not found for the segment 'directoryObjects'.")

    # -- /directory/deletedItems -----------------------------------------------------------------------
    def dispatch_directory(self, ctx: Context, rest: list[str]) -> Response:
        if not rest or rest[0] != "deletedItems":
            raise GraphError(400, "BadRequest", "Resource not found for the segment 'directory'.")
        method = ctx.request.method
        rest = rest[1:]
        if len(rest) == 1 and rest[0].lower() in KINDS and method == "GET":
            return self._list(ctx, KINDS[rest[0].lower()], rest[0])
        if not rest:
            raise GraphError(
                400, "Request_BadRequest", "Deleted items must be listed by type (e.g. microsoft.graph.application)."
            )
        object_id = rest[0]
        kind, key, record = self._deleted(object_id)
        owners = record.get("owners") or []
        if len(rest) == 1 and method == "GET":
            if not self.graph.visible(ctx.caller, owners):
                raise denied()
            return Response(200, self._body(kind, record))
        self.graph.require_write(ctx.caller, owners)
        if len(rest) == 1 and method == "DELETE":
            self.store.delete(kind, key)
            if kind == "deletedApplication":
                for fic_key in [k for k in self.store.all("appFic") if k.startswith(object_id.lower() + "/")]:
                    self.store.delete("appFic", fic_key)
            return Response(204)
        if rest[1:] == ["restore"] and method == "POST":
            return self._restore(kind, key, record)
        raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed here.")

    def _list(self, ctx: Context, kind: str, type_name: str) -> Response:
        if not self.graph.can_read_all(ctx.caller) and not self.graph.owned_by_caller(ctx.caller):
            raise denied()
        items = [
            self._body(kind, r)
            for r in self.store.all(kind).values()
            if self.graph.visible(ctx.caller, r.get("owners") or [])
        ]
        url = f"{self.graph.base_for(ctx.request)}/v1.0/directory/deletedItems/{type_name}"
        context = self.graph.context(f"directory/deletedItems/{type_name}")
        return Response(200, page(items, ctx.request, url, self.graph.app.settings.graph_page_size, context))

    def _deleted(self, object_id: str) -> tuple[str, str, dict[str, Any]]:
        for kind, key in (("deletedApplication", object_id.lower()), ("deletedPrincipal", f"principal/{object_id}")):
            record = self.store.get(kind, key)
            if record is not None:
                return kind, key, record
        raise not_found(object_id)

    def _body(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        if kind == "deletedApplication":
            return {"@odata.type": "#microsoft.graph.application", **record["body"]}
        return {"@odata.type": "#microsoft.graph.servicePrincipal", **self.directory.sp_body(record)}

    def _restore(self, kind: str, key: str, record: dict[str, Any]) -> Response:
        with self.store.transaction():
            if kind == "deletedApplication":
                clash = self.directory.application_by("uniqueName", record["body"].get("uniqueName") or "\0")
                if clash is not None:
                    raise GraphError(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "Another object with the same value for property uniqueName already exists.",
                    )
                self.store.delete(kind, key)
                restored = {k: v for k, v in record.items() if k != "deleted_at"}
                restored["body"] = {**record["body"], "deletedDateTime": None}
                self.directory.save_application(restored)
                body = {"@odata.type": "#microsoft.graph.application", **restored["body"]}
            else:
                if self.directory.principal_by_app_id(record["app_id"]) is not None:
                    raise GraphError(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "The service principal cannot be created, updated, or restored because the service "
                        f"principal name {record['app_id']} is already in use.",
                    )
                self.store.delete(kind, key)
                restored = {k: v for k, v in record.items() if k not in ("deleted_at", "deleted_at_iso")}
                self.store.put("principal", key, restored)
                body = {"@odata.type": "#microsoft.graph.servicePrincipal", **self.directory.sp_body(restored)}
        return Response(200, {"@odata.context": self.graph.context("directoryObjects/$entity"), **body})
