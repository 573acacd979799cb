"""Graph's /applications: app registrations, their owners and their federated identity credentials."""

from __future__ import annotations

import copy
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..core import Context, GraphError, Response
from ..directory import DEFAULT_AUDIENCE
from . import denied, not_found
from .collection import GraphCollection
from .odata import compile_filter, page, select, split_key

if TYPE_CHECKING:
    pass

# What POST and PATCH accept; the rest of an application (id, appId, dates, publisherDomain) is Graph's.
WRITABLE = {
    "displayName",
    "description",
    "identifierUris",
    "isFallbackPublicClient",
    "notes",
    "serviceManagementReference",
    "signInAudience",
    "tags",
    "uniqueName",
    "api",
    "appRoles",
    "info",
    "keyCredentials",
    "optionalClaims",
    "passwordCredentials",
    "publicClient",
    "requiredResourceAccess",
    "web",
    "spa",
    "groupMembershipClaims",
}
FILTERABLE = {"id", "appId", "displayName", "uniqueName", "identifierUris", "tags", "signInAudience"}
# An application's federated credential name: "a limit of 120 characters and must be URL friendly" (Graph's
# reference; no stricter pattern is documented, unlike a managed identity's ARM name pattern). azwi names its
# credentials base64url(sha256(...)) with '=' padding, which Graph has accepted since 2022. The sandbox reads
# "URL friendly" as printable ASCII with none of the characters a URL path segment or an OData key must escape.
FIC_NAME_MAX = 120
FIC_NAME_UNSAFE = frozenset(" /\\?#%&'\"<>{}|^[]`")


def valid_credential_name(name: str) -> bool:
    return (
        0 < len(name) <= FIC_NAME_MAX
        and name.isascii()
        and name.isprintable()
        and not FIC_NAME_UNSAFE.intersection(name)
    )


FIC_FIELD_MAX = 600


class Applications(GraphCollection):
    name = "applications"

    def create_new(self, ctx: Context) -> Response:
        return self.create(ctx)

    def dispatch(self, ctx: Context, key: dict[str, str] | None, rest: list[str]) -> Response:
        method = ctx.request.method
        if key is None and not rest:
            return self.collection(ctx)
        if key is None:
            key, rest = {"id": rest[0]}, rest[1:]
        if not rest:
            if method == "GET":
                return self.get(ctx, key)
            if method == "PATCH":
                return self.update(ctx, key)
            if method == "DELETE":
                return self.delete(ctx, key)
            raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed on an application.")
        record = self._find(ctx, key, for_write=method != "GET")
        segment, sub_key = split_key(rest[0])
        if segment == "owners":
            return self.owners(ctx, record, rest[1:])
        if segment == "federatedIdentityCredentials":
            if sub_key is None and len(rest) > 1:
                sub_key = {"id": rest[1]}
            return self.credentials(ctx, record, sub_key)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    # -- lookups --------------------------------------------------------------------------------------
    def _lookup(self, key: dict[str, str]) -> dict[str, Any] | None:
        ((name, value),) = key.items()
        if name == "id":
            return self.directory.application(value)
        if name in ("appId", "uniqueName"):
            return self.directory.application_by(name, value)
        raise GraphError(400, "BadRequest", f"The alternate key '{name}' is not defined on type 'application'.")

    def _find(self, ctx: Context, key: dict[str, str], for_write: bool = False) -> dict[str, Any]:
        record = self._lookup(key)
        what = next(iter(key.values()))
        if record is None or (not for_write and self.graph.fresh(record["created_at"])):
            raise not_found(what)
        if for_write:
            self.graph.require_write(ctx.caller, record["owners"])
        elif not self.graph.visible(ctx.caller, record["owners"]):
            raise denied()
        return record

    def _body(self, ctx: Context, record: dict[str, Any], entity: bool = True) -> dict[str, Any]:
        body = select(self.directory.app_body(record), ctx.request, "application")
        return {"@odata.context": self.graph.context("applications/$entity"), **body} if entity else body

    # -- the collection -------------------------------------------------------------------------------
    def list_all(self, ctx: Context) -> Response:
        caller = ctx.caller
        if not (self.graph.can_read_all(caller) or self.graph.owned_by_caller(caller)):
            raise denied()
        matches = compile_filter(ctx.request.q("$filter"), "Application", FILTERABLE)
        items = [
            self._body(ctx, r, entity=False)
            for r in self.directory.applications()
            if self.graph.visible(caller, r["owners"]) and not self.graph.fresh(r["created_at"]) and matches(r["body"])
        ]
        url = f"{self.graph.base_for(ctx.request)}/v1.0/applications"
        return Response(
            200,
            page(items, ctx.request, url, self.graph.app.settings.graph_page_size, self.graph.context("applications")),
        )

    def create(self, ctx: Context, unique_name: str | None = None) -> Response:
        caller = ctx.caller
        if not (self.graph.can_write_all(caller) or self.graph.owned_by_caller(caller)):
            raise denied()
        body = self._writable(ctx.request.json_object())
        if unique_name is not None:
            body["uniqueName"] = unique_name
        if not isinstance(body.get("displayName"), str) or not body["displayName"].strip():
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'displayName' of resource 'Application'.",
            )
        with self.store.lock:
            self._check_unique(body, None)
            # The creator owns what it creates: with Application.ReadWrite.OwnedBy, that is all it may manage.
            owners = [caller.principal_id] if caller else []
            record = self.directory.new_application(body, owners)
        location = f"{self.graph.base_for(ctx.request)}/v1.0/directoryObjects/{record['body']['id']}"
        headers = {"Location": f"{location}/Microsoft.DirectoryServices.Application"}
        return Response(201, self._body(ctx, record), headers)

    def _writable(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in body:
            if name not in WRITABLE and not name.startswith("@odata"):
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{name}' is read-only and cannot be set."
                    if name in ("id", "appId", "createdDateTime", "publisherDomain", "deletedDateTime")
                    else f"Invalid property '{name}'.",
                )
        display = body.get("displayName")
        # 1-256 characters, none of them a control character (a NUL, a newline): Graph refuses the property.
        if "displayName" in body and (
            not isinstance(display, str) or not display.strip() or len(display) > 256 or not display.isprintable()
        ):
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'displayName' of resource 'Application'.",
            )
        return {k: copy.deepcopy(v) for k, v in body.items() if not k.startswith("@odata")}

    def _check_unique(self, body: dict[str, Any], current: dict[str, Any] | None) -> None:
        own_id = current["body"]["id"] if current else None
        for other in self.directory.applications():
            if other["body"]["id"] == own_id:
                continue
            unique = body.get("uniqueName")
            if unique and str(other["body"].get("uniqueName") or "").lower() == str(unique).lower():
                raise GraphError(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "Another object with the same value for property uniqueName already exists.",
                )
            uris = {u.lower() for u in body.get("identifierUris") or []}
            if uris & {u.lower() for u in other["body"].get("identifierUris") or []}:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "Another object with the same value for property identifierUris already exists.",
                )

    # -- one application ------------------------------------------------------------------------------
    def get(self, ctx: Context, key: dict[str, str]) -> Response:
        return Response(200, self._body(ctx, self._find(ctx, key)))

    def update(self, ctx: Context, key: dict[str, str]) -> Response:
        record = self._lookup(key)
        if record is None:
            name, value = next(iter(key.items()))
            if name == "uniqueName" and self.graph.created_if_missing(ctx.request):
                # Upsert by alternate key: 201 with the new object.
                return self.create(ctx, unique_name=value)
            raise not_found(value)
        self.graph.require_write(ctx.caller, record["owners"])
        changes = self._writable(ctx.request.json_object())
        current = record["body"].get("uniqueName")
        if "uniqueName" in changes and current and changes["uniqueName"] != current:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Property 'uniqueName' is read-only and cannot be changed once set.",
            )
        with self.store.lock:
            self._check_unique(changes, record)
            self.directory.save_application({**record, "body": {**record["body"], **changes}})
        return Response(204)

    def delete(self, ctx: Context, key: dict[str, str]) -> Response:
        record = self._find(ctx, key, for_write=True)
        self.directory.delete_application(record)
        return Response(204)

    # -- owners ---------------------------------------------------------------------------------------
    def owners(self, ctx: Context, record: dict[str, Any], rest: list[str]) -> Response:
        method = ctx.request.method
        if method == "GET" and not rest:
            items = [self.graph.objects.stub(o) for o in record["owners"]]
            items = [i for i in items if i is not None]
            return Response(200, {"@odata.context": self.graph.context("directoryObjects"), "value": items})
        if method == "POST" and rest == ["$ref"]:
            target = str(ctx.request.json_object().get("@odata.id", "")).rstrip("/").rsplit("/", 1)[-1]
            if self.directory.principal(target) is None:
                raise not_found(target)
            if target in record["owners"]:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following modified properties: "
                    "'owners'.",
                )
            self.directory.save_application({**record, "owners": [*record["owners"], target]})
            return Response(204)
        if method == "DELETE" and len(rest) == 2 and rest[1] == "$ref":
            if rest[0] not in record["owners"]:
                raise not_found(rest[0])
            self.directory.save_application({**record, "owners": [o for o in record["owners"] if o != rest[0]]})
            return Response(204)
        raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed on owners.")

    # -- federated identity credentials -------------------------------------------------------------
    def credentials(self, ctx: Context, record: dict[str, Any], key: dict[str, str] | None) -> Response:
        method = ctx.request.method
        app_id = record["body"]["id"]
        if key is None:
            if method == "GET":
                items = [
                    select(dict(r["body"]), ctx.request, "federatedIdentityCredential")
                    for r in self.directory.app_fics(app_id)
                    if not self.graph.fresh(r["created_at"])
                ]
                matches = compile_filter(
                    ctx.request.q("$filter"), "FederatedIdentityCredential", {"name", "subject", "issuer"}
                )
                items = [i for i in items if matches(i)]
                context = self.graph.context(f"applications('{app_id}')/federatedIdentityCredentials")
                return Response(200, page(items, ctx.request, ctx.request.path, 100, context))
            if method == "POST":
                return self._create_credential(ctx, record, ctx.request.json_object())
            raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed here.")
        ((name, value),) = key.items()
        found = self._credential(app_id, name, value)
        if method == "GET":
            if found is None or self.graph.fresh(found["created_at"]):
                raise not_found(value)
            return Response(
                200, {"@odata.context": self.graph.context("federatedIdentityCredentials/$entity"), **found["body"]}
            )
        if method == "DELETE":
            if found is None:
                raise not_found(value)
            self.store.delete("appFic", f"{app_id.lower()}/{found['body']['id']}")
            return Response(204)
        if method == "PATCH":
            changes = ctx.request.json_object()
            if found is None:
                if name == "name" and self.graph.created_if_missing(ctx.request):
                    return self._create_credential(ctx, record, {**changes, "name": value})
                raise not_found(value)
            if "name" in changes and changes["name"] != found["body"]["name"]:
                raise GraphError(400, "Request_BadRequest", "Property 'name' is read-only and cannot be changed.")
            merged = {**found["body"], **{k: v for k, v in changes.items() if not k.startswith("@odata")}}
            self._validate_credential(merged, record, found["body"]["id"])
            self.store.put("appFic", f"{app_id.lower()}/{found['body']['id']}", {**found, "body": merged})
            return Response(204)
        raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed here.")

    def _credential(self, app_id: str, name: str, value: str) -> dict[str, Any] | None:
        if name not in ("id", "name"):
            raise GraphError(400, "BadRequest", f"The alternate key '{name}' is not defined on this type.")
        for fic in self.directory.app_fics(app_id):
            # The key segment takes the credential's id or, as az and the portal use it, its name.
            if value.lower() in (fic["body"]["id"].lower(), fic["body"]["name"].lower()):
                return fic
        return None

    def _validate_credential(self, body: dict[str, Any], record: dict[str, Any], own_id: str | None) -> None:
        def invalid(prop: str) -> GraphError:
            return GraphError(
                400,
                "Request_BadRequest",
                f"Invalid value specified for property '{prop}' of resource 'FederatedIdentityCredential'.",
            )

        name, issuer, subject, audiences = (
            body.get("name"),
            body.get("issuer"),
            body.get("subject"),
            body.get("audiences"),
        )
        if not isinstance(name, str) or not valid_credential_name(name):
            raise invalid("name")
        if not isinstance(issuer, str) or not issuer.startswith("https://") or len(issuer) > FIC_FIELD_MAX:
            raise invalid("issuer")
        if not isinstance(subject, str) or not subject or len(subject) > FIC_FIELD_MAX:
            raise invalid("subject")
        if (
            not isinstance(audiences, list)
            or len(audiences) != 1
            or not isinstance(audiences[0], str)
            or not 0 < len(audiences[0]) <= FIC_FIELD_MAX
        ):
            raise invalid("audiences")
        siblings = [f for f in self.directory.app_fics(record["body"]["id"]) if f["body"]["id"] != own_id]
        if any(f["body"]["name"].lower() == name.lower() for f in siblings):
            raise GraphError(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                f"FederatedIdentityCredential with name {name} already exists.",
            )
        if any(f["body"]["issuer"] == issuer and f["body"]["subject"] == subject for f in siblings):
            raise GraphError(
                400,
                "InvalidFederatedIdentityCredentialValue",
                f"The combination of issuer and subject must be unique for the application. Issuer {issuer} and "
                f"Subject: {subject} already exist. paramName: FederatedIdentityCredential.Subject, paramValue: "
                f"{subject}, objectType: Microsoft.Online.DirectoryServices.Application",
            )
        limit = self.graph.app.settings.fic_limit
        if own_id is None and len(siblings) >= limit:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"The application already has {len(siblings)} federated identity credentials, the maximum "
                f"allowed ({limit}).",
            )

    def _create_credential(self, ctx: Context, record: dict[str, Any], given: dict[str, Any]) -> Response:
        body = {
            "id": str(uuid.uuid4()),
            "name": given.get("name"),
            "issuer": given.get("issuer"),
            "subject": given.get("subject"),
            "description": given.get("description"),
            "audiences": given.get("audiences", [DEFAULT_AUDIENCE]),
        }
        app_id = record["body"]["id"]
        with self.store.lock:
            self._validate_credential(body, record, None)
            self.store.put("appFic", f"{app_id.lower()}/{body['id']}", {"body": body, "created_at": time.time()})
        context = self.graph.context(f"applications('{app_id}')/federatedIdentityCredentials/$entity")
        return Response(201, {"@odata.context": context, **body})
