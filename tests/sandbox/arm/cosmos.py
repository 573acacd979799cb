"""ARM: Azure Cosmos DB accounts (Microsoft.DocumentDB/databaseAccounts) for the NoSQL API, and the account's own
role system: SQL role definitions (the two built-ins, and custom ones) and SQL role assignments.

Cosmos DB does not take ARM role assignments for its data: a principal reads a container through a
``sqlRoleAssignment`` of a ``sqlRoleDefinition``, both child resources of the account, scoped to the account, a
database (``<account id>/dbs/<db>``) or a container (``.../dbs/<db>/colls/<container>``). What this provider keeps:

- accounts (``kind`` GlobalDocumentDB, ``databaseAccountOfferType`` Standard, at least one location;
  ``documentEndpoint`` ``https://<name>.documents.azure.com:443/``), databases and containers (``resource.id`` equal
  to the name; a container's ``partitionKey.paths``), each stored as a generic resource so that deletion and role
  assignments under them work as for any resource;
- ``sqlRoleDefinitions``: the built-in Data Reader (``...0001``) and Data Contributor (``...0002``) in every account;
  custom ones with a unique ``roleName``, ``assignableScopes`` in the account and Cosmos data actions only;
- ``sqlRoleAssignments``: a GUID name, a role definition of this account, a scope in the account and within the
  definition's assignable scopes, a principal id; at most ``cosmos_role_assignment_limit`` (2000) per account, the
  limit Microsoft Learn gives.

Writes are long-running as Cosmos DB's are (202 with ``Azure-AsyncOperation`` and ``Location``, or for an account
200 with its body and the operation; the operation has succeeded when first polled). Errors are the DocumentDB
provider's ``{"code", "message"}``, without ARM's ``error`` envelope.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from .. import ids
from ..core import ApiError, Context, Response
from .common import ArmBase, _scope, _validate_tags

ACCOUNT_TYPE = "Microsoft.DocumentDB/databaseAccounts"
READER, CONTRIBUTOR = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
_CONTAINERS = "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"
BUILT_IN = {
    READER: (
        "Cosmos DB Built-in Data Reader",
        [
            "Microsoft.DocumentDB/databaseAccounts/readMetadata",
            f"{_CONTAINERS}/executeQuery",
            f"{_CONTAINERS}/readChangeFeed",
            f"{_CONTAINERS}/items/read",
        ],
    ),
    CONTRIBUTOR: (
        "Cosmos DB Built-in Data Contributor",
        ["Microsoft.DocumentDB/databaseAccounts/readMetadata", f"{_CONTAINERS}/*", f"{_CONTAINERS}/items/*"],
    ),
}
# The data actions a custom definition may name (wildcards allowed where Cosmos DB allows them).
DATA_ACTION = re.compile(
    r"Microsoft\.DocumentDB/databaseAccounts/(readMetadata|\*|throughputSettings/(read|write)"
    r"|sqlDatabases/containers/(\*|executeQuery|readChangeFeed|executeStoredProcedure|manageConflicts"
    r"|items/(\*|create|read|replace|upsert|delete)))",
    re.IGNORECASE,
)
SCOPE_SUFFIX = re.compile(r"(/dbs/[^/]+(/colls/[^/]+)?)?/?", re.IGNORECASE)


class CosmosError(ApiError):
    """The DocumentDB provider's error body: ``{"code", "message"}`` at the top level."""

    def response(self) -> Response:
        return Response(self.status, {"code": self.code, "message": self.message}, dict(self.headers))


def _bad(message: str) -> CosmosError:
    return CosmosError(400, "BadRequest", message)


class CosmosProvider(ArmBase):
    # -- accounts, databases, containers --------------------------------------------------------------
    def cosmos_resource(self, ctx: Context, segs: list[str]) -> Response:
        """An account, a SQL database or a container (``sqlDatabases/{db}[/containers/{c}]``)."""
        method = ctx.request.method
        scope = self._authorized(ctx, segs, CosmosError)
        account_key = _account_key(scope)
        with self.store.lock:
            existing = self.store.get("generic", scope.key)

            def deleted() -> Response:
                if scope.key == account_key:
                    self._drop_account_roles(account_key)
                return self._accepted(ctx, scope)

            answered = self._read_or_delete(ctx, scope, existing, deleted)
            if answered is not None:
                return answered
            parent = scope.parent()
            if parent is not None and parent.kind == "resource" and self.store.get("generic", parent.key) is None:
                raise CosmosError(
                    404, "NotFound", f"Parent resource '{'/'.join(parent.names)}' of '{scope.names[-1]}' not found."
                )
            body = ctx.request.json_object()
            if method == "PATCH":
                if existing is None:
                    raise self._not_found(scope.resource_type, "/".join(scope.names), scope.resource_group or "")
                new = copy.deepcopy(existing["body"])
                if "tags" in body:
                    new["tags"] = _validate_tags(body["tags"] or {})
            elif scope.key == account_key:
                new = self._account_body(scope, body, existing)
            else:
                new = self._child_body(scope, body)
            self.store.put("generic", scope.key, {"body": new})
        accepted = self._accepted(ctx, scope)
        if scope.key == account_key:
            # An account's write answers 200 with the account (and the operation to poll), as Cosmos DB's does.
            return Response(200, new, accepted.headers)
        return accepted

    def _account_body(self, scope: ids.Scope, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        location = str(body.get("location") or "")
        if not location:
            raise CosmosError(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties")
        if not isinstance(props, dict) or props.get("databaseAccountOfferType") != "Standard":
            raise _bad("The parameter 'properties.databaseAccountOfferType' is required and must be 'Standard'.")
        locations = props.get("locations")
        if not isinstance(locations, list) or not locations:
            raise _bad("The parameter 'properties.locations' must name at least one location.")
        name = existing["body"]["name"] if existing else scope.names[-1]
        return {
            "id": scope.raw,
            "name": name,
            "type": ACCOUNT_TYPE,
            "kind": body.get("kind") or "GlobalDocumentDB",
            "location": location.lower().replace(" ", ""),
            "tags": _validate_tags(body.get("tags") or {}),
            "properties": {
                **{k: v for k, v in props.items() if k != "documentEndpoint"},
                "provisioningState": "Succeeded",
                "documentEndpoint": f"https://{name.lower()}.documents.azure.com:443/",
            },
        }

    @staticmethod
    def _child_body(scope: ids.Scope, body: dict[str, Any]) -> dict[str, Any]:
        resource = (body.get("properties") or {}).get("resource")
        if not isinstance(resource, dict) or resource.get("id") != scope.names[-1]:
            raise _bad(f"The parameter 'properties.resource.id' must be '{scope.names[-1]}', the resource's name.")
        if scope.types[-1].lower() == "containers":
            paths = (resource.get("partitionKey") or {}).get("paths")
            if not isinstance(paths, list) or not paths or not all(str(p).startswith("/") for p in paths):
                raise _bad("A container needs 'properties.resource.partitionKey.paths', each starting with '/'.")
        return {
            "id": scope.raw,
            "name": scope.names[-1],
            "type": scope.resource_type,
            "properties": {"resource": {**resource, "_rid": uuid.uuid4().hex[:8]}},
        }

    def list_cosmos_accounts(self, ctx: Context, sub: str, rg: str | None) -> Response:
        """``DatabaseAccounts_List`` / ``_ListByResourceGroup``: every account, whole, in one page (Cosmos DB's list
        has no ``nextLink``)."""
        return Response(200, {"value": self._listed(ctx, sub, rg, ACCOUNT_TYPE)})

    def _accepted(self, ctx: Context, scope: ids.Scope) -> Response:
        """Cosmos DB's writes are long-running: 202, and an operation that has succeeded when polled."""
        return self._operation_accepted(
            ctx, scope, ("cosmosOperation", "Microsoft.DocumentDB", "westeurope", "operationsStatus")
        )

    def cosmos_operation(self, ctx: Context, op_id: str, kind: str) -> Response:
        not_found = CosmosError(404, "NotFound", f"Operation '{op_id}' not found.")
        return self._operation(op_id, kind, "cosmosOperation", not_found)

    # -- SQL role definitions -----------------------------------------------------------------------
    def sql_role_definitions(self, ctx: Context, segs: list[str], guid: str | None) -> Response:
        account = self._account(ctx, segs, "sqlRoleDefinitions", guid)
        if guid is None:
            return Response(200, {"value": self._definitions(account)})
        found = next((d for d in self._definitions(account) if d["name"].lower() == guid.lower()), None)
        method = ctx.request.method
        if method == "GET":
            if found is None:
                raise CosmosError(404, "NotFound", f"The role definition '{guid}' was not found in this account.")
            return Response(200, found)
        if guid in BUILT_IN:
            raise _bad(f"The built-in role definition '{guid}' cannot be changed or deleted.")
        key = f"{account['id'].lower()}/sqlroledefinitions/{guid.lower()}"
        if method == "DELETE":
            if any(a["roleDefinitionId"].lower().endswith(guid.lower()) for a in self._assignments(account)):
                raise _bad(f"The role definition '{guid}' has role assignments: delete them first.")
            self.store.delete("cosmosRoleDefinition", key)
            return self._accepted(ctx, _scope(segs[: len(segs) - 2]))
        props = ctx.request.json_object().get("properties") or {}
        name, scopes, permissions = props.get("roleName"), props.get("assignableScopes"), props.get("permissions")
        if not isinstance(name, str) or not name.strip():
            raise _bad("The parameter 'properties.roleName' is required.")
        if any(
            d["properties"]["roleName"].lower() == name.lower() and d["name"] != guid
            for d in self._definitions(account)
        ):
            raise CosmosError(409, "Conflict", f"A role definition named '{name}' already exists in this account.")
        if not isinstance(scopes, list) or not scopes:
            raise _bad("The parameter 'properties.assignableScopes' must have at least one element.")
        for scope in scopes:
            self._in_account(account, str(scope), "assignableScopes")
        actions = [a for p in permissions or [] for a in (p.get("dataActions") or [])]
        bad = [a for a in actions if not DATA_ACTION.fullmatch(str(a))]
        if not actions or bad:
            raise _bad(f"The data actions {bad or '(none)'} are not valid Cosmos DB data actions.")
        definition = _definition(account["id"], guid, name, "CustomRole", [str(s) for s in scopes], permissions)
        self.store.put("cosmosRoleDefinition", key, {"body": definition})
        return self._accepted(ctx, _scope(segs[: len(segs) - 2]))

    def definitions_of(self, account: dict[str, Any]) -> list[dict[str, Any]]:
        """The account's SQL role definitions (its data plane authorizes by them)."""
        return self._definitions(account)

    def assignments_of(self, account: dict[str, Any]) -> list[dict[str, Any]]:
        """The account's SQL role assignments (its data plane authorizes by them)."""
        return self._assignments(account)

    def _definitions(self, account: dict[str, Any]) -> list[dict[str, Any]]:
        built = [
            _definition(account["id"], guid, name, "BuiltInRole", [account["id"]], [{"dataActions": actions}])
            for guid, (name, actions) in BUILT_IN.items()
        ]
        prefix = f"{account['id'].lower()}/sqlroledefinitions/"
        custom = [r["body"] for k, r in sorted(self.store.all("cosmosRoleDefinition").items()) if k.startswith(prefix)]
        return built + custom

    # -- SQL role assignments -----------------------------------------------------------------------
    def sql_role_assignments(self, ctx: Context, segs: list[str], guid: str | None) -> Response:
        account = self._account(ctx, segs, "sqlRoleAssignments", guid)
        if guid is None:
            return Response(200, {"value": self._assignments(account)})
        key = f"{account['id'].lower()}/sqlroleassignments/{guid.lower()}"
        existing = self.store.get("cosmosRoleAssignment", key)
        method = ctx.request.method
        if method == "GET":
            if existing is None:
                raise CosmosError(404, "NotFound", f"The role assignment '{guid}' was not found in this account.")
            return Response(200, existing["body"])
        account_scope = _scope(segs[: len(segs) - 2])
        if method == "DELETE":
            if existing is not None:
                self.store.delete("cosmosRoleAssignment", key)
            return self._accepted(ctx, account_scope)
        if not ids.is_guid(guid):
            raise _bad(f"The role assignment id '{guid}' is not a GUID.")
        props = ctx.request.json_object().get("properties") or {}
        role_id, scope, principal = (str(props.get(k) or "") for k in ("roleDefinitionId", "scope", "principalId"))
        definition = next((d for d in self._definitions(account) if d["id"].lower() == role_id.lower()), None)
        if definition is None:
            raise _bad(
                f"The role definition '{role_id}' does not exist in this account: give the full id of one of its "
                "sqlRoleDefinitions."
            )
        self._in_account(account, scope, "scope")
        assignable = [s.rstrip("/").lower() for s in definition["properties"]["assignableScopes"]]
        if not any(scope.rstrip("/").lower() == s or scope.lower().startswith(s + "/") for s in assignable):
            raise _bad(f"The scope '{scope}' is not within the role definition's assignable scopes.")
        if not ids.is_guid(principal):
            raise _bad(f"The principal id '{principal}' is not a GUID.")
        held = self._assignments(account)
        limit = self.app.settings.cosmos_role_assignment_limit
        if existing is None and len(held) >= limit:
            raise _bad(f"The account holds {len(held)} role assignments, the most it may hold ({limit}).")
        body = {
            "id": f"{account['id']}/sqlRoleAssignments/{guid}",
            "name": guid,
            "type": f"{ACCOUNT_TYPE}/sqlRoleAssignments",
            "properties": {"roleDefinitionId": definition["id"], "scope": scope.rstrip("/"), "principalId": principal},
        }
        self.store.put("cosmosRoleAssignment", key, {"body": body, "account": account["id"].lower()})
        return self._accepted(ctx, account_scope)

    def _assignments(self, account: dict[str, Any]) -> list[dict[str, Any]]:
        prefix = f"{account['id'].lower()}/sqlroleassignments/"
        return [r["body"] for k, r in sorted(self.store.all("cosmosRoleAssignment").items()) if k.startswith(prefix)]

    # -- shared -------------------------------------------------------------------------------------
    def _account(self, ctx: Context, segs: list[str], kind: str, guid: str | None) -> dict[str, Any]:
        """The account a role request is under, authorized (reads and writes of its ``kind``)."""
        return self._parent_of(ctx, segs, guid is not None, (ACCOUNT_TYPE, kind), CosmosError)[0]

    @staticmethod
    def _in_account(account: dict[str, Any], scope: str, field: str) -> None:
        prefix = account["id"].rstrip("/")
        if not scope.lower().startswith(prefix.lower()) or not SCOPE_SUFFIX.fullmatch(scope[len(prefix) :]):
            raise _bad(
                f"The {field} '{scope}' is not in the account: give the account's id, or it followed by "
                "/dbs/<database> or /dbs/<database>/colls/<container>."
            )

    def _drop_account_roles(self, account_key: str) -> None:
        for kind in ("cosmosRoleDefinition", "cosmosRoleAssignment"):
            for key in list(self.store.all(kind)):
                if key.startswith(account_key + "/"):
                    self.store.delete(kind, key)


def _account_key(scope: ids.Scope) -> str:
    """The account's key for any scope at or under it."""
    parts = scope.key.split("/")
    return "/".join(parts[:9])


def _definition(
    account_id: str, guid: str, name: str, kind: str, scopes: list[str], permissions: Any
) -> dict[str, Any]:
    return {
        "id": f"{account_id}/sqlRoleDefinitions/{guid}",
        "name": guid,
        "type": f"{ACCOUNT_TYPE}/sqlRoleDefinitions",
        "properties": {"roleName": name, "type": kind, "assignableScopes": scopes, "permissions": permissions},
    }
