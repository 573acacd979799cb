"""Azure Resource Manager: the resource types this collection manages, with ARM's semantics."""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

from . import ids, jwt
from .core import ApiError, Context, Request, Response, Route, paged, utc_now_iso

if TYPE_CHECKING:
    from .app import Sandbox

MSI = "microsoft.managedidentity"
AKS = "microsoft.containerservice"
AUTHZ = "microsoft.authorization"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
IDENTITY_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
FIC_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$")
RG_NAME_RE = re.compile(r"^[-\w._()]{1,90}$")
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
FIC_FIELD_MAX = 600


def assignment_record(
    subscription: str,
    scope: str,
    name: str,
    role_guid: str,
    principal_id: str,
    principal_type: str,
    condition: str | None,
    condition_version: str | None,
    description: str | None,
    created_by: str,
) -> dict[str, Any]:
    now = utc_now_iso()
    return {
        "scope": scope,
        "scope_key": ids.norm(scope),
        "name": name,
        "role_guid": role_guid.lower(),
        "principal_id": principal_id,
        "principal_type": principal_type,
        "condition": condition,
        "condition_version": condition_version,
        "description": description,
        "created_on": now,
        "updated_on": now,
        "created_by": created_by,
        "updated_by": created_by,
        "subscription": subscription,
    }


def role_definition_id(record: dict[str, Any]) -> str:
    scope = ids.parse_scope(record["scope"])
    prefix = "" if scope.kind in ("managementGroup", "root") else f"/subscriptions/{record['subscription']}"
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{record['role_guid']}"


def assignment_body(record: dict[str, Any]) -> dict[str, Any]:
    scope = "/" if record["scope_key"] == "/" else record["scope"]
    return {
        "properties": {
            "roleDefinitionId": role_definition_id(record),
            "principalId": record["principal_id"],
            "principalType": record["principal_type"],
            "scope": scope,
            "condition": record["condition"],
            "conditionVersion": record["condition_version"],
            "createdOn": record["created_on"],
            "updatedOn": record["updated_on"],
            "createdBy": record["created_by"],
            "updatedBy": record["updated_by"],
            "delegatedManagedIdentityResourceId": None,
            "description": record["description"],
        },
        "id": f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{record['name']}",
        "type": "Microsoft.Authorization/roleAssignments",
        "name": record["name"],
    }


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


class ArmApi:
    def __init__(self, app: Sandbox) -> None:
        self.app = app
        self.store = app.store
        self._fic_busy: dict[str, float] = {}
        self._fic_lock = threading.Lock()

    # -- routing -----------------------------------------------------------------------------------
    def route(self, request: Request, segs: list[str], low: list[str]) -> Route | None:
        m = request.method
        sub = segs[1] if len(segs) > 1 and low[0] == "subscriptions" else None
        if low[:2] == ["metadata", "endpoints"]:
            return Route("metadata.get", "metadata", self.metadata_endpoints)
        if low == ["subscriptions"]:
            return Route("subscriptions.list", "arm", self.list_subscriptions)
        if low == ["tenants"]:
            return Route("tenants.list", "arm", self.list_tenants)
        if low and low[0] not in ("subscriptions", "providers"):
            return None
        # {scope}/providers/Microsoft.Authorization/...: the last such pair wins
        for i in range(len(low) - 2, -1, -1):
            if low[i] == "providers" and low[i + 1] == AUTHZ:
                return self._authz_route(request, segs[:i], segs[i + 2 :], sub)
        if len(low) == 2:
            return Route("subscriptions.get", "arm", lambda c: self.get_subscription(c, segs[1]), sub)
        if len(low) == 3 and low[2] == "resourcegroups":
            return Route("resourceGroups.list", "arm", lambda c: self.list_resource_groups(c, segs[1]), sub)
        if len(low) == 4 and low[2] == "resourcegroups":
            verb = {"PUT": "put", "GET": "get", "HEAD": "head", "DELETE": "delete", "PATCH": "patch"}.get(m, "")
            return Route(
                f"resourceGroups.{verb or 'unsupported'}",
                "arm",
                lambda c: self.resource_group(c, segs[1], segs[3]),
                sub,
            )
        if len(low) == 4 and low[2] == "operationresults":
            return Route("operationResults.get", "arm", lambda c: Response(200, None), sub)
        if len(low) == 5 and low[2] == "providers" and low[3] == MSI and low[4] == "userassignedidentities":
            return Route("userAssignedIdentities.list", "arm", lambda c: self.list_identities(c, segs[1], None), sub)
        if len(low) == 5 and low[2] == "providers" and low[3] == AKS and low[4] == "managedclusters":
            return Route("managedClusters.list", "arm", lambda c: self.list_clusters(c, segs[1], None), sub)
        if (
            len(low) == 8
            and low[2:4] == ["providers", AKS]
            and low[4] == "locations"
            and low[6] in ("operations", "operationresults")
        ):
            kind = "operations" if low[6] == "operations" else "operationResults"
            return Route(f"{kind}.get", "arm", lambda c: self.operation_status(c, segs[7], low[6]), sub)
        if len(low) >= 7 and low[2] == "resourcegroups" and low[4] == "providers":
            return self._provider_route(request, segs, low, sub)
        return None

    def _authz_route(self, request: Request, scope_segs: list[str], rest: list[str], sub: str | None) -> Route:
        kind = rest[0].lower() if rest else ""
        m = request.method
        if kind == "roleassignments" and len(rest) == 1:
            return Route("roleAssignments.list", "arm", lambda c: self.list_assignments(c, scope_segs), sub)
        if kind == "roleassignments" and len(rest) == 2:
            verb = {"GET": "get", "PUT": "put", "DELETE": "delete"}.get(m, "unsupported")
            return Route(f"roleAssignments.{verb}", "arm", lambda c: self.assignment(c, scope_segs, rest[1]), sub)
        if kind == "roledefinitions" and len(rest) == 1:
            return Route("roleDefinitions.list", "arm", lambda c: self.list_definitions(c, scope_segs), sub)
        if kind == "roledefinitions" and len(rest) == 2:
            verb = {"GET": "get", "PUT": "put", "DELETE": "delete"}.get(m, "unsupported")
            return Route(f"roleDefinitions.{verb}", "arm", lambda c: self.definition(c, scope_segs, rest[1]), sub)
        if kind == "permissions" and len(rest) == 1:
            return Route("permissions.list", "arm", lambda c: self.permissions(c, scope_segs), sub)
        return Route("authorization.unsupported", "arm", _unsupported, sub)

    def _provider_route(self, request: Request, segs: list[str], low: list[str], sub: str | None) -> Route:
        m = request.method
        verb = {"PUT": "put", "GET": "get", "DELETE": "delete", "PATCH": "patch", "POST": "post"}.get(m, "unsupported")
        ns, rest = low[5], low[6:]
        rid_segs = segs
        if ns == MSI and rest[0] == "userassignedidentities":
            if len(rest) == 1:
                return Route(
                    "userAssignedIdentities.list", "arm", lambda c: self.list_identities(c, segs[1], segs[3]), sub
                )
            if len(rest) == 2:
                return Route(f"userAssignedIdentities.{verb}", "arm", lambda c: self.identity(c, rid_segs), sub)
            if len(rest) == 3 and rest[2] == "federatedidentitycredentials":
                return Route("federatedIdentityCredentials.list", "arm", lambda c: self.list_fics(c, segs[:8]), sub)
            if len(rest) == 4 and rest[2] == "federatedidentitycredentials":
                return Route(f"federatedIdentityCredentials.{verb}", "arm", lambda c: self.fic(c, segs), sub)
        if ns == AKS and rest[0] == "managedclusters":
            if len(rest) == 1:
                return Route("managedClusters.list", "arm", lambda c: self.list_clusters(c, segs[1], segs[3]), sub)
            if len(rest) == 2:
                return Route(f"managedClusters.{verb}", "arm", lambda c: self.cluster(c, segs), sub)
            if len(rest) == 3 and m == "POST":
                return Route(f"managedClusters.{rest[2]}", "arm", lambda c: self.cluster_action(c, segs), sub)
        if len(rest) >= 2 and len(rest) % 2 == 0:
            return Route(f"genericResources.{verb}", "arm", lambda c: self.generic(c, segs), sub)
        return Route("provider.unsupported", "arm", _unsupported, sub)

    # -- helpers ---------------------------------------------------------------------------------------
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

    def _page(self, ctx: Context, items: list[dict[str, Any]]) -> Response:
        return Response(200, paged(items, ctx.request, self.app.base_url, self.app.settings.page_size))

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
            "microsoftGraphResourceId": "https://graph.microsoft.com/",
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
                    f"{self.app.base_url}/subscriptions/{sub}/operationresults/{token}"
                    f"?api-version={ctx.request.q('api-version')}"
                )
                return Response(202, None, {"Location": location, "Retry-After": "1"})
            body = ctx.request.json_object()
            if method == "PATCH":
                if existing is None:
                    raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
                new = copy.deepcopy(existing["body"])
                if "tags" in body:
                    new["tags"] = body["tags"] or {}
                self.store.put("resourceGroup", key, {"body": new})
                return Response(200, new)
            if not RG_NAME_RE.match(rg) or rg.endswith("."):
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
                "tags": body.get("tags") or {},
                "properties": {"provisioningState": "Succeeded"},
            }
            if body.get("managedBy"):
                new["managedBy"] = body["managedBy"]
            self.store.put("resourceGroup", key, {"body": new})
            return Response(200 if existing else 201, new)

    def _delete_under(self, key: str) -> None:
        """Delete a resource group or resource and everything in it, with the role assignments on it."""
        with self.store.transaction():
            for kind in ("resourceGroup", "identity", "fic", "cluster", "generic", "roleAssignment"):
                for k, record in list(self.store.all(kind).items()):
                    target = record["scope_key"] if kind == "roleAssignment" else k
                    if ids.is_at_or_below(target, key):
                        if kind == "identity":
                            self._drop_principal(record)
                        if kind == "cluster":
                            self.app.release_kube(k, record)
                        self.store.delete(kind, k)

    def _drop_principal(self, identity: dict[str, Any]) -> None:
        self.store.delete("principal", "principal/" + identity["body"]["properties"]["principalId"])

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
            if not IDENTITY_NAME_RE.match(name):
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
                self.store.put(
                    "principal",
                    "principal/" + principal_id,
                    {
                        "principal_id": principal_id,
                        "app_id": client_id,
                        "type": "ServicePrincipal",
                        "display_name": name,
                        "identity_key": key,
                        "created_at": time.time(),
                    },
                )
            return Response(201, new)

    @staticmethod
    def _not_found(rtype: str, name: str, rg: str) -> ApiError:
        return ApiError(
            404,
            "ResourceNotFound",
            f"The Resource '{rtype}/{name}' under resource group '{rg}' was not "
            "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )

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
        if not FIC_NAME_RE.match(name):
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
        def __init__(self, api: ArmApi, identity_key: str) -> None:
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

    def _fic_write(self, identity_key: str) -> ArmApi._FicWrite:
        return ArmApi._FicWrite(self, identity_key)

    # -- role definitions --------------------------------------------------------------------------------
    def _definition_body(self, scope: ids.Scope, guid: str, props: dict[str, Any]) -> dict[str, Any]:
        prefix = "" if scope.kind == "root" else scope.raw
        return {
            "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "type": "Microsoft.Authorization/roleDefinitions",
            "name": guid,
            "properties": props,
        }

    def visible_definitions(self, scope: ids.Scope) -> dict[str, dict[str, Any]]:
        """Role definitions assignable at ``scope``: built-ins and custom roles scoped at or above it."""
        chain = set(ids.chain(scope, self.app.management_groups_of()))
        found = dict(self.app.builtin_roles)
        for guid, record in self.store.all("roleDefinition").items():
            if any(ids.norm(s) in chain for s in record["properties"]["assignableScopes"]):
                found[guid] = record["properties"]
        return found

    def list_definitions(self, ctx: Context, scope_segs: list[str]) -> Response:
        scope = _scope(scope_segs)
        self._require_scope_exists(scope)
        self.app.authorize(ctx, "Microsoft.Authorization/roleDefinitions/read", scope)
        filt = _parse_filter(ctx.request.q("$filter"))
        items = []
        for guid, props in sorted(self.visible_definitions(scope).items(), key=lambda kv: kv[1]["roleName"]):
            if "roleName" in filt and props["roleName"].lower() != str(filt["roleName"]).lower():
                continue
            if "type" in filt and props["type"].lower() != str(filt["type"]).lower():
                continue
            items.append(self._definition_body(scope, guid, props))
        return Response(200, {"value": items})

    def definition(self, ctx: Context, scope_segs: list[str], guid: str) -> Response:
        method = ctx.request.method
        scope = _scope(scope_segs)
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.Authorization/roleDefinitions/{action}", scope)
        guid = guid.lower()
        with self.store.lock:
            if method == "GET":
                props = self.visible_definitions(scope).get(guid)
                if props is None:
                    raise ApiError(
                        404,
                        "RoleDefinitionDoesNotExist",
                        f"The specified role definition with ID '{guid}' does not exist.",
                    )
                return Response(200, self._definition_body(scope, guid, props))
            if guid in self.app.builtin_roles:
                raise ApiError(403, "AuthorizationFailed", "Built-in role definitions cannot be changed.")
            existing = self.store.get("roleDefinition", guid)
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                if any(r["role_guid"] == guid for r in self.store.all("roleAssignment").values()):
                    raise ApiError(
                        409,
                        "RoleDefinitionHasAssignments",
                        "There are existing role assignments referencing role; delete them first.",
                    )
                self.store.delete("roleDefinition", guid)
                return Response(200, self._definition_body(scope, guid, existing["properties"]))
            if not ids.is_guid(guid):
                raise ApiError(400, "InvalidRoleDefinitionId", f"The role definition ID '{guid}' is not a GUID.")
            props = ctx.request.json_object().get("properties") or {}
            role_name = props.get("roleName")
            if not role_name:
                raise ApiError(
                    400, "RoleDefinitionNameNullOrEmpty", "The role definition name cannot be null or empty."
                )
            assignable = props.get("assignableScopes") or []
            if not assignable:
                raise ApiError(400, "MissingAssignableScopes", "The role definition must have assignable scopes.")
            for raw in assignable:
                try:
                    target = ids.parse_scope(raw)
                except ids.InvalidScope as exc:
                    raise ApiError(400, "InvalidAssignableScope", str(exc)) from exc
                self._require_scope_exists(target)
                self.app.authorize(ctx, "Microsoft.Authorization/roleDefinitions/write", target)
            for other_guid, other in {
                **self.app.builtin_roles,
                **{g: r["properties"] for g, r in self.store.all("roleDefinition").items()},
            }.items():
                if other_guid != guid and other["roleName"].lower() == str(role_name).lower():
                    raise ApiError(
                        409,
                        "RoleDefinitionWithSameNameExists",
                        f"A role definition cannot be updated with a name that already exists: '{role_name}'.",
                    )
            now = utc_now_iso()
            new = {
                "roleName": role_name,
                "type": "CustomRole",
                "description": props.get("description") or "",
                "assignableScopes": list(assignable),
                "permissions": [
                    {
                        "actions": list(p.get("actions") or []),
                        "notActions": list(p.get("notActions") or []),
                        "dataActions": list(p.get("dataActions") or []),
                        "notDataActions": list(p.get("notDataActions") or []),
                    }
                    for p in props.get("permissions") or []
                ],
                "createdOn": existing["properties"]["createdOn"] if existing else now,
                "updatedOn": now,
                "createdBy": ctx.caller.principal_id if ctx.caller else None,
                "updatedBy": ctx.caller.principal_id if ctx.caller else None,
            }
            self.store.put("roleDefinition", guid, {"properties": new})
            return Response(201, self._definition_body(scope, guid, new))

    # -- role assignments --------------------------------------------------------------------------------
    def list_assignments(self, ctx: Context, scope_segs: list[str]) -> Response:
        scope = _scope(scope_segs)
        self._require_scope_exists(scope)
        self.app.authorize(ctx, "Microsoft.Authorization/roleAssignments/read", scope)
        filt = _parse_filter(ctx.request.q("$filter"))
        chain = set(ids.chain(scope, self.app.management_groups_of()))
        principal = filt.get("principalId") or filt.get("assignedTo")
        items = []
        for record in self.store.all("roleAssignment").values():
            at_or_above = record["scope_key"] in chain
            below = ids.is_at_or_below(record["scope_key"], scope.key) and record["scope_key"] != scope.key
            if not (at_or_above or (below and not filt.get("atScope"))):
                continue
            if principal and record["principal_id"].lower() != str(principal).lower():
                continue
            if "roleDefinitionId" in filt and not str(filt["roleDefinitionId"]).lower().endswith(record["role_guid"]):
                continue
            items.append(assignment_body(record))
        items.sort(key=lambda b: b["id"].lower())
        # ARM pages role assignments only on provider-level calls ($skipToken, per the REST reference):
        # a list at a scope comes back whole.
        return Response(200, {"value": items})

    def assignment(self, ctx: Context, scope_segs: list[str], name: str) -> Response:
        method = ctx.request.method
        scope = _scope(scope_segs)
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.Authorization/roleAssignments/{action}", scope)
        key = ids.norm(f"{scope.raw}/providers/Microsoft.Authorization/roleAssignments/{name}")
        if method == "GET":
            record = self.store.get("roleAssignment", key)
            if record is None:
                raise ApiError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
            return Response(200, assignment_body(record))
        if method == "DELETE":
            with self.store.lock:
                record = self.store.delete("roleAssignment", key)
            return Response(200, assignment_body(record)) if record else Response(204)
        return self._create_assignment(ctx, scope, name, key)

    def _create_assignment(self, ctx: Context, scope: ids.Scope, name: str, key: str) -> Response:
        if not ids.is_guid(name):
            raise ApiError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        props = ctx.request.json_object().get("properties")
        if not isinstance(props, dict):
            raise ApiError(400, "InvalidRequestContent", "The request content must contain 'properties'.")
        role_id, principal_id = props.get("roleDefinitionId"), props.get("principalId")
        if not role_id or not principal_id:
            raise ApiError(400, "InvalidRequestContent", "Both 'roleDefinitionId' and 'principalId' are required.")
        role_guid = str(role_id).rstrip("/").rsplit("/", 1)[-1].lower()
        principal_type = props.get("principalType")
        if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
            raise ApiError(400, "InvalidPrincipalType", f"The principal type '{principal_type}' is not valid.")
        condition, condition_version = props.get("condition"), props.get("conditionVersion")
        if condition_version is not None and not condition:
            raise ApiError(400, "InvalidConditionVersion", "A condition version was given without a condition.")
        if condition and condition_version is None:
            condition_version = "2.0"
        if condition and condition_version != "2.0":
            raise ApiError(
                400, "InvalidConditionVersion", f"Condition version '{condition_version}' is not supported; use '2.0'."
            )
        self._require_scope_exists(scope)
        if not ids.is_guid(role_guid) or role_guid not in self.visible_definitions(scope):
            raise ApiError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role_guid}' does not exist.",
            )
        now = time.time()
        with self.store.lock:
            principal = self.store.get("principal", f"principal/{principal_id}")
            young = (
                principal is not None
                and now - principal["created_at"] < self.app.settings.principal_replication_seconds
            )
            if principal is None or (young and principal_type != "ServicePrincipal"):
                raise ApiError(
                    400,
                    "PrincipalNotFound",
                    f"Principal {str(principal_id).replace('-', '')} does not exist in the directory "
                    f"{self.app.tenant_id}. Check that you have the correct principal ID. If you are "
                    "creating this principal and then immediately assigning a role, this error might be "
                    "related to a replication delay. In this case, set the role assignment principalType "
                    "property to a value, such as ServicePrincipal, User, or Group.  See "
                    "https://aka.ms/docs-principaltype",
                )
            if principal_type is not None and principal_type != principal["type"]:
                raise ApiError(
                    400,
                    "UnmatchedPrincipalType",
                    f"The PrincipalId '{principal_id}' has type '{principal['type']}' , which is different "
                    f"from specified PrincipalType '{principal_type}'.",
                )
            existing = self.store.get("roleAssignment", key)
            if existing is not None:
                if existing["principal_id"] != principal_id or existing["role_guid"] != role_guid:
                    raise ApiError(
                        409,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                updated = dict(existing)
                description = props.get("description")
                if (condition, condition_version, description) != (
                    existing["condition"],
                    existing["condition_version"],
                    existing["description"],
                ):
                    updated.update(
                        condition=condition,
                        condition_version=condition_version,
                        description=description,
                        updated_on=utc_now_iso(),
                        updated_by=ctx.caller.principal_id if ctx.caller else None,
                    )
                    self.store.put("roleAssignment", key, updated)
                return Response(201, assignment_body(updated))
            for other_key, other in self.store.all("roleAssignment").items():
                if (
                    other["scope_key"] == scope.key
                    and other["principal_id"] == principal_id
                    and other["role_guid"] == role_guid
                    and other_key != key
                ):
                    raise ApiError(
                        409,
                        "RoleAssignmentExists",
                        f"The role assignment already exists. The ID of the existing role assignment is "
                        f"{other['name'].replace('-', '')}.",
                    )
            sub = scope.subscription or self.app.subscription_id
            in_sub = sum(
                1 for r in self.store.all("roleAssignment").values() if r["subscription"].lower() == sub.lower()
            )
            if in_sub >= self.app.settings.role_assignment_limit:
                raise ApiError(
                    400,
                    "RoleAssignmentLimitExceeded",
                    f"No more role assignments can be created under the current scope. The limit of "
                    f"{self.app.settings.role_assignment_limit} role assignments per subscription has "
                    "been reached.",
                )
            record = assignment_record(
                sub,
                scope.raw,
                name.lower(),
                role_guid,
                str(principal_id),
                principal_type or principal["type"],
                condition,
                condition_version,
                props.get("description"),
                ctx.caller.principal_id if ctx.caller else "",
            )
            self.store.put("roleAssignment", key, record)
            return Response(201, assignment_body(record))

    def permissions(self, ctx: Context, scope_segs: list[str]) -> Response:
        scope = _scope(scope_segs)
        self._require_scope_exists(scope)
        assert ctx.caller is not None
        value = []
        for record in self.app.assignments_applying(scope, ctx.caller.principal_id):
            role = self.app.role_definition(record["role_guid"])
            if role:
                value.extend(copy.deepcopy(role["permissions"]))
        return Response(200, {"value": value})

    # -- AKS managed clusters -----------------------------------------------------------------------------
    def list_clusters(self, ctx: Context, sub: str, rg: str | None) -> Response:
        if rg is None:
            self._require_subscription(sub)
            scope = ids.parse_scope(f"/subscriptions/{sub}")
        else:
            self._require_rg(sub, rg)
            scope = ids.parse_scope(f"/subscriptions/{sub}/resourceGroups/{rg}")
        self.app.authorize(ctx, "Microsoft.ContainerService/managedClusters/read", scope)
        prefix = scope.key + "/"
        items = []
        for key in sorted(self.store.all("cluster")):
            if key.startswith(prefix):
                record = self._settle(key)
                if record is not None:
                    items.append(record["body"])
        return self._page(ctx, items)

    def _settle(self, key: str) -> dict[str, Any] | None:
        """Apply a finished long-running operation to the cluster (lazily, when next looked at)."""
        with self.store.lock:
            record = self.store.get("cluster", key)
            if record is None or not record.get("operation"):
                return record
            op = self.store.get("operation", record["operation"])
            if op is None or op["completes_at"] > time.time():
                return record
            with self.store.transaction():
                op = {**op, "status": "Succeeded", "endTime": utc_now_iso()}
                self.store.put("operation", op["name"], op)
                if op["action"] == "delete":
                    self.app.release_kube(key, self.store.delete("cluster", key))
                    return None
                body = copy.deepcopy(record["body"])
                body["properties"]["provisioningState"] = "Succeeded"
                record = {
                    **record,
                    "body": body,
                    "operation": None,
                    "published": bool(body["properties"].get("oidcIssuerProfile", {}).get("enabled")),
                }
                self.store.put("cluster", key, record)
            return record

    def operation_status(self, ctx: Context, op_id: str, kind: str) -> Response:
        op = self.store.get("operation", op_id.lower())
        if op is None:
            raise ApiError(404, "NotFound", f"Operation '{op_id}' not found.")
        self._settle(op["cluster_key"])
        op = self.store.get("operation", op_id.lower()) or op
        if kind == "operationresults":
            return Response(202, None, {"Retry-After": "1"}) if op["status"] == "InProgress" else Response(204)
        body = {"name": op["name"], "status": op["status"], "startTime": op["startTime"]}
        if op.get("endTime"):
            body["endTime"] = op["endTime"]
        return Response(200, body, {"Retry-After": "1"} if op["status"] == "InProgress" else {})

    def _start_operation(
        self, ctx: Context, sub: str, location: str, cluster_key: str, action: str
    ) -> tuple[str, dict[str, str]]:
        op_id = str(uuid.uuid4())
        self.store.put(
            "operation",
            op_id,
            {
                "name": op_id,
                "status": "InProgress",
                "startTime": utc_now_iso(),
                "action": action,
                "completes_at": time.time() + self.app.settings.lro_seconds,
                "cluster_key": cluster_key,
            },
        )
        base = f"{self.app.base_url}/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{location}"
        version = urllib.parse.quote(ctx.request.q("api-version") or "2016-03-30")
        headers = {"Azure-AsyncOperation": f"{base}/operations/{op_id}?api-version={version}", "Retry-After": "1"}
        if action == "delete":
            headers["Location"] = f"{base}/operationresults/{op_id}?api-version={version}"
        return op_id, headers

    def cluster(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = _scope(segs)
        sub, rg, name = scope.subscription or "", scope.resource_group or "", scope.names[0]
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.ContainerService/managedClusters/{action}", scope)
        self._require_rg(sub, rg)
        key = scope.key
        with self.store.lock:
            existing = self._settle(key)
            if method == "GET":
                if existing is None:
                    raise self._not_found("Microsoft.ContainerService/managedClusters", name, rg)
                return Response(200, existing["body"])
            if existing is not None and existing.get("operation"):
                state = existing["body"]["properties"]["provisioningState"]
                raise ApiError(
                    409,
                    "OperationNotAllowed",
                    f"Operation is not allowed: Another operation ({state}) is in progress, please wait "
                    "for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation "
                    "for more details",
                )
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                op_id, headers = self._start_operation(ctx, sub, existing["body"]["location"], key, "delete")
                body = copy.deepcopy(existing["body"])
                body["properties"]["provisioningState"] = "Deleting"
                self.store.put("cluster", key, {**existing, "body": body, "operation": op_id})
                return Response(202, None, headers)
            request_body = ctx.request.json_object()
            record = self.build_cluster(sub, rg, name, request_body, existing)
            op_id, headers = self._start_operation(ctx, sub, record["body"]["location"], key, "put")
            record["operation"] = op_id
            record["body"]["properties"]["provisioningState"] = "Updating" if existing else "Creating"
            self.store.put("cluster", key, record)
            return Response(200 if existing else 201, record["body"], headers)

    def build_cluster(
        self, sub: str, rg: str, name: str, request_body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Validate a cluster PUT and merge it with the server-owned fields; AKS's rules for the issuer."""
        location = request_body.get("location")
        if not location:
            raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
        location = str(location).lower().replace(" ", "")
        props = copy.deepcopy(request_body.get("properties") or {})
        if existing is None:
            if not props.get("dnsPrefix") and not props.get("fqdnSubdomain"):
                raise ApiError(400, "InvalidParameter", "DnsPrefix or FqdnSubdomain must be specified.")
            pools = props.get("agentPoolProfiles") or []
            if not any((p or {}).get("mode") == "System" for p in pools):
                raise ApiError(400, "InvalidParameter", "Must define at least one system pool.")
        else:
            old = existing["body"]
            if old["location"] != location:
                raise ApiError(
                    400,
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{old['location']}' in resource "
                    f"group '{rg}'. A resource with the same name cannot be created in location "
                    f"'{location}'. Please select a new resource name.",
                )
            merged = copy.deepcopy(old["properties"])
            merged.update(props)
            props = merged
        was_enabled = bool(existing and existing["body"]["properties"].get("oidcIssuerProfile", {}).get("enabled"))
        oidc = props.get("oidcIssuerProfile") or {}
        if was_enabled and oidc.get("enabled") is False:
            raise ApiError(
                400, "BadRequest", "OIDC issuer feature cannot be disabled once it has been enabled on a cluster."
            )
        enabled = bool(oidc.get("enabled")) or was_enabled
        workload_identity = ((props.get("securityProfile") or {}).get("workloadIdentity") or {}).get("enabled")
        if workload_identity and not enabled:
            raise ApiError(
                400,
                "BadRequest",
                "Enabling workload identity requires enabling OIDC issuer feature (oidcIssuerProfile).",
            )
        issuer_guid = existing["issuer_guid"] if existing else str(uuid.uuid4())
        signing_key = existing["signing_key"] if existing else jwt.private_pem(jwt.new_key())
        issuer_url = f"{self.app.base_url}/{self.app.tenant_id}/{issuer_guid}/"
        props["oidcIssuerProfile"] = {"enabled": enabled, **({"issuerURL": issuer_url} if enabled else {})}
        version = props.get("kubernetesVersion") or "1.30.6"
        dns_prefix = props.get("dnsPrefix") or props.get("fqdnSubdomain")
        digest = hashlib.sha256(f"{sub}/{rg}/{name}".encode()).hexdigest()[:8]
        server = existing["body"]["properties"] if existing else {}
        props.update(
            {
                "kubernetesVersion": version,
                "currentKubernetesVersion": version,
                "fqdn": server.get("fqdn") or f"{dns_prefix}-{digest}.hcp.{location}.azmk8s.io",
                "azurePortalFQDN": server.get("azurePortalFQDN")
                or f"{dns_prefix}-{digest}.portal.hcp.{location}.azmk8s.io",
                "maxAgentPools": 100,
                "powerState": {"code": "Running"},
                "nodeResourceGroup": props.get("nodeResourceGroup") or f"MC_{rg}_{name}_{location}",
                "identityProfile": server.get("identityProfile")
                or {
                    "kubeletidentity": {
                        "resourceId": f"/subscriptions/{sub}/resourcegroups/MC_{rg}_{name}_{location}/providers/"
                        f"{IDENTITY_TYPE}/{name}-agentpool",
                        "clientId": str(uuid.uuid4()),
                        "objectId": str(uuid.uuid4()),
                    }
                },
            }
        )
        for pool in props.get("agentPoolProfiles") or []:
            pool.setdefault("orchestratorVersion", version)
            pool.update(
                {
                    "currentOrchestratorVersion": pool["orchestratorVersion"],
                    "provisioningState": "Succeeded",
                    "powerState": {"code": "Running"},
                    "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202410.15.0",
                }
            )
        identity = (existing["body"].get("identity") if existing else None) or {
            "type": "SystemAssigned",
            "principalId": str(uuid.uuid4()),
            "tenantId": self.app.tenant_id,
        }
        body = {
            "id": f"/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/"
            f"managedClusters/{name}",
            "location": location,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": request_body.get("tags") or {},
            "sku": request_body.get("sku") or {"name": "Base", "tier": "Free"},
            "identity": identity,
            "properties": props,
        }
        return {
            "body": body,
            "issuer_guid": issuer_guid,
            "signing_key": signing_key,
            "published": bool(existing and existing.get("published")),
            "operation": None,
            **({"kube": existing["kube"]} if existing and existing.get("kube") else {}),
        }

    def cluster_action(self, ctx: Context, segs: list[str]) -> Response:
        scope = _scope(segs[:-1])
        action_name = segs[-1]
        self.app.authorize(ctx, f"Microsoft.ContainerService/managedClusters/{action_name}/action", scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        record = self._settle(scope.key)
        if record is None:
            raise self._not_found(
                "Microsoft.ContainerService/managedClusters", scope.names[0], scope.resource_group or ""
            )
        if action_name.lower() not in ("listclusterusercredential", "listclusteradmincredential"):
            raise ApiError(400, "InvalidParameter", f"Action '{action_name}' is not supported by the sandbox.")
        kubeconfig = self.app.control.kubeconfig_for(record)
        if kubeconfig is None:
            raise ApiError(400, "BadRequest", "This sandbox cluster has no Kubernetes API server attached.")
        import base64

        return Response(
            200,
            {
                "kubeconfigs": [
                    {
                        "name": "clusterUser" if "user" in action_name.lower() else "clusterAdmin",
                        "value": base64.b64encode(kubeconfig.encode()).decode(),
                    }
                ]
            },
        )

    # -- any other resource type (storage accounts, key vaults, containers ...) --------------------------
    def generic(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = _scope(segs)
        action = {"GET": "read", "PUT": "write", "DELETE": "delete", "PATCH": "write"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"{scope.resource_type}/{action}", scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        key = scope.key
        with self.store.lock:
            existing = self.store.get("generic", key)
            if method == "GET":
                if existing is None:
                    raise self._not_found(scope.resource_type, "/".join(scope.names), scope.resource_group or "")
                return Response(200, existing["body"])
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                self._delete_under(key)
                return Response(200)
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


def _validate_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise ApiError(400, "InvalidTag", "Tags must be an object of names to string values.")
    if len(tags) > 50:
        raise ApiError(400, "InvalidTag", "A resource can have at most 50 tags.")
    for name, value in tags.items():
        if len(name) > 512 or len(str(value)) > 256:
            raise ApiError(
                400,
                "InvalidTagNameOrValue",
                f"The tag name '{name[:40]}' or its value exceeds the allowed length (512 / 256).",
            )
    return {str(k): str(v) for k, v in tags.items()}


def _unsupported(ctx: Context) -> Response:
    raise ApiError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for '{ctx.request.path}' in the sandbox.",
    )
