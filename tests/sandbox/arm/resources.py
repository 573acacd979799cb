"""ARM: cloud metadata, subscriptions, tenants, resource groups and any other resource type."""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from .. import ids
from ..core import ApiError, Context, Response
from .common import (
    RG_NAME_RE,
    ArmBase,
    _validate_tags,
)

if TYPE_CHECKING:
    pass


class ResourcesProvider(ArmBase):
    # -- metadata, subscriptions, tenants ------------------------------------------------------------
    def metadata_endpoints(self, ctx: Context) -> Response:
        base = self.app.base_url
        cloud = {
            "portal": "https://portal.azure.com",
            "name": "AzureSandbox",
            "authentication": {
                "loginEndpoint": base + "/",
                "audiences": [base + "/", "https://management.azure.com/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": "https://rest.media.azure.net",
            "graphAudience": "https://graph.windows.net/",
            "graph": "https://graph.windows.net/",
            "batch": "https://batch.core.windows.net/",
            "resourceManager": base + "/",
            "vmImageAliasDoc": "",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "microsoftGraphResourceId": self.app.graph.base_url + "/",
            "appInsightsResourceId": "https://api.applicationinsights.io",
            "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
            "attestationResourceId": "https://attest.azure.net",
            "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
            "logAnalyticsResourceId": "https://api.loganalytics.io",
            "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
            "gallery": "https://gallery.azure.com/",
            "suffixes": {
                "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
                "acrLoginServer": "azurecr.io",
                "sqlServerHostname": "database.windows.net",
                "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "keyVaultDns": "vault.azure.net",
                "storage": "core.windows.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "storageSyncEndpointSuffix": "afs.azure.net",
                "mhsmDns": "managedhsm.azure.net",
                "mysqlServerEndpoint": "mysql.database.azure.com",
                "postgresqlServerEndpoint": "postgres.database.azure.com",
                "attestationEndpoint": "attest.azure.net",
                "synapseAnalytics": "dev.azuresynapse.net",
            },
        }
        version = ctx.request.q("api-version") or ""
        # 2022-09-01 (what `az cloud register` asks for) describes this cloud alone; the older
        # form (ARM_CLOUD_METADATA_URL) is the list of all clouds.
        return Response(200, cloud if version >= "2022-09-01" else [cloud])

    def _visible_subscriptions(self, ctx: Context) -> list[dict[str, Any]]:
        assert ctx.caller is not None
        result = []
        for record in self.store.all("subscription").values():
            sub_key = ids.norm(record["id"])
            for ra in self.store.all("roleAssignment").values():
                if ra["principal_id"] == ctx.caller.principal_id and (
                    ids.is_at_or_below(ra["scope_key"], sub_key)
                    or ra["scope_key"] in ids.chain(ids.parse_scope(record["id"]), self.app.management_groups_of())
                ):
                    result.append(record)
                    break
        return result

    def list_subscriptions(self, ctx: Context) -> Response:
        return self._page(ctx, self._visible_subscriptions(ctx))

    def get_subscription(self, ctx: Context, sub: str) -> Response:
        for record in self._visible_subscriptions(ctx):
            if record["subscriptionId"].lower() == sub.lower():
                return Response(200, record)
        raise ApiError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def list_tenants(self, ctx: Context) -> Response:
        tid = self.app.tenant_id
        return Response(
            200,
            {
                "value": [
                    {
                        "id": f"/tenants/{tid}",
                        "tenantId": tid,
                        "tenantCategory": "Home",
                        "displayName": "Sandbox",
                        "defaultDomain": "sandbox.onmicrosoft.com",
                        "tenantType": "AAD",
                        "domains": ["sandbox.onmicrosoft.com"],
                    }
                ]
            },
        )

    # -- resource groups -------------------------------------------------------------------------------
    def list_resource_groups(self, ctx: Context, sub: str) -> Response:
        self._require_subscription(sub)
        scope = ids.parse_scope(f"/subscriptions/{sub}")
        self.app.authorize(ctx, "Microsoft.Resources/subscriptions/resourceGroups/read", scope)
        prefix = ids.norm(f"/subscriptions/{sub}/resourceGroups") + "/"
        items = [r["body"] for k, r in sorted(self.store.all("resourceGroup").items()) if k.startswith(prefix)]
        return self._page(ctx, items)

    def resource_group(self, ctx: Context, sub: str, rg: str) -> Response:
        method = ctx.request.method
        scope = ids.parse_scope(f"/subscriptions/{sub}/resourceGroups/{rg}")
        key = scope.key
        action = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self._require_subscription(sub)
        self.app.authorize(ctx, f"Microsoft.Resources/subscriptions/resourceGroups/{action}", scope)
        with self.store.lock:
            existing = self.store.get("resourceGroup", key)
            if method in ("GET", "HEAD"):
                if existing is None:
                    if method == "HEAD":
                        return Response(404)
                    raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
                return Response(204) if method == "HEAD" else Response(200, existing["body"])
            if method == "DELETE":
                if existing is None:
                    raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
                self._delete_under(key)
                token = uuid.uuid4().hex
                location = (
                    f"{self.app.origin(ctx.request)}/subscriptions/{sub}/operationresults/{token}"
                    f"?api-version={ctx.request.q('api-version')}"
                )
                return Response(202, None, {"Location": location, "Retry-After": "1"})
            body = ctx.request.json_object()
            if method == "PATCH":
                if existing is None:
                    raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
                new = copy.deepcopy(existing["body"])
                if "tags" in body:
                    new["tags"] = _validate_tags(body["tags"] or {})
                self.store.put("resourceGroup", key, {"body": new})
                return Response(200, new)
            if not RG_NAME_RE.fullmatch(rg) or rg.endswith("."):
                raise ApiError(
                    400,
                    "InvalidResourceGroupName",
                    f"The resource group name '{rg}' is invalid. It can include alphanumeric, underscore, "
                    "parentheses, hyphen, period (except at end), and Unicode characters.",
                )
            location = str(body.get("location") or "")
            if not location:
                raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
            if existing is not None and existing["body"]["location"].lower() != location.lower():
                raise ApiError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group already exists in "
                    f"location '{existing['body']['location']}'.",
                )
            name = existing["body"]["name"] if existing else rg
            new = {
                "id": f"/subscriptions/{sub}/resourceGroups/{name}",
                "name": name,
                "type": "Microsoft.Resources/resourceGroups",
                "location": str(location).lower().replace(" ", ""),
                "tags": _validate_tags(body.get("tags") or {}),
                "properties": {"provisioningState": "Succeeded"},
            }
            if body.get("managedBy"):
                new["managedBy"] = body["managedBy"]
            self.store.put("resourceGroup", key, {"body": new})
            return Response(200 if existing else 201, new)

    # -- any other resource type (storage accounts, key vaults, containers ...) --------------------------
    def generic(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = self._authorized(ctx, segs)
        key = scope.key
        with self.store.lock:
            existing = self.store.get("generic", key)
            answered = self._read_or_delete(ctx, scope, existing, lambda: Response(200))
            if answered is not None:
                return answered
            parent = scope.parent()
            if parent is not None and parent.kind == "resource" and self.find_resource(parent.key) is None:
                raise ApiError(
                    404,
                    "ParentResourceNotFound",
                    f"Can not perform requested operation on nested resource. Parent resource "
                    f"'{'/'.join(parent.names)}' not found.",
                )
            body = ctx.request.json_object()
            new = copy.deepcopy(existing["body"]) if existing else {}
            if method == "PATCH" and existing is None:
                raise self._not_found(scope.resource_type, "/".join(scope.names), scope.resource_group or "")
            new.update({k: v for k, v in body.items() if k not in ("id", "name", "type")})
            new.update({"id": scope.raw, "name": scope.names[-1], "type": scope.resource_type})
            if "location" in new:
                new["location"] = str(new["location"]).lower().replace(" ", "")
            self.store.put("generic", key, {"body": new})
            return Response(200 if existing else 201, new)

    # -- the Tags API at a scope ----------------------------------------------------------------------
    def tags_at_scope(self, ctx: Context, scope_segs: list[str]) -> Response:
        """``{scope}/providers/Microsoft.Resources/tags/default`` (Tags_GetAtScope, _CreateOrUpdateAtScope,
        _UpdateAtScope, _DeleteAtScope) on a subscription, a resource group or a resource: the tags alone, changed
        atomically. PATCH's ``operation``: ``Merge`` adds or updates the given names, ``Replace`` sets them whole,
        ``Delete`` removes the given names (a given non-empty value must match the tag's). Concurrent writers of
        different names all win, as with ARM; a PUT of the whole resource is a read-modify-write that can lose one.
        (A subscription's own tags are not emulated.)
        """
        method = ctx.request.method
        scope = _tag_scope(scope_segs)
        action = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.Resources/tags/{action}", scope)
        with self.store.lock:
            kind, key, record = self._tagged(scope)
            tags = dict(record["body"].get("tags") or {})
            if method != "GET":
                body = ctx.request.json_object() if method != "DELETE" else {}
                given = _validate_tags(((body.get("properties") or {}).get("tags")) or {})
                operation = str(body.get("operation") or ("Replace" if method == "PUT" else "")).lower()
                if method == "DELETE":
                    tags = {}
                elif operation == "replace":
                    tags = given
                elif operation == "merge":
                    tags = {**{k: v for k, v in tags.items() if k.lower() not in {g.lower() for g in given}}, **given}
                elif operation == "delete":
                    tags = {k: v for k, v in tags.items() if not _deleted(k, v, given)}
                else:
                    raise ApiError(
                        400, "InvalidRequestContent", "The 'operation' must be one of Merge, Replace or Delete."
                    )
                if len(tags) > 50:
                    raise ApiError(400, "InvalidTag", f"A resource can have at most 50 tags ({len(tags)} given).")
                self.store.put(kind, key, {**record, "body": {**record["body"], "tags": tags}})
        if method == "DELETE":
            return Response(200, None)
        return Response(
            200,
            {
                "id": f"{scope.raw.rstrip('/')}/providers/Microsoft.Resources/tags/default",
                "name": "default",
                "type": "Microsoft.Resources/tags",
                "properties": {"tags": tags},
            },
        )

    def _tagged(self, scope: ids.Scope) -> tuple[str, str, dict[str, Any]]:
        """The stored record a scope's tags live in: (kind, key, record); ARM's 404 when there is none."""
        if scope.kind == "resourceGroup":
            return "resourceGroup", scope.key, self._require_rg(scope.subscription or "", scope.resource_group or "")
        if scope.kind != "resource":
            raise ApiError(400, "InvalidScope", f"Tags are kept on resources and resource groups here, not {scope.raw}")
        self._require_scope_exists(scope)
        for kind in ("identity", "cluster", "generic"):
            found = self.store.get(kind, scope.key)
            if found is not None:
                return kind, scope.key, found
        raise self._not_found(scope.resource_type or "", "/".join(scope.names), scope.resource_group or "")


def _tag_scope(segs: list[str]) -> ids.Scope:
    try:
        return ids.parse_scope("/" + "/".join(segs))
    except ids.InvalidScope as exc:
        raise ApiError(400, "InvalidScope", str(exc)) from exc


def _deleted(name: str, value: str, given: dict[str, str]) -> bool:
    """Whether Delete takes this tag: its name given (in any case), with no value or the same value."""
    wanted = next((v for k, v in given.items() if k.lower() == name.lower()), None)
    return wanted is not None and (wanted == "" or wanted == value)
