"""In-memory stand-ins for the Api classes (the I/O layer under the engines): no HTTP, every write recorded.

They answer as Azure does for what the engines ask (ids, case, 409s), so the engines' decisions can be
tested alone; the real Api classes are exercised against the sandbox by the integration tests.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_cosmos import CosmosApi, built_in_state
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_federated_credential import (
    FederatedCredentialApi,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_identity import IdentityApi
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_key_vault import KeyVaultApi, vault_state
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_postgres import (
    MARK,
    DatabaseClient,
    PostgresApi,
    RoleState,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import (
    Role,
    RoleAssignmentApi,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import (
    AzureApiError,
    DatabaseError,
    ValidationError,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef, parse_role, same_scope

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
READER = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Reader",
)
OWNER = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Owner",
)
BLOB = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Contributor",
)


class ArmAnswer:
    """An ARM answer as an SDK client's pipeline returns it (for the fakes of that pipeline: ArmRestClient's users)."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.headers = status, headers or {}
        self.content = json.dumps(body).encode() if body is not None else b""

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        assert self.status_code < 400, "the fakes raise errors from send_request, as the pipeline does"


class Writes(list[tuple[str, ...]]):
    """Every write, in order, as (api, verb, what)."""


class FakeIdentities(IdentityApi):
    """ARM's identities, and its Tags API on them (``refuse_tags``: the automation may not write tags by name)."""

    def __init__(self, writes: Writes, refuse_tags: bool = False) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.writes = writes
        self.whole_tags_in: set[str] = set()
        self.refuse_tags = refuse_tags

    def _patch_tags(self, ref: IdentityRef, operation: str, tags: dict[str, str]) -> dict[str, str]:
        if self.refuse_tags:
            raise AzureApiError("does not have authorization", status=403, code="AuthorizationFailed")
        self.writes.append(("identity", f"tags {operation.lower()}", ref.name))
        item = self.items[ref.id.lower()]
        current = dict(item["tags"])  # a new dict, as ARM's answer is: what callers hold keeps what they read
        if operation == "Merge":
            current.update(tags)
        else:
            current = {k: v for k, v in current.items() if k not in tags or (tags[k] and tags[k] != v)}
        self.items[ref.id.lower()] = {**item, "tags": current}
        return dict(current)

    def get(self, ref: IdentityRef) -> Any:
        return self.items.get(ref.id.lower())

    def put(self, ref: IdentityRef, location: str, tags: dict[str, str]) -> Any:
        self.writes.append(("identity", "put", ref.name))
        current = self.items.get(ref.id.lower())
        state = {
            "id": ref.id,
            "name": ref.name,
            "resource_group": ref.resource_group,
            "location": location,
            "tags": dict(tags),
            "client_id": current["client_id"] if current else str(uuid.uuid4()),
            "principal_id": current["principal_id"] if current else str(uuid.uuid4()),
            "tenant_id": TENANT,
        }
        self.items[ref.id.lower()] = state
        return dict(state)

    def delete(self, ref: IdentityRef) -> None:
        self.writes.append(("identity", "delete", ref.name))
        self.items.pop(ref.id.lower(), None)

    def list_all(self, resource_group: str | None) -> list[Any]:
        return [
            dict(i)
            for i in self.items.values()
            if resource_group is None or i["resource_group"].lower() == resource_group.lower()
        ]


class FakeFics(FederatedCredentialApi):
    def __init__(self, writes: Writes) -> None:
        self.items: dict[str, dict[str, dict[str, Any]]] = {}  # identity id -> name lower -> fic
        self.writes = writes

    def get(self, ref: IdentityRef, name: str) -> Any:
        return self.items.get(ref.id.lower(), {}).get(name.lower())

    def list_all(self, ref: IdentityRef) -> list[Any]:
        return [dict(f) for f in self.items.get(ref.id.lower(), {}).values()]

    def put(self, ref: IdentityRef, name: str, issuer: str, subject: str, audiences: list[str]) -> Any:
        self.writes.append(("fic", "put", f"{ref.name}/{name}"))
        state = {
            "id": f"{ref.id}/federatedIdentityCredentials/{name}",
            "name": name,
            "identity": ref.name,
            "issuer": issuer,
            "subject": subject,
            "audiences": list(audiences),
        }
        self.items.setdefault(ref.id.lower(), {})[name.lower()] = state
        return dict(state)

    def delete(self, ref: IdentityRef, name: str) -> None:
        self.writes.append(("fic", "delete", f"{ref.name}/{name}"))
        self.items.get(ref.id.lower(), {}).pop(name.lower(), None)


def assignment(scope: str, role: Role, principal: str, name: str | None = None, **extra: Any) -> SimpleNamespace:
    """A role assignment as the SDK models it."""
    name = name or str(uuid.uuid4())
    return SimpleNamespace(
        id=f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name=name,
        scope=scope,
        role_definition_id=role.id,
        principal_id=principal,
        principal_type=extra.get("principal_type", "ServicePrincipal"),
        condition=extra.get("condition"),
        condition_version=extra.get("condition_version"),
        description=extra.get("description"),
    )


class FakeRoles(RoleAssignmentApi):
    def __init__(self, writes: Writes, roles: tuple[Role, ...] = (READER, OWNER, BLOB)) -> None:
        self.roles = list(roles)
        self.items: list[SimpleNamespace] = []
        self.writes = writes
        self.race: SimpleNamespace | None = None  # made "by someone else" just before our next create
        self.denied: list[tuple[str, str]] = []  # (scope, action) the automation principal may not do there or below
        self.asked: list[str] = []  # the scopes whose permissions were read

    def permissions(self, scope: str) -> Any:
        """What the automation principal holds at the scope: everything, unless a test takes some away."""
        self.asked.append(scope)
        denied = tuple(a for s, a in self.denied if scope.lower().startswith(s.lower()))
        return ((("*",), denied, ()),)

    def resolve_role(self, scope: str, role: str) -> Role:
        ref = parse_role(role)
        found = [r for r in self.roles if (r.guid == ref.guid if ref.guid else r.name == role)]
        if len(found) != 1:
            raise ValidationError([f"role: '{role}' must name exactly one role definition assignable at {scope}"])
        return found[0]

    def list_definitions(self, scope: str) -> list[Role]:
        return list(self.roles)

    def list_at(self, scope: str, filter: str | None = None) -> list[Any]:
        return [a for a in self.items if a.scope.lower().startswith(scope.lower())]

    def at_scope_for(self, scope: str, principal_id: str) -> list[Any]:
        return [a for a in self.items if a.principal_id == principal_id and scope.lower().startswith(a.scope.lower())]

    def create(self, scope: str, name: str, body: dict[str, Any]) -> Any:
        if self.race is not None:
            self.items.append(self.race)
            self.race = None
        for existing in self.items:
            if (
                same_scope(existing.scope, scope)
                and existing.role_definition_id == body["role_definition_id"]
                and existing.principal_id == body["principal_id"]
                and existing.name != name
            ):
                raise AzureApiError("The role assignment already exists.", status=409, code="RoleAssignmentExists")
        self.writes.append(("role", "put", name))
        role = next(r for r in self.roles if r.id == body["role_definition_id"])
        model = assignment(
            scope,
            role,
            body["principal_id"],
            name,
            **{k: body.get(k) for k in ("principal_type", "condition", "condition_version", "description")},
        )
        self.items = [a for a in self.items if a.name != name] + [model]
        return model

    def delete(self, scope: str, name: str) -> None:
        self.writes.append(("role", "delete", name))
        self.items = [a for a in self.items if a.name != name]


class FakeVaults(KeyVaultApi):
    """Key vaults with their access policies, each write applied as Key Vault applies it (one principal's entry)."""

    def __init__(self, writes: Writes) -> None:
        super().__init__(None)
        self.writes = writes
        self.vaults: dict[str, dict[str, Any]] = {}
        self.gets = 0

    def add(self, vault_id: str, rbac: bool = False, policies: list[dict[str, Any]] | None = None) -> None:
        name = vault_id.rsplit("/", 1)[1]
        body = {
            "id": vault_id,
            "name": name,
            "location": "westeurope",
            "properties": {
                "tenantId": TENANT,
                "enableRbacAuthorization": rbac,
                "vaultUri": f"https://{name}.vault.azure.net/",
                "accessPolicies": list(policies or []),
            },
        }
        self.vaults[vault_id.lower()] = body

    def get(self, vault_id: str) -> Any:
        self.gets += 1
        body = self.vaults.get(vault_id.lower())
        return vault_state(copy.deepcopy(body)) if body else None

    def list_all(self, subscription: str) -> list[Any]:
        return [vault_state(copy.deepcopy(v)) for v in self.vaults.values()]

    def update(self, vault: Any, kind: str, object_id: str, permissions: dict[str, list[str]]) -> None:
        self.writes.append(("vault", kind, f"{vault['name']}:{object_id}"))
        policies = self.vaults[vault["id"].lower()]["properties"]["accessPolicies"]
        kept = [e for e in policies if e["objectId"].lower() != object_id.lower()]
        held = next((e["permissions"] for e in policies if e["objectId"].lower() == object_id.lower()), {})
        if kind == "add":
            permissions = {k: sorted({*held.get(k, []), *v}) for k, v in {**held, **permissions}.items()}
        if kind != "remove":
            kept.append({"tenantId": TENANT, "objectId": object_id, "permissions": permissions})
        self.vaults[vault["id"].lower()]["properties"]["accessPolicies"] = kept


COSMOS_READER = "00000000-0000-0000-0000-000000000001"
COSMOS_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


class FakeCosmos(CosmosApi):
    """Cosmos DB accounts with their SQL role definitions (the two built-ins, and custom ones) and assignments; each
    write applied as Cosmos DB applies it. Reads counted per kind."""

    def __init__(self, writes: Writes) -> None:
        super().__init__(None)
        self.writes = writes
        self.accounts: dict[str, dict[str, Any]] = {}
        self.reads = {"definitions": 0, "assignments": 0, "accounts": 0}

    def add(self, account_id: str, custom: dict[str, str] | None = None) -> None:
        """An account; ``custom``: its custom SQL roles, GUID -> roleName (with item read only)."""
        definitions = [
            (COSMOS_READER, "Cosmos DB Built-in Data Reader", "BuiltInRole"),
            (COSMOS_CONTRIBUTOR, "Cosmos DB Built-in Data Contributor", "BuiltInRole"),
            *((guid, name, "CustomRole") for guid, name in (custom or {}).items()),
        ]
        self.accounts[account_id.lower()] = {
            "id": account_id,
            "name": account_id.rsplit("/", 1)[1],
            "definitions": [
                {
                    "id": f"{account_id}/sqlRoleDefinitions/{guid}",
                    "guid": guid,
                    "name": name,
                    "built_in": kind == "BuiltInRole",
                    "data_actions": ["Microsoft.DocumentDB/databaseAccounts/readMetadata"],
                    "assignable_scopes": [account_id],
                }
                for guid, name, kind in definitions
            ],
            "assignments": [],
        }

    def account(self, account_id: str) -> Any:
        state = built_in_state(account_id)
        return state if self.read_definitions(state) and self.read_assignments(state) else None

    def read_definitions(self, account: Any) -> bool:
        self.reads["definitions"] += 1
        found = self.accounts.get(account["id"].lower())
        if found is not None:
            account["definitions"], account["definitions_read"] = copy.deepcopy(found["definitions"]), True
        return found is not None

    def read_assignments(self, account: Any) -> bool:
        self.reads["assignments"] += 1
        found = self.accounts.get(account["id"].lower())
        if found is not None:
            account["assignments"] = copy.deepcopy(found["assignments"])
        return found is not None

    def list_accounts(self, subscription: str) -> list[str]:
        self.reads["accounts"] += 1
        return [a["id"] for a in self.accounts.values()]

    def put(self, account: Any, state: Any) -> None:
        self.writes.append(("cosmos", "put", f"{account['name']}:{state['name']}"))
        held = self.accounts[account["id"].lower()]["assignments"]
        held[:] = [a for a in held if a["name"] != state["name"]] + [copy.deepcopy(state)]

    def delete(self, account: Any, state: Any) -> None:
        self.writes.append(("cosmos", "delete", f"{account['name']}:{state['name']}"))
        held = self.accounts[account["id"].lower()]["assignments"]
        held[:] = [a for a in held if a["name"] != state["name"]]


AUTOMATION = "9e0f1c2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"  # this run's principal (its token's oid)


class FakePostgres(PostgresApi):
    """Flexible servers as ARM holds them: Entra sign-ins on or off, their Entra administrators. Reads counted."""

    def __init__(self, writes: Writes) -> None:
        super().__init__(None)
        self.writes = writes
        self.servers: dict[str, dict[str, Any]] = {}
        self.reads = {"server": 0, "administrators": 0, "list": 0}

    def add(self, server_id: str, entra: bool = True, admin: str | None = "automation") -> None:
        name = server_id.rsplit("/", 1)[1]
        self.servers[server_id.lower()] = {
            "id": server_id,
            "name": name,
            "properties": {
                "fullyQualifiedDomainName": f"{name}.postgres.database.azure.com",
                "authConfig": {"activeDirectoryAuth": "Enabled" if entra else "Disabled"},
            },
            "admins": {AUTOMATION: admin} if admin else {},
        }

    def server(self, server_id: str) -> dict[str, Any] | None:
        self.reads["server"] += 1
        found = self.servers.get(server_id.lower())
        return copy.deepcopy({k: v for k, v in found.items() if k != "admins"}) if found else None

    def administrators(self, server_id: str) -> list[dict[str, Any]]:
        self.reads["administrators"] += 1
        admins = self.servers[server_id.lower()]["admins"]
        return [{"name": oid, "properties": {"objectId": oid, "principalName": n}} for oid, n in admins.items()]

    def list_servers(self, subscription_id: str) -> list[str]:
        self.reads["list"] += 1
        return [s["id"] for s in self.servers.values()]

    def enable_entra(self, server_id: str) -> None:
        self.writes.append(("postgres", "entra", server_id.rsplit("/", 1)[1]))
        self.servers[server_id.lower()]["properties"]["authConfig"]["activeDirectoryAuth"] = "Enabled"

    def add_administrator(self, server_id: str, object_id: str, name: str, tenant_id: str) -> None:
        self.writes.append(("postgres", "admin", f"{server_id.rsplit('/', 1)[1]}:{name}"))
        self.servers[server_id.lower()]["admins"][object_id] = name


class FakeDatabases(DatabaseClient):
    """The servers' roles as PostgreSQL holds them, per host: the Entra principals' mapping, each role's memberships
    and comment, the databases; the engine's changes applied as the server applies them. Sessions counted."""

    def __init__(self, writes: Writes) -> None:
        super().__init__(None)
        self.writes = writes
        self.hosts: dict[str, dict[str, Any]] = {}
        self.sessions = 0

    def add(self, name: str, roles: tuple[str, ...] = ("pg_read_all_data", "pg_write_all_data")) -> dict[str, Any]:
        host = {
            "principals": {AUTOMATION: "automation"},
            "roles": {r: {"login": False, "comment": None, "member_of": []} for r in roles},
            "databases": ["postgres", "orders"],
        }
        host["roles"]["automation"] = {"login": True, "comment": None, "member_of": ["azure_pg_admin"]}
        self.hosts[f"{name}.postgres.database.azure.com"] = host
        return host

    def token(self) -> str:
        return "header.payload.signature"

    def principal(self) -> tuple[str, str]:
        return AUTOMATION, TENANT

    @contextmanager
    def session(self, host: str, user: str, dbname: str = "postgres") -> Iterator[Any]:
        self.sessions += 1
        server = self.hosts[host]
        if server["principals"].get(AUTOMATION) != user:
            raise DatabaseError(f'password authentication failed for user "{user}"', code="28P01")
        yield FakeSession(self.writes, host, server)


class FakeSession:
    def __init__(self, writes: Writes, host: str, server: dict[str, Any]) -> None:
        self.writes, self.host, self.server = writes, host, server

    def principals(self) -> dict[str, str]:
        return dict(self.server["principals"])

    def roles(self) -> dict[str, RoleState]:
        return copy.deepcopy(self.server["roles"])

    def databases(self) -> list[str]:
        return list(self.server["databases"])

    def apply(self, changes: list[tuple[str, ...]]) -> None:
        roles, principals = self.server["roles"], self.server["principals"]
        for verb, *args in changes:
            self.writes.append(("database", verb, ":".join(args)))
            if verb == "create":
                role, oid = args
                if role in roles:
                    raise DatabaseError(f'role "{role}" already exists', code="42710")
                roles[role] = {"login": True, "comment": MARK, "member_of": []}
                principals[oid.lower()] = role
            elif verb == "grant":
                roles[args[1]]["member_of"] = sorted({*roles[args[1]]["member_of"], args[0]})
            elif verb == "revoke":
                roles[args[1]]["member_of"] = [g for g in roles[args[1]]["member_of"] if g != args[0]]
            else:
                roles.pop(args[0])
                for oid in [o for o, r in principals.items() if r == args[0]]:
                    principals.pop(oid)
