"""Azure Resource Manager: the resource types this collection manages, with ARM's semantics.

One provider per file, combined here behind one route table:

- ``resources.py``: cloud metadata, subscriptions, tenants, resource groups, generic resources
- ``identities.py``: Microsoft.ManagedIdentity (identities, federated credentials)
- ``authorization.py``: Microsoft.Authorization (role definitions, role assignments, permissions)
- ``clusters.py``: Microsoft.ContainerService (managed clusters, long-running operations)
- ``keyvault.py``: Microsoft.KeyVault (vaults, their access policies)
- ``cosmos.py``: Microsoft.DocumentDB (Cosmos DB accounts, databases, containers, SQL role definitions and assignments)
- ``postgres.py``: Microsoft.DBforPostgreSQL (flexible servers, their databases and Microsoft Entra administrators)
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .. import jwt
from ..core import ApiError, Caller, Request, Response, Route
from .authorization import AuthorizationProvider, assignment_body, assignment_record, role_definition_id
from .clusters import ClustersProvider
from .common import AKS, AUTHZ, COSMOS, KEYVAULT, MSI, POSTGRES, _unsupported
from .cosmos import CosmosProvider
from .identities import IdentitiesProvider
from .keyvault import KeyVaultProvider
from .postgres import PostgresProvider
from .resources import ResourcesProvider

if TYPE_CHECKING:
    from ..app import Sandbox

__all__ = ["ArmApi", "assignment_body", "assignment_record", "role_definition_id"]


class ArmApi(
    ResourcesProvider,
    IdentitiesProvider,
    AuthorizationProvider,
    ClustersProvider,
    KeyVaultProvider,
    CosmosProvider,
    PostgresProvider,
):
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
        # {scope}/providers/Microsoft.Resources/tags/default: the Tags API at any scope
        if len(low) >= 4 and low[-4:] == ["providers", "microsoft.resources", "tags", "default"]:
            verb = {"GET": "get", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}.get(m, "unsupported")
            return Route(f"tags.{verb}", "arm", lambda c: self.tags_at_scope(c, segs[:-4]), sub)
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
        if len(low) == 5 and low[2] == "providers" and low[3] == KEYVAULT and low[4] == "vaults":
            return Route("vaults.list", "arm", lambda c: self.list_vaults(c, segs[1], None), sub)
        if len(low) == 5 and low[2] == "providers" and low[3] == AKS and low[4] == "managedclusters":
            return Route("managedClusters.list", "arm", lambda c: self.list_clusters(c, segs[1], None), sub)
        if len(low) == 5 and low[2] == "providers" and low[3] == COSMOS and low[4] == "databaseaccounts":
            return Route("databaseAccounts.list", "arm", lambda c: self.list_cosmos_accounts(c, segs[1], None), sub)
        if len(low) == 5 and low[2] == "providers" and low[3] == POSTGRES and low[4] == "flexibleservers":
            return Route("flexibleServers.list", "arm", lambda c: self.list_postgres_servers(c, segs[1], None), sub)
        # Long-running operations, per provider: its status segment, and the names of its status and result reads.
        operations = {
            AKS: ("operations", "operations.get", "operationResults.get"),
            COSMOS: ("operationsstatus", "cosmos.operationsStatus.get", "cosmos.operationResults.get"),
            POSTGRES: ("azureasyncoperation", "postgres.azureAsyncOperation.get", "postgres.operationResults.get"),
        }
        if len(low) == 8 and low[2] == "providers" and low[3] in operations and low[4] == "locations":
            status, status_name, result_name = operations[low[3]]
            handler = {AKS: self.operation_status, COSMOS: self.cosmos_operation}.get(low[3], self.postgres_operation)
            if low[6] in (status, "operationresults"):
                name = status_name if low[6] == status else result_name
                return Route(name, "arm", lambda c: handler(c, segs[7], low[6]), sub)
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
        if ns == COSMOS and rest[0] == "databaseaccounts" and len(rest) == 1:
            return Route("databaseAccounts.list", "arm", lambda c: self.list_cosmos_accounts(c, segs[1], segs[3]), sub)
        if ns == COSMOS and rest[0] == "databaseaccounts" and len(rest) >= 2:
            return self._cosmos_route(request, segs, rest, verb, sub)
        if ns == POSTGRES and rest[0] == "flexibleservers":
            return self._postgres_route(segs, rest, verb, sub)
        if ns == KEYVAULT and rest[0] == "vaults":
            if len(rest) == 1:
                return Route("vaults.list", "arm", lambda c: self.list_vaults(c, segs[1], segs[3]), sub)
            if len(rest) == 2:
                return Route(f"vaults.{verb}", "arm", lambda c: self.vault(c, segs), sub)
            if len(rest) == 4 and rest[2] == "accesspolicies":
                return Route(
                    f"vaults.accessPolicies.{rest[3]}",
                    "arm",
                    lambda c: self.vault_access_policies(c, segs, rest[3]),
                    sub,
                )
        if len(rest) >= 2 and len(rest) % 2 == 0:
            return Route(f"genericResources.{verb}", "arm", lambda c: self.generic(c, segs), sub)
        return Route("provider.unsupported", "arm", _unsupported, sub)

    def _postgres_route(self, segs: list[str], rest: list[str], verb: str, sub: str | None) -> Route:
        """A flexible server, its Entra administrators and its databases; its other children are plain resources."""
        if len(rest) == 1:
            return Route("flexibleServers.list", "arm", lambda c: self.list_postgres_servers(c, segs[1], segs[3]), sub)
        if len(rest) == 2:
            return Route(f"flexibleServers.{verb}", "arm", lambda c: self.postgres_server(c, segs), sub)
        kind = rest[2]
        name = segs[-1] if len(rest) == 4 else None
        operation = verb if name else "list"
        if kind == "administrators" and len(rest) in (3, 4):
            return Route(
                f"administrators.{operation}", "arm", lambda c: self.postgres_administrators(c, segs, name), sub
            )
        if kind == "databases" and len(rest) in (3, 4):
            return Route(
                f"flexibleServerDatabases.{operation}", "arm", lambda c: self.postgres_databases(c, segs, name), sub
            )
        return Route(f"genericResources.{verb}", "arm", lambda c: self.generic(c, segs), sub)

    def _cosmos_route(self, request: Request, segs: list[str], rest: list[str], verb: str, sub: str | None) -> Route:
        """A Cosmos DB account and what is under it; other child types (keys, regions...) are plain resources."""
        if len(rest) == 2 or (len(rest) in (4, 6) and rest[2] == "sqldatabases" and rest[4:5] in ([], ["containers"])):
            kind = {2: "databaseAccounts", 4: "sqlDatabases", 6: "sqlContainers"}[len(rest)]
            return Route(f"{kind}.{verb}", "arm", lambda c: self.cosmos_resource(c, segs), sub)
        name = segs[-1] if len(rest) == 4 else None
        operation = verb if name else "list"
        if rest[2:3] == ["sqlroledefinitions"] and len(rest) in (3, 4):
            return Route(
                f"sqlRoleDefinitions.{operation}", "arm", lambda c: self.sql_role_definitions(c, segs, name), sub
            )
        if rest[2:3] == ["sqlroleassignments"] and len(rest) in (3, 4):
            return Route(
                f"sqlRoleAssignments.{operation}", "arm", lambda c: self.sql_role_assignments(c, segs, name), sub
            )
        return Route(f"genericResources.{verb}", "arm", lambda c: self.generic(c, segs), sub)

    # -- ARM's steps of the request pipeline (app.Sandbox.handle) ---------------------------------------
    def take_token(self, request: Request, route: Route, caller: Caller) -> dict[str, str]:
        kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(request.method, "writes")
        header = f"x-ms-ratelimit-remaining-subscription-{kind}"
        if not self.app.settings.throttling:
            return {}
        sub = route.subscription or self.app.tenant_id
        allowed, remaining, retry_after = self.app.throttle.take(kind, sub, caller.principal_id)
        if not allowed:
            verb = {"reads": "read", "writes": "write", "deletes": "delete"}[kind]
            raise ApiError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{verb}' requests for subscription '{sub}' actor '{caller.principal_id}' "
                f"exceeded. Please try again after '{retry_after}' seconds after additional tokens are "
                "available. Refer to https://aka.ms/arm-throttling",
                {"Retry-After": str(retry_after), header: "0"},
            )
        return {header: str(remaining)}

    def authenticate(self, request: Request, route: Route) -> Caller:
        # The tenant's authority, where clients read the tenant from (azwi, the Go SDK's tenant discovery):
        # ARM names login.windows.net to a client that came by its public host.
        authority = "https://login.windows.net" if request.origin else self.app.base_url
        challenge = {
            "WWW-Authenticate": f'Bearer authorization_uri="{authority}/{self.app.tenant_id}", '
            'error="invalid_token", error_description="The authentication failed"'
        }
        header = request.headers.get("authorization", "")
        if not header:
            raise ApiError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", challenge
            )
        scheme, _space, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                challenge,
            )
        try:
            claims = jwt.verify(token.strip(), self.app._entra_key.public_key())
        except jwt.InvalidToken as exc:
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.", challenge) from exc
        now = time.time()
        if float(claims.get("exp", 0)) < now:
            raise ApiError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
                challenge,
            )
        if str(claims.get("aud", "")).rstrip("/").lower() not in self.app.arm_audiences:
            raise ApiError(
                401,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource "
                f"'{claims.get('aud')}'. It should exactly match with one of the allowed audiences "
                f"'{self.app.base_url}/'.",
                challenge,
            )
        if route.subscription and str(claims.get("tid")) != self.app.tenant_id:
            raise ApiError(
                401,
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the "
                f"tenant '{self.app.base_url}/{self.app.tenant_id}/' associated with this subscription. "
                "Please use the authority (URL) for this tenant to obtain the token.",
                challenge,
            )
        return Caller(str(claims.get("oid")), str(claims.get("appid")), str(claims.get("tid")))
