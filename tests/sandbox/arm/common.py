"""What every ARM provider of the sandbox shares: constants, scope parsing, existence checks, paging."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import ids
from ..core import ApiError, Context, Response, paged, utc_now_iso

if TYPE_CHECKING:
    from ..app import Sandbox
    from ..store import Store

MSI = "microsoft.managedidentity"
AKS = "microsoft.containerservice"
AUTHZ = "microsoft.authorization"
KEYVAULT = "microsoft.keyvault"
COSMOS = "microsoft.documentdb"
POSTGRES = "microsoft.dbforpostgresql"
POSTGRES_SERVER_TYPE = "Microsoft.DBforPostgreSQL/flexibleServers"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
IDENTITY_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
FIC_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$")
RG_NAME_RE = re.compile(r"^[-\w._()]{1,90}$")
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
FIC_FIELD_MAX = 600


def _scope(path_segs: list[str]) -> ids.Scope:
    try:
        return ids.parse_scope("/" + "/".join(path_segs))
    except ids.InvalidScope as exc:
        raise ApiError(400, "InvalidScope", str(exc)) from exc


def _parse_filter(text: str | None) -> dict[str, str | bool]:
    """ARM's role-assignment/definition filters, joined with 'and'."""
    result: dict[str, str | bool] = {}
    if not text:
        return result
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        clause = clause.strip()
        if re.fullmatch(r"atScope\(\)", clause, re.IGNORECASE):
            result["atScope"] = True
        elif m := re.fullmatch(r"assignedTo\('([^']*)'\)", clause, re.IGNORECASE):
            result["assignedTo"] = m.group(1)
        elif m := re.fullmatch(r"(principalId|roleName|type|roleDefinitionId)\s+eq\s+'([^']*)'", clause, re.IGNORECASE):
            result[m.group(1)[0].lower() + m.group(1)[1:]] = m.group(2)
        else:
            raise ApiError(400, "UnsupportedQuery", f"The filter '{text}' is not supported.")
    return result


class ArmBase:
    """State and checks every provider uses; ArmApi (arm/__init__.py) combines the providers."""

    app: Sandbox
    store: Store

    def _require_subscription(self, sub: str) -> None:
        if self.store.get("subscription", ids.norm(f"/subscriptions/{sub}")) is None:
            raise ApiError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def _require_rg(self, sub: str, rg: str) -> dict[str, Any]:
        self._require_subscription(sub)
        record = self.store.get("resourceGroup", ids.norm(f"/subscriptions/{sub}/resourceGroups/{rg}"))
        if record is None:
            raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        return record

    def _require_scope_exists(self, scope: ids.Scope) -> None:
        if scope.kind == "subscription" and scope.subscription:
            self._require_subscription(scope.subscription)
        elif scope.kind == "resourceGroup" and scope.subscription and scope.resource_group:
            self._require_rg(scope.subscription, scope.resource_group)
        elif scope.kind == "resource" and scope.subscription and scope.resource_group:
            self._require_rg(scope.subscription, scope.resource_group)
            if self.find_resource(scope.key) is None:
                raise ApiError(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{scope.resource_type}/{'/'.join(scope.names)}' under resource group "
                    f"'{scope.resource_group}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix",
                )
        elif scope.kind == "managementGroup" and ids.norm(scope.raw) not in {
            k for v in self.app.management_groups_of().values() for k in v
        }:
            raise ApiError(
                404, "ManagementGroupNotFound", f"The management group '{scope.management_group}' was not found."
            )

    def find_resource(self, key: str) -> dict[str, Any] | None:
        for kind in ("identity", "fic", "cluster", "generic"):
            record = self.store.get(kind, key)
            if record is not None:
                return record
        return None

    def _delete_under(self, key: str) -> None:
        """Delete a resource group or resource and everything in it, with the role assignments on it."""
        with self.store.transaction():
            for kind in ("resourceGroup", "identity", "fic", "cluster", "generic", "secret", "roleAssignment"):
                for k, record in list(self.store.all(kind).items()):
                    target = record["scope_key"] if kind == "roleAssignment" else k
                    if ids.is_at_or_below(target, key):
                        if kind == "identity":
                            self._drop_principal(record)
                        if kind == "cluster":
                            self.app.release_kube(k, record)
                        if kind == "generic" and record["body"].get("type") == POSTGRES_SERVER_TYPE:
                            self.app.postgres.drop(record["body"]["name"])
                        self.store.delete(kind, k)

    def _authorized(self, ctx: Context, segs: list[str], error: type[ApiError] = ApiError) -> ids.Scope:
        """A resource request's scope, once the caller may do its method's action there and the group exists."""
        method = ctx.request.method
        scope = _scope(segs)
        action = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise error(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"{scope.resource_type}/{action}", scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        return scope

    def _read_or_delete(
        self, ctx: Context, scope: ids.Scope, existing: dict[str, Any] | None, deleted: Callable[[], Response]
    ) -> Response | None:
        """A GET (the stored body, or ARM's 404) or a DELETE (204 when there is nothing, else the resource and what
        is under it go, answered by ``deleted``) of a stored resource; None for a write."""
        if ctx.request.method == "GET":
            if existing is None:
                raise self._not_found(scope.resource_type, "/".join(scope.names), scope.resource_group or "")
            return Response(200, existing["body"])
        if ctx.request.method == "DELETE":
            if existing is None:
                return Response(204)
            self._delete_under(scope.key)
            return deleted()
        return None

    def _drop_principal(self, identity: dict[str, Any]) -> None:
        self.app.directory.drop_principal(identity["body"]["properties"]["principalId"])

    @staticmethod
    def _not_found(rtype: str, name: str, rg: str) -> ApiError:
        return ApiError(
            404,
            "ResourceNotFound",
            f"The Resource '{rtype}/{name}' under resource group '{rg}' was not "
            "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )

    def _listed(self, ctx: Context, sub: str, rg: str | None, resource_type: str) -> list[dict[str, Any]]:
        """A provider's ``List`` / ``ListByResourceGroup``: every resource of the type in the subscription (or the
        group), whole, once the caller may read them there."""
        scope = ids.parse_scope(f"/subscriptions/{sub}" + (f"/resourceGroups/{rg}" if rg else ""))
        self.app.authorize(ctx, f"{resource_type}/read", scope)
        if rg:
            self._require_rg(sub, rg)
        else:
            self._require_subscription(sub)
        return [
            dict(record["body"])
            for key, record in sorted(self.store.all("generic").items())
            if record["body"].get("type") == resource_type and ids.is_at_or_below(key, scope.key)
        ]

    def _parent_of(
        self, ctx: Context, segs: list[str], named: bool, child: tuple[str, str], error: type[ApiError] = ApiError
    ) -> tuple[dict[str, Any], ids.Scope]:
        """The resource a child request is under (``.../<parent>/<kind>`` to list, ``.../<kind>/<name>`` for one),
        once the caller may do the method's action on that kind there; ARM's 404 when the parent does not exist.
        ``child``: the parent's resource type and the child kind."""
        resource_type, kind = child
        scope = _scope(segs[: len(segs) - (2 if named else 1)])
        verb = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(ctx.request.method)
        if verb is None or (not named and verb != "read"):
            raise error(405, "MethodNotAllowed", f"The method '{ctx.request.method}' is not allowed.")
        self.app.authorize(ctx, f"{resource_type}/{kind}/{verb}", scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        record = self.store.get("generic", scope.key)
        if record is None:
            raise self._not_found(resource_type, scope.names[-1], scope.resource_group or "")
        return dict(record["body"]), scope

    def _operation_accepted(self, ctx: Context, scope: ids.Scope, where: tuple[str, str, str, str]) -> Response:
        """A long-running write's 202, its operation stored as already succeeded: ``where`` is the store kind, the
        provider, the location and the status segment (``operationsStatus``, ``azureAsyncOperation``...)."""
        store_kind, provider, location, status_segment = where
        op_id = str(uuid.uuid4())
        self.store.put(store_kind, op_id, {"name": op_id, "status": "Succeeded", "startTime": utc_now_iso()})
        base = f"{self.app.origin(ctx.request)}/subscriptions/{scope.subscription}/providers/{provider}"
        version = urllib.parse.quote(ctx.request.q("api-version") or "")
        status = f"{base}/locations/{location}/{status_segment}/{op_id}?api-version={version}"
        result = f"{base}/locations/{location}/operationResults/{op_id}?api-version={version}"
        return Response(202, None, {"Azure-AsyncOperation": status, "Location": result, "Retry-After": "1"})

    def _operation(self, op_id: str, kind: str, store_kind: str, not_found: ApiError) -> Response:
        """A stored operation's status (200), or its result (204, the write's own answer having been given)."""
        op = self.store.get(store_kind, op_id.lower())
        if op is None:
            raise not_found
        if kind == "operationresults":
            return Response(204)
        return Response(200, {"name": op["name"], "status": op["status"], "startTime": op["startTime"]})

    def _page(self, ctx: Context, items: list[dict[str, Any]]) -> Response:
        return Response(200, paged(items, ctx.request, self.app.origin(ctx.request), self.app.settings.page_size))


def _validate_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise ApiError(400, "InvalidTag", "Tags must be an object of names to string values.")
    if len(tags) > 50:
        raise ApiError(400, "InvalidTag", "A resource can have at most 50 tags.")
    lowered: set[str] = set()
    for name, value in tags.items():
        if len(name) > 512 or len(str(value)) > 256:
            raise ApiError(
                400,
                "InvalidTagNameOrValue",
                f"The tag name '{name[:40]}' or its value exceeds the allowed length (512 / 256).",
            )
        # ARM refuses these characters (and control characters) in a tag's name; names are compared in any case.
        if set(name) & TAG_NAME_FORBIDDEN or not name.isprintable() or not name:
            raise ApiError(
                400,
                "InvalidTagNameCharacters",
                f"The tag names '{name}' have reserved characters '<,>,%,&,\\,?,/' or control characters.",
            )
        if name.lower() in lowered:
            raise ApiError(400, "InvalidTag", f"The tag name '{name}' is given twice (tag names are case-insensitive).")
        lowered.add(name.lower())
        if value is not None and not isinstance(value, (str, int, float)):
            raise ApiError(400, "InvalidRequestContent", f"The value of tag '{name}' must be a string.")
    return {str(k): str(v) for k, v in tags.items()}


TAG_NAME_FORBIDDEN = frozenset("<>%&\\?/")


def _unsupported(ctx: Context) -> Response:
    raise ApiError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for '{ctx.request.path}' in the sandbox.",
    )
