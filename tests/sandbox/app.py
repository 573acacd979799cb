"""The sandbox application: state, the request pipeline, authentication and authorization."""

from __future__ import annotations

import copy
import gzip
import json
import secrets
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from . import ids, jwt, rbac
from .addon import ManagedWebhooks
from .config import Settings
from .core import (
    GRAPH_UNREADABLE_BODY,
    ApiError,
    Caller,
    Context,
    EntraError,
    GraphError,
    Request,
    Response,
    Route,
)
from .directory import ALL as GRAPH_ALL
from .directory import Directory
from .faults import Faults
from .kube import KubeControlPlane, kubeconfig
from .store import Store
from .throttle import Throttle

ARM_AUDIENCES_PUBLIC = ("https://management.azure.com", "https://management.core.windows.net")
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
SEED_ASSIGNMENT = "5b6a6c2e-3d0c-4c7e-9d1a-1f0e6b3c0a01"
# Principals seeded at start are long replicated.
LONG_AGO = 0.0


class ConnectionReset(Exception):
    """Raised to make the HTTP layer drop the connection (an injected fault)."""


class Sandbox:
    def __init__(self, state_dir: Path, base_url: str, settings: Settings | None = None) -> None:
        self.state_dir = state_dir
        self.base_url = base_url.rstrip("/")
        self.settings = settings or Settings()
        # The public-hostnames proxy (proxy.py), once the server has started it.
        self.proxy_url: str | None = None
        self.store = Store(state_dir / "state.db")
        self.throttle = Throttle(self.settings)
        self.faults = Faults()
        self.builtin_roles = rbac.built_in_roles()
        self._stats_lock = threading.Lock()
        # Handler crashes (sandbox bugs): answered as Azure's 500, counted here, and asserted to be zero
        # by the tests' fixtures, so a bug fails the test that hit it instead of a client's retry hiding it.
        self.internal_errors = 0
        self._stats: dict[str, Counter[str]] = defaultdict(Counter)
        self._log_lock = threading.Lock()
        self._log = (state_dir / "requests.jsonl").open("a", encoding="utf-8")
        self.kube = KubeControlPlane(state_dir)
        self.webhooks = ManagedWebhooks(self.kube, lambda: self.tenant_id, self.base_url)
        # Set once the API servers of kube-backed clusters are back after a start (or there are none).
        self.kube_ready = threading.Event()
        self.directory = Directory(self)
        self._seed()
        self._entra_key = jwt.load_private(self.store.meta("entra_key"))
        # Imported here: the API modules import this one for typing.
        from .arm import ArmApi
        from .blob import BlobDataPlane
        from .control import ControlApi
        from .cosmos_data import CosmosDataPlane
        from .entra import EntraApi
        from .graph import GraphApi
        from .guard import GuardApi
        from .vault import VaultDataPlane

        self.arm = ArmApi(self)
        self.graph = GraphApi(self)
        self.entra = EntraApi(self)
        self.control = ControlApi(self)
        self.guard = GuardApi(self)
        self.vaults = VaultDataPlane(self)
        self.blobs = BlobDataPlane(self)
        self.cosmos = CosmosDataPlane(self)
        from .postgres import PostgresServers

        self.postgres = PostgresServers(state_dir, self.tenant_id)
        self.postgres_port: int | None = None  # the PostgreSQL gateway's, once serving (postgres_gateway.py)

    # -- identity of this "cloud" -------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        return str(self.store.meta("tenant_id"))

    @property
    def subscription_id(self) -> str:
        return str(self.store.meta("subscription_id"))

    def origin(self, request: Request) -> str:
        """The base of the URLs an answer hands out: the public host the client used, or the sandbox's URL."""
        return request.origin or self.base_url

    @property
    def arm_audiences(self) -> set[str]:
        return {a.lower() for a in (*ARM_AUDIENCES_PUBLIC, self.base_url)}

    def _seed(self) -> None:
        store = self.store
        with store.transaction():
            if store.meta("tenant_id") is None:
                store.set_meta("tenant_id", str(uuid.uuid4()))
                store.set_meta("subscription_id", str(uuid.uuid4()))
                store.set_meta("entra_key", jwt.private_pem(jwt.new_key()))
                store.set_meta(
                    "admin",
                    {
                        "client_id": str(uuid.uuid4()),
                        "secret": secrets.token_urlsafe(32),
                        "principal_id": str(uuid.uuid4()),
                    },
                )
            self.seed_resources()

    def seed_resources(self) -> None:
        """The subscription, its root management group and the admin principal (Owner)."""
        admin = self.store.meta("admin")
        self.store.put(
            "principal",
            "principal/" + admin["principal_id"],
            {
                "principal_id": admin["principal_id"],
                "app_id": admin["client_id"],
                "type": "ServicePrincipal",
                "display_name": "sandbox-admin",
                "secret": admin["secret"],
                "created_at": LONG_AGO,
                "sp_type": "Application",
                "owners": [],
                # The automation principal of the tests and the demo: may manage every application.
                "graph_roles": [GRAPH_ALL],
            },
        )
        self._put_subscription(self.subscription_id, "Sandbox subscription", SEED_ASSIGNMENT)

    def add_subscription(self, display_name: str) -> str:
        """Another subscription of the tenant (under its root management group), the admin principal its Owner, as a
        fleet spread over subscriptions has: ARM's buckets are per subscription and principal. Wiped by reset."""
        sub = str(uuid.uuid4())
        with self.store.transaction():
            self._put_subscription(sub, display_name, str(uuid.uuid4()))
        return sub

    def _put_subscription(self, sub: str, display_name: str, owner_assignment: str) -> None:
        admin = self.store.meta("admin")
        self.store.put(
            "subscription",
            ids.norm(f"/subscriptions/{sub}"),
            {
                "id": f"/subscriptions/{sub}",
                "subscriptionId": sub,
                "tenantId": self.tenant_id,
                "displayName": display_name,
                "state": "Enabled",
                "authorizationSource": "RoleBased",
                "managedByTenants": [],
                "subscriptionPolicies": {
                    "locationPlacementId": "Public_2014-09-01",
                    "quotaId": "PayAsYouGo_2014-09-01",
                    "spendingLimit": "Off",
                },
            },
        )
        scope = f"/subscriptions/{sub}"
        from .arm import assignment_record

        self.store.put(
            "roleAssignment",
            ids.norm(f"{scope}/providers/Microsoft.Authorization/roleAssignments/{owner_assignment}"),
            assignment_record(
                sub,
                scope,
                owner_assignment,
                OWNER,
                admin["principal_id"],
                "ServicePrincipal",
                None,
                None,
                "Sandbox administrator",
                admin["principal_id"],
            ),
        )

    def management_groups_of(self) -> dict[str, list[str]]:
        root = ids.norm(f"/providers/Microsoft.Management/managementGroups/{self.tenant_id}")
        return {str(r["subscriptionId"]).lower(): [root] for r in self.store.all("subscription").values()}

    def reset(self) -> None:
        """Wipe every resource (keep the tenant, subscription and admin principal)."""
        self.webhooks.forget_all()
        self.kube.wipe()
        self.postgres.wipe()
        with self.store.transaction():
            for kind in list(self.store._by_kind):
                for key in list(self.store.all(kind)):
                    self.store.delete(kind, key)
            self.seed_resources()
        self.throttle.reset()
        self.faults.clear()
        self.reset_stats()
        self.write_env_files()

    def env(self, ca_bundle: Path) -> dict[str, str]:
        """Everything a client needs to talk to this sandbox (and to its clusters' API servers)."""
        admin = self.store.meta("admin")
        kube: dict[str, str] = {}
        backed = self.kube_backed()
        if backed:
            first = backed[0][1]
            kube = {
                "KUBECONFIG": str(self.state_dir / "kubeconfig"),
                "K8S_AUTH_KUBECONFIG": str(self.state_dir / "kubeconfig"),
                "K8S_AUTH_HOST": first["server"],
                "K8S_AUTH_API_KEY": first["token"] or "",
                "K8S_AUTH_VERIFY_SSL": "true",
                "K8S_AUTH_SSL_CA_CERT": first["ca_file"] or str(ca_bundle),
            }
        # libpq (psql, psycopg, every driver on it) connects to <server>.postgres.database.azure.com through the
        # gateway: PGHOSTADDR and PGPORT name where, the host name stays the server's (TLS's SNI and verify-full).
        postgres = (
            {"PGHOSTADDR": "127.0.0.1", "PGPORT": str(self.postgres_port), "PGSSLROOTCERT": str(ca_bundle)}
            if self.postgres_port
            else {}
        )
        return {
            **kube,
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_TENANT": self.tenant_id,
            "AZURE_CLIENT_ID": admin["client_id"],
            "AZURE_SECRET": admin["secret"],
            "AZURE_CLIENT_SECRET": admin["secret"],
            "AZURE_AUTHORITY_HOST": self.base_url,
            "AZURE_RESOURCE_MANAGER_ENDPOINT": self.base_url,
            "AZURE_GRAPH_ENDPOINT": self.base_url + "/graph/",
            "AZURE_CA_BUNDLE": str(ca_bundle),
            "REQUESTS_CA_BUNDLE": str(ca_bundle),
            "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
            "SANDBOX_URL": self.base_url,
            "SANDBOX_STATE_DIR": str(self.state_dir),
            **({"SANDBOX_HTTPS_PROXY": self.proxy_url} if self.proxy_url else {}),
            **postgres,
        }

    def kube_backed(self) -> list[tuple[str, dict[str, Any]]]:
        """(cluster name, connection) of every cluster with an API server, oldest first."""
        records = [r for r in self.store.all("cluster").values() if r.get("kube")]
        records.sort(key=lambda r: r.get("seeded_at", 0))
        return [(r["body"]["name"], r["kube"]) for r in records]

    def write_env_files(self) -> None:
        """sandbox.env (shell), sandbox.json, and the merged kubeconfig of the kube-backed clusters."""
        import shlex

        import yaml

        ca = self.state_dir / "ca.pem"
        backed = self.kube_backed()
        config = self.state_dir / "kubeconfig"
        if backed:
            config.write_text(yaml.safe_dump(kubeconfig(backed, ca.read_text()), sort_keys=False))
            config.chmod(0o600)
        else:
            config.unlink(missing_ok=True)
        env = self.env(ca)
        shell = self.state_dir / "sandbox.env"
        shell.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items())))
        shell.chmod(0o600)
        (self.state_dir / "sandbox.json").write_text(json.dumps(env, indent=2))

    def start_kube(self) -> None:
        """Bring back the API servers of kube-backed clusters after a restart (in parallel)."""
        from concurrent.futures import ThreadPoolExecutor

        try:
            records = [(k, r) for k, r in self.store.all("cluster").items() if r.get("kube")]
            if not records or not self.kube.available:
                return
            with ThreadPoolExecutor(max_workers=len(records)) as pool:
                started = list(pool.map(lambda kr: (kr[0], self.attach_kube(kr[0], kr[1])), records))
            for key, record in started:
                self.store.put("cluster", key, record)
            self.write_env_files()
        finally:
            self.kube_ready.set()

    def attach_kube(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """Start the cluster's control plane (and add-on webhook); the record with its connection filled in.

        The cluster reports its API server's Kubernetes version, and its fqdn is the API server's address.
        """
        issuer = f"{self.base_url}/{self.tenant_id}/{record['issuer_guid']}/"
        # The cluster's API server asks the sandbox (as AKS's guard) about Entra tokens and Azure RBAC.
        guard = f"{self.base_url}/_guard/{record['issuer_guid']}"
        details = self.kube.ensure_cluster(
            key, record["body"]["name"], issuer, record["signing_key"], record.get("kube"), guard
        )
        body = copy.deepcopy(record["body"])
        props = body["properties"]
        props["fqdn"] = details["server"].split("://", 1)[1]
        if details.get("version"):
            version = str(details["version"]).lstrip("v")
            props["kubernetesVersion"] = props["currentKubernetesVersion"] = version
            for pool in props.get("agentPoolProfiles") or []:
                pool["orchestratorVersion"] = pool["currentOrchestratorVersion"] = version
        attached = {**record, "body": body, "kube": details}
        self.sync_addon(key, attached)
        return attached

    def sync_addon(self, key: str, record: dict[str, Any]) -> None:
        """Run AKS's workload-identity webhook for a kube-backed cluster whose add-on is on, and only then."""
        if not record.get("kube"):
            return
        profile = (record["body"]["properties"].get("securityProfile") or {}).get("workloadIdentity") or {}
        self.webhooks.sync(key, record["body"]["name"], record["kube"], bool(profile.get("enabled")))

    def release_kube(self, key: str, record: dict[str, Any] | None) -> None:
        if record and record.get("kube"):
            self.webhooks.forget(key)
            self.kube.release_cluster(key)
            # The env files and the merged kubeconfig must not name an API server that is gone.
            self.write_env_files()

    # -- the pipeline ----------------------------------------------------------------------------
    def resolve(self, request: Request) -> Route:
        segs = ids.segments(request.path)
        low = [s.lower() for s in segs]
        for api in (self.control, self.guard, self.vaults, self.blobs, self.cosmos, self.graph, self.entra, self.arm):
            route = api.route(request, segs, low)
            if route is not None:
                return route
        return Route("unknown", "arm", _not_found)

    def handle(self, request: Request) -> tuple[Response, str, str | None]:
        """Answer a request. Returns (response, operation, principal id)."""
        started = time.monotonic()
        route = self.resolve(request)
        caller: Caller | None = None
        stale_for = 0.0
        graph = route.service == "graph"
        request_id = str(uuid.uuid4())
        request.service = route.service
        try:
            if route.service != "control":
                fault = self.faults.pick(route.operation, request.method, request.path)
                if fault is not None and fault.reset:
                    raise ConnectionReset()
                if fault is not None and fault.status is None:
                    stale_for = fault.delay_after
                elif fault is not None and fault.status is not None:
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    code = fault.code or {
                        429: "TooManyRequests",
                        500: "InternalServerError",
                        502: "BadGateway",
                        503: "ServiceUnavailable",
                        504: "GatewayTimeout",
                    }.get(fault.status, "InjectedFault")
                    error = GraphError if graph else ApiError
                    raise error(fault.status, code, fault.message or "Injected by the sandbox.", headers)
                if self.settings.latency_ms:
                    time.sleep(self.settings.latency_ms / 1000)
            extra: dict[str, str] = {}
            if route.service == "arm":
                if request.q("api-version") is None:
                    raise ApiError(
                        400,
                        "MissingApiVersionParameter",
                        "The api-version query parameter (?api-version=) is required for all requests.",
                    )
                caller = self.arm.authenticate(request, route)
                extra = self.arm.take_token(request, route, caller)
            elif graph:
                caller = self.graph.authenticate(request)
                self.graph.take_token(caller)
            refused = decode_body(request)
            response = refused or route.handler(Context(request, caller))
            response.headers.update(extra)
            if stale_for:
                time.sleep(stale_for)
        except ApiError as exc:
            response = exc.response()
        except EntraError as exc:
            response = exc.response()
        except GraphError as exc:
            response = exc.response(request_id, request.headers.get("client-request-id", ""))
        except ConnectionReset:
            self._record(request, route, None, caller, started)
            raise
        except Exception:
            with self._stats_lock:
                self.internal_errors += 1
            print(f"internal error in {route.operation} {request.method} {request.path}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            message = "The server encountered an internal error. Please retry the request."
            if graph:
                client_request_id = request.headers.get("client-request-id", "")
                response = GraphError(500, "InternalServerError", message).response(request_id, client_request_id)
            else:
                response = ApiError(500, "InternalServerError", message).response()
        if graph:
            # Graph's own headers: request-id (echoed in error bodies) and the client's client-request-id.
            response.headers["request-id"] = request_id
            response.headers["client-request-id"] = request.headers.get("client-request-id", request_id)
            self._record(request, route, response, caller, started)
            return response, route.operation, caller.principal_id if caller else None
        response.headers.setdefault("x-ms-request-id", request_id)
        response.headers["x-ms-correlation-request-id"] = request.headers.get(
            "x-ms-correlation-request-id", response.headers["x-ms-request-id"]
        )
        if "x-ms-client-request-id" in request.headers:
            response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
        self._record(request, route, response, caller, started)
        return response, route.operation, caller.principal_id if caller else None

    # -- RBAC ----------------------------------------------------------------------------------------
    def role_definition(self, guid: str) -> dict[str, Any] | None:
        guid = guid.lower()
        if guid in self.builtin_roles:
            return self.builtin_roles[guid]
        record = self.store.get("roleDefinition", guid)
        return record["properties"] if record else None

    def assignments_applying(self, scope: ids.Scope, principal_id: str | None = None) -> list[dict[str, Any]]:
        """Role assignments at the scope or inherited from above it."""
        chain = set(ids.chain(scope, self.management_groups_of()))
        found = []
        for record in self.store.all("roleAssignment").values():
            if record["scope_key"] in chain and (principal_id is None or record["principal_id"] == principal_id):
                found.append(record)
        return found

    def is_allowed(self, caller: Caller, action: str, scope: ids.Scope) -> bool:
        for record in self.assignments_applying(scope, caller.principal_id):
            role = self.role_definition(record["role_guid"])
            if role and rbac.permits(role["permissions"], action):
                return True
        return False

    def authorize(self, ctx: Context, action: str, scope: ids.Scope) -> None:
        caller = ctx.caller
        if caller is None or not self.is_allowed(caller, action, scope):
            who = caller.principal_id if caller else "anonymous"
            raise ApiError(
                403,
                "AuthorizationFailed",
                f"The client '{who}' with object id '{who}' does not have authorization to perform "
                f"action '{action}' over scope '{scope.raw}' or the scope is invalid. If access was "
                "recently granted, please refresh your credentials.",
            )

    # -- observability ------------------------------------------------------------------------------
    def _record(
        self, request: Request, route: Route, response: Response | None, caller: Caller | None, started: float
    ) -> None:
        """Stats and the request log; ``response`` None for a connection dropped by an injected fault."""
        elapsed_ms = round((time.monotonic() - started) * 1000, 2)
        status: int | str = response.status if response is not None else "reset"
        with self._stats_lock:
            self._stats[route.operation][str(status)] += 1
        entry = {
            "ts": time.time(),
            "method": request.method,
            "path": request.path,
            "query": {k: v for k, v in request.query.items() if k.lower() not in ("code", "client_secret")},
            "operation": route.operation,
            "service": route.service,
            "status": status,
            "ms": elapsed_ms,
            "principal": caller.principal_id if caller else None,
            "client_request_id": request.headers.get("x-ms-client-request-id"),
            "request_id": response.headers.get("x-ms-request-id") if response is not None else None,
        }
        if response is not None and response.status >= 400 and isinstance(response.body, dict):
            error = response.body.get("error")
            entry["error"] = error.get("code") if isinstance(error, dict) else error
        with self._log_lock:
            self._log.write(json.dumps(entry) + "\n")
            self._log.flush()

    def count(self, operation: str, status: str) -> None:
        """One answer of a service that is not HTTP (the PostgreSQL gateway's sign-ins), in the same stats."""
        with self._stats_lock:
            self._stats[operation][status] += 1

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            operations = {op: dict(counts) for op, counts in sorted(self._stats.items())}
        totals: Counter[str] = Counter()
        for op, counts in operations.items():
            service = "arm"
            if op.startswith(("entra.", "oidc.")):
                service = "entra"
            elif op.startswith("sandbox."):
                service = "control"
            elif op.startswith("guard."):
                service = "guard"
            elif op.startswith("vault."):
                service = "keyvault"
            elif op.startswith("blob."):
                service = "storage"
            elif op.startswith("cosmos.") and not op.startswith(("cosmos.operationsStatus", "cosmos.operationResults")):
                service = "cosmos"
            elif op.startswith("postgres.") and not op.startswith(("postgres.azureAsync", "postgres.operationResults")):
                service = "postgres"
            totals[service] += sum(counts.values())
        return {
            "operations": {op: {"total": sum(c.values()), "by_status": c} for op, c in operations.items()},
            "totals": dict(totals),
        }

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    def close(self) -> None:
        self.webhooks.forget_all()
        self.kube.stop_all()
        self.postgres.close()
        self._log.close()
        self.store.close()


def decode_body(request: Request) -> Response | None:
    """Undo a request body's Content-Encoding where the service takes it; else the refusal to answer with.

    Microsoft Graph takes gzip request bodies (every kiota-based Graph SDK sends them by default, and falls
    back to a plain body only on a 415). ARM and the Entra token endpoint document no compressed request
    bodies: they get a 415, which is what such a client retries plainly on.
    """
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if not encoding or encoding == "identity" or request.service == "control":
        return None
    if request.service == "graph" and encoding == "gzip":
        try:
            request.body = gzip.decompress(request.body)
        except (OSError, EOFError, zlib.error) as exc:
            raise GraphError(400, "BadRequest", GRAPH_UNREADABLE_BODY) from exc
        return None
    message = f"The request's Content-Encoding '{encoding}' is not supported."
    if request.service == "graph":
        raise GraphError(415, "UnsupportedMediaType", message)
    if request.service == "arm":
        raise ApiError(415, "UnsupportedMediaType", message)
    return Response(415, None)  # the token endpoint: no body, as its front end answers


def _not_found(ctx: Context) -> Response:
    raise ApiError(404, "NotFound", f"No route for '{ctx.request.method} {ctx.request.path}' in the sandbox.")
