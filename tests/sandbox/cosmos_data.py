"""Cosmos DB's data plane (NoSQL API): an account at ``https://<account>.documents.azure.com`` (and its regional
``https://<account>-<region>.documents.azure.com``, which the account's read names), through the public-hostnames
proxy, or ``<sandbox>/dataplane/cosmos/<account>`` directly; authorized as Cosmos DB authorizes an Entra token.

- Authentication: ``Authorization: type=aad&ver=1.0&sig=<token>`` (URL-encoded, as the SDKs send it), a token from
  Entra with audience ``https://<account>.documents.azure.com`` or ``https://cosmos.azure.com``, not expired.
  Anything else is 401 ``Unauthorized``. Keys (``type=master``) are not emulated: the sandbox's accounts take Entra
  tokens only, as an account with ``disableLocalAuth`` does.
- Authorization: Cosmos DB's own role system, not ARM's: the account's SQL role assignments for the token's ``oid``
  whose scope covers the resource (the account, ``/dbs/<db>``, ``/dbs/<db>/colls/<container>``), and whose SQL role
  definition's data actions allow the operation (``readMetadata`` to read a database or a container; ``items/read``,
  ``items/create``). The account itself (``GET /``, what every SDK reads first) is read with ``readMetadata`` at any
  scope in the account: a principal given a role on one container can open a client, one with ARM roles alone
  cannot (as Cosmos DB answers both; azure-cosmos-dotnet-v3#3638, azure-sdk-for-java#20781). ARM role assignments
  grant nothing here. Refused: 403 ``Forbidden`` with ``x-ms-substatus: 5301`` and Cosmos DB's message naming the
  principal, the action and the resource.
- What is served: the account (``GET /``: its endpoints, as the SDKs read them to find the regions), a database's
  and a container's properties, the container's one partition key range, and items: created (``POST .../docs``) and
  read (``GET .../docs/<id>`` with ``x-ms-documentdb-partitionkey``), kept in the sandbox's store. A database or
  container that ARM does not have is 404 ``NotFound``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

from . import ids, jwt
from .arm.cosmos import ACCOUNT_TYPE, CosmosProvider
from .core import Context, Response, Route
from .rbac import action_matches

if TYPE_CHECKING:
    from .app import Sandbox

PREFIX = ("dataplane", "cosmos")
AUDIENCE = "https://cosmos.azure.com"  # every account's, besides its own https://<account>.documents.azure.com
READ_METADATA = "Microsoft.DocumentDB/databaseAccounts/readMetadata"
ITEMS = "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items"
ACCOUNT_HOST = re.compile(r"https://[a-z0-9-]{3,50}\.documents\.azure\.com/?")


class CosmosDataError(Exception):
    def __init__(self, status: int, code: str, message: str, substatus: int = 0) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.substatus = status, code, message, substatus

    def response(self) -> Response:
        activity = str(uuid.uuid4())
        text = f"{self.message}\r\nActivityId: {activity}, Microsoft.Azure.Documents.Common/2.14.0"
        headers = {"x-ms-activity-id": activity, "x-ms-substatus": str(self.substatus)}
        return Response(self.status, {"code": self.code, "message": text}, headers)


class CosmosDataPlane:
    def __init__(self, app: Sandbox) -> None:
        self.app = app

    def route(self, request: Any, segs: list[str], low: list[str]) -> Route | None:
        if tuple(low[:2]) != PREFIX or len(low) < 3:
            return None
        host, rest = segs[2], segs[3:]
        kinds = [p.lower() for p in rest[0::2]]
        operation = {
            (): "account.read",
            ("dbs",): "databases.read",
            ("dbs", "colls"): "containers.read",
            ("dbs", "colls", "pkranges"): "pkranges.list",
            ("dbs", "colls", "docs"): "items.create" if len(rest) == 5 else "items.read",
        }.get(tuple(kinds), "unsupported")
        if (operation == "items.create") != (request.method == "POST") and operation.startswith("items"):
            operation = "unsupported"
        return Route(f"cosmos.{operation}", "cosmos", lambda c: self._answer(c, host, operation, rest))

    def _answer(self, ctx: Context, host: str, operation: str, rest: list[str]) -> Response:
        try:
            return self._serve(ctx, host, operation, rest)
        except CosmosDataError as exc:
            return exc.response()

    def _serve(self, ctx: Context, host: str, operation: str, rest: list[str]) -> Response:
        request = ctx.request
        account = self._account(host)
        if account is None:
            # In Azure the account's DNS name would not resolve: there is no one to answer.
            raise CosmosDataError(404, "NotFound", f"No Cosmos DB account answers at {host}.documents.azure.com.")
        if operation == "unsupported":
            raise CosmosDataError(405, "MethodNotAllowed", f"The sandbox's Cosmos DB does not serve {request.path}.")
        claims = self._authenticate(request, account)
        if operation == "account.read":
            self._authorize(account, claims, READ_METADATA, "", anywhere=True)
            return Response(200, self._account_body(account, request))
        if operation == "databases.read":
            database = rest[1]
            self._authorize(account, claims, READ_METADATA, f"dbs/{database}")
            record = self.app.store.get("generic", ids.norm(f"{account['id']}/sqlDatabases/{database}"))
            if record is None:
                raise CosmosDataError(404, "NotFound", f"Resource Not Found. Database '{database}' does not exist.")
            rid = record["body"]["properties"]["resource"]["_rid"]
            body = {"id": database, "_rid": rid, "_self": f"dbs/{rid}/", "_etag": f'"{rid}"', "_colls": "colls/"}
            return Response(200, {**body, "_users": "users/", "_ts": int(time.time())})
        database, container = rest[1], rest[3]
        resource = f"dbs/{database}/colls/{container}"
        found = self._container(account, database, container)
        if operation in ("containers.read", "pkranges.list"):
            self._authorize(account, claims, READ_METADATA, resource)
            if operation == "pkranges.list":
                ranges = [{"id": "0", "minInclusive": "", "maxExclusive": "FF", "parents": [], "_rid": found["_rid"]}]
                return Response(200, {"_rid": found["_rid"], "PartitionKeyRanges": ranges, "_count": 1})
            return Response(200, self._container_body(found, database))
        key = f"{ids.norm(account['id'])}/dbs/{database.lower()}/colls/{container.lower()}/docs/"
        partition = self._partition_key(request)
        if operation == "items.create":
            self._authorize(account, claims, f"{ITEMS}/create", f"{resource}/docs")
            item = request.json_object()
            item_id = str(item.get("id") or "")
            if not item_id:
                raise CosmosDataError(
                    400, "BadRequest", "The input content is invalid because the required property 'id' is missing."
                )
            if self.app.store.get("cosmosItem", key + f"{partition}/{item_id}") is not None:
                raise CosmosDataError(409, "Conflict", "Entity with the specified id already exists in the system.")
            stored = {**item, "_rid": uuid.uuid4().hex[:12], "_ts": int(time.time()), "_etag": f'"{uuid.uuid4()}"'}
            self.app.store.put("cosmosItem", key + f"{partition}/{item_id}", {"body": stored})
            return Response(201, stored)
        item_id = urllib.parse.unquote(rest[5])
        self._authorize(account, claims, f"{ITEMS}/read", f"{resource}/docs/{item_id}")
        record = self.app.store.get("cosmosItem", key + f"{partition}/{item_id}")
        if record is None:
            raise CosmosDataError(404, "NotFound", "Entity with the specified id does not exist in the system.")
        return Response(200, record["body"])

    # -- the account and what ARM holds of it -------------------------------------------------------------
    def _account(self, host: str) -> dict[str, Any] | None:
        """The account a host names: ``<account>`` or ``<account>-<region>`` (one of its locations)."""
        for record in self.app.store.all("generic").values():
            body = record["body"]
            if body.get("type") != ACCOUNT_TYPE:
                continue
            name = str(body["name"]).lower()
            regions = {_region(loc) for loc in body["properties"].get("locations") or []}
            if host.lower() == name or any(host.lower() == f"{name}-{r}" for r in regions):
                return dict(body)
        return None

    def _account_body(self, account: dict[str, Any], request: Any) -> dict[str, Any]:
        """The account as the SDKs read it first: its regions' endpoints, where they send what follows."""
        name = account["name"].lower()

        def endpoint(region: str) -> str:
            if request.origin:  # through the proxy: the public regional host, as Cosmos DB names it
                return f"https://{name}-{region}.documents.azure.com:443/"
            return f"{self.app.base_url}/{PREFIX[0]}/{PREFIX[1]}/{name}-{region}/"

        regional = [
            {"name": str(loc.get("locationName")), "databaseAccountEndpoint": endpoint(_region(loc))}
            for loc in account["properties"].get("locations") or []
        ]
        return {
            "_self": "",
            "id": name,
            "_rid": f"{name}.documents.azure.com",
            "media": "//media/",
            "addresses": "//addresses/",
            "_dbs": "//dbs/",
            "writableLocations": regional,
            "readableLocations": regional,
            "enableMultipleWriteLocations": False,
            "userReplicationPolicy": {"asyncReplication": False, "minReplicaSetSize": 3, "maxReplicasetSize": 4},
            "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
            "systemReplicationPolicy": {"minReplicaSetSize": 3, "maxReplicasetSize": 4},
            "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
            "queryEngineConfiguration": json.dumps({"maxSqlQueryInputLength": 262144, "maxJoinsPerSqlQuery": 5}),
        }

    def _container(self, account: dict[str, Any], database: str, container: str) -> dict[str, Any]:
        """The container as ARM holds it (``sqlDatabases/<db>/containers/<c>``): 404 when the database or it is
        missing."""
        base = f"{account['id']}/sqlDatabases/{database}"
        if self.app.store.get("generic", ids.norm(base)) is None:
            raise CosmosDataError(404, "NotFound", f"Resource Not Found. Database '{database}' does not exist.")
        record = self.app.store.get("generic", ids.norm(f"{base}/containers/{container}"))
        if record is None:
            raise CosmosDataError(404, "NotFound", f"Resource Not Found. Container '{container}' does not exist.")
        return dict(record["body"]["properties"]["resource"])

    @staticmethod
    def _container_body(resource: dict[str, Any], database: str) -> dict[str, Any]:
        key = resource.get("partitionKey") or {}
        return {
            "id": resource["id"],
            "indexingPolicy": {"indexingMode": "consistent", "automatic": True, "includedPaths": [{"path": "/*"}]},
            "partitionKey": {"paths": key.get("paths") or [], "kind": key.get("kind") or "Hash", "version": 2},
            "_rid": resource["_rid"],
            "_ts": int(time.time()),
            "_self": f"dbs/{database}/colls/{resource['_rid']}/",
            "_etag": f'"{resource["_rid"]}"',
            "_docs": "docs/",
            "_sprocs": "sprocs/",
            "_triggers": "triggers/",
            "_udfs": "udfs/",
            "_conflicts": "conflicts/",
        }

    @staticmethod
    def _partition_key(request: Any) -> str:
        raw = request.headers.get("x-ms-documentdb-partitionkey")
        if raw is None:
            raise CosmosDataError(400, "BadRequest", "PartitionKey value must be supplied for this operation.")
        return json.dumps(json.loads(raw), separators=(",", ":"))

    # -- who may ---------------------------------------------------------------------------------------
    def _authenticate(self, request: Any, account: dict[str, Any]) -> dict[str, Any]:
        raw = urllib.parse.unquote(request.headers.get("authorization", ""))
        fields = dict(part.partition("=")[::2] for part in raw.split("&") if "=" in part)
        if fields.get("type") != "aad" or not fields.get("sig"):
            raise CosmosDataError(
                401,
                "Unauthorized",
                "Local Authorization is disabled. Use an AAD token to authorize all requests."
                if fields.get("type") == "master"
                else "Required Header authorization is missing. Ensure a valid Authorization token is passed.",
            )
        try:
            claims = jwt.verify(fields["sig"], self.app._entra_key.public_key())
        except jwt.InvalidToken as exc:
            raise CosmosDataError(
                401, "Unauthorized", "The input authorization token can't serve the request."
            ) from exc
        audience = str(claims.get("aud", "")).rstrip("/").lower()
        own = f"https://{account['name'].lower()}.documents.azure.com"
        if float(claims.get("exp", 0)) < time.time():
            raise CosmosDataError(401, "Unauthorized", "The AAD token has expired.", 5000)
        if audience not in (AUDIENCE, own):
            raise CosmosDataError(
                401, "Unauthorized", f"The token's audience {claims.get('aud')} is neither {own} nor {AUDIENCE}.", 5000
            )
        return dict(claims)

    def _authorize(
        self, account: dict[str, Any], claims: dict[str, Any], action: str, resource: str, anywhere: bool = False
    ) -> None:
        """A SQL role assignment of the account for the token's principal, at a scope covering ``resource`` (or at any
        scope, ``anywhere``), whose definition allows ``action``."""
        oid = str(claims.get("oid"))
        # The resource as a Cosmos DB scope: the account, /dbs/<db>, /dbs/<db>/colls/<c> (items are the container's).
        parts = resource.split("/")
        covering = {account["id"].lower()}
        if len(parts) >= 2:
            covering.add(f"{account['id']}/dbs/{parts[1]}".lower())
        if len(parts) >= 4:
            covering.add(f"{account['id']}/dbs/{parts[1]}/colls/{parts[3]}".lower())
        provider: CosmosProvider = self.app.arm
        definitions = {d["id"].lower(): d for d in provider.definitions_of(account)}
        for assignment in provider.assignments_of(account):
            props = assignment["properties"]
            covers = anywhere or props["scope"].rstrip("/").lower() in covering
            if props["principalId"].lower() != oid.lower() or not covers:
                continue
            definition = definitions.get(props["roleDefinitionId"].lower())
            permissions = (definition or {}).get("properties", {}).get("permissions") or []
            allowed = [a for p in permissions for a in p.get("dataActions") or []]
            if any(action_matches(a, action) for a in allowed):
                return
        raise CosmosDataError(
            403,
            "Forbidden",
            f"Request blocked by Auth {account['name']} : Request is blocked because principal [{oid}] does not have "
            f"required RBAC permissions to perform action [{action}] on resource [{resource or '/'}]. Learn more: "
            "https://aka.ms/cosmos-native-rbac.",
            5301,
        )


def _region(location: dict[str, Any]) -> str:
    return str(location.get("locationName") or "").lower().replace(" ", "")


def cosmos_audience(resource: str) -> bool:
    """Whether Entra issues tokens for this resource: Cosmos DB's, or an account's own endpoint."""
    return resource.rstrip("/").lower() == AUDIENCE or ACCOUNT_HOST.fullmatch(resource.lower()) is not None
