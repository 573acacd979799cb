"""ARM: Azure Database for PostgreSQL flexible servers (Microsoft.DBforPostgreSQL/flexibleServers), their databases and
their Microsoft Entra administrators, each backed by a real PostgreSQL (``postgres.py``).

- A server: ``location``, ``properties.version``, ``properties.authConfig`` (``activeDirectoryAuth`` and
  ``passwordAuth``, Enabled or Disabled; ``passwordAuth`` defaults to Enabled, and then ``administratorLogin`` and
  its password are required at creation, as Azure asks). Its name is its host's, so it is unique across the sandbox
  (3 to 63 lowercase letters, digits and hyphens); ``fullyQualifiedDomainName`` is
  ``<name>.postgres.database.azure.com``, ``state`` Ready. Creating one makes its PostgreSQL cluster; deleting it
  removes the cluster. The password is kept nowhere (the sandbox's servers take Entra tokens only).
- ``administrators/{objectId}`` (``AdministratorsMicrosoftEntra``): ``principalType`` (User, Group, ServicePrincipal),
  ``principalName``, ``tenantId``. Adding one makes the PostgreSQL role ``principalName``, mapped to the object, a
  member of ``azure_pg_admin`` with CREATEROLE and CREATEDB, as Azure does; removing it drops the role (or, when the
  role owns objects and cannot be dropped, takes its administration away). Refused while the server's Entra
  authentication is disabled.
- ``databases/{name}``: a database of the cluster (``CREATE DATABASE``, owned by ``azure_pg_admin``).

Writes are long-running, as the provider's are: 202 with ``Azure-AsyncOperation`` and ``Location``, the operation
Succeeded when first polled.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .. import ids
from ..core import ApiError, Context, Response, utc_now_iso
from .common import POSTGRES_SERVER_TYPE as SERVER_TYPE
from .common import ArmBase, _validate_tags

DOMAIN = ".postgres.database.azure.com"
SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]$")
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
PRINCIPAL_TYPES = {"user": "user", "group": "group", "serviceprincipal": "service"}
SWITCH = ("Enabled", "Disabled")


def _invalid(message: str, code: str = "InvalidParameterValue") -> ApiError:
    return ApiError(400, code, message)


class PostgresProvider(ArmBase):
    # -- servers ------------------------------------------------------------------------------------
    def postgres_server(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = self._authorized(ctx, segs)
        name = scope.names[0].lower()
        with self.store.lock:
            existing = self.store.get("generic", scope.key)

            def deleted() -> Response:  # the cluster goes with the resource (ArmBase._delete_under)
                for key in [k for k in self.store.all("pgAdministrator") if k.startswith(scope.key + "/")]:
                    self.store.delete("pgAdministrator", key)
                return self._pg_accepted(ctx, scope, existing["body"]["location"] if existing else "westeurope")

            answered = self._read_or_delete(ctx, scope, existing, deleted)
            if answered is not None:
                return answered
            body = ctx.request.json_object()
            if method == "PATCH":
                if existing is None:
                    raise self._not_found(SERVER_TYPE, name, scope.resource_group or "")
                new = self._patched(existing["body"], body)
            else:
                new = self._server_body(scope, body, existing)
            self.store.put("generic", scope.key, {"body": new})
        if existing is None:
            self.app.postgres.create(name)
        return self._pg_accepted(ctx, scope, new["location"])

    def _server_body(self, scope: ids.Scope, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        name = scope.names[0]
        if not SERVER_NAME.fullmatch(name):
            raise _invalid(
                f"Server name '{name}' is invalid: 3 to 63 characters, lowercase letters, digits and hyphens, "
                "starting and ending with a letter or a digit.",
                "InvalidServerName",
            )
        if existing is None and self.postgres_server_by_name(name) is not None:
            raise ApiError(409, "ServerNameAlreadyExists", f"Specified server name '{name}' is already used.")
        location = str(body.get("location") or "")
        if not location:
            raise _invalid("The location property is required for this definition.", "LocationRequired")
        props = _properties(body)
        auth = _auth_config(props.get("authConfig"), self.app.tenant_id, None)
        login_given = props.get("administratorLogin") and props.get("administratorLoginPassword")
        if existing is None and auth["passwordAuth"] == "Enabled" and not login_given:
            raise _invalid(
                "The administratorLogin and administratorLoginPassword are required when password "
                "authentication is enabled.",
                "MissingAdministratorLogin",
            )
        kept = {k: v for k, v in props.items() if k not in ("administratorLoginPassword", "authConfig")}
        return {
            "id": scope.raw,
            "name": name,
            "type": SERVER_TYPE,
            "location": location.lower().replace(" ", ""),
            "tags": _validate_tags(body.get("tags") or {}),
            "sku": body.get("sku") or {"name": "Standard_B1ms", "tier": "Burstable"},
            "systemData": {"createdAt": existing["body"]["systemData"]["createdAt"] if existing else utc_now_iso()},
            "properties": {
                **kept,
                "version": str(props.get("version") or "16"),
                "authConfig": auth,
                "state": "Ready",
                "fullyQualifiedDomainName": f"{name}{DOMAIN}",
            },
        }

    @staticmethod
    def _patched(current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        new = copy.deepcopy(current)
        props = _properties(body)
        if "authConfig" in props:
            auth = current["properties"]["authConfig"]
            new["properties"]["authConfig"] = _auth_config(props["authConfig"], auth["tenantId"], auth)
        if "tags" in body:
            new["tags"] = _validate_tags(body["tags"] or {})
        return new

    def list_postgres_servers(self, ctx: Context, sub: str, rg: str | None) -> Response:
        return self._page(ctx, self._listed(ctx, sub, rg, SERVER_TYPE))

    def postgres_server_by_name(self, name: str) -> dict[str, Any] | None:
        """A server by its name (its host's first label), wherever it is; the gateway routes by it."""
        for record in self.store.all("generic").values():
            body = record["body"]
            if body.get("type") == SERVER_TYPE and body["name"].lower() == name.lower():
                return dict(body)
        return None

    # -- Microsoft Entra administrators ----------------------------------------------------------------
    def postgres_administrators(self, ctx: Context, segs: list[str], object_id: str | None) -> Response:
        server, scope = self._server_of(ctx, segs, "administrators", object_id)
        admins = self._administrators(server)
        if object_id is None:
            return Response(200, {"value": admins})
        found = next((a for a in admins if a["name"].lower() == object_id.lower()), None)
        method = ctx.request.method
        if method == "GET":
            if found is None:
                raise self._not_found(f"{SERVER_TYPE}/administrators", f"{server['name']}/{object_id}", "")
            return Response(200, found)
        key = f"{server['id'].lower()}/administrators/{object_id.lower()}"
        if method == "DELETE":
            if found is None:
                return Response(204)
            self._drop_admin_role(server["name"], found["properties"]["principalName"])
            self.store.delete("pgAdministrator", key)
            return self._pg_accepted(ctx, scope, server["location"])
        if server["properties"]["authConfig"]["activeDirectoryAuth"] != "Enabled":
            raise _invalid(
                f"Microsoft Entra authentication is not enabled on server '{server['name']}': set "
                "authConfig.activeDirectoryAuth to Enabled first.",
                "AadAuthOperationCannotBePerformedWhenAadAuthDisabled",
            )
        if not ids.is_guid(object_id):
            raise _invalid(f"The object id '{object_id}' is not a GUID.")
        props = ctx.request.json_object().get("properties") or {}
        principal_type, principal_name = str(props.get("principalType") or ""), str(props.get("principalName") or "")
        if principal_type.lower() not in PRINCIPAL_TYPES:
            raise _invalid(f"The principalType '{principal_type}' is not one of User, Group, ServicePrincipal.")
        if not principal_name:
            raise _invalid("The principalName is required.")
        self._make_admin_role(server["name"], principal_name, object_id, PRINCIPAL_TYPES[principal_type.lower()])
        body = {
            "id": f"{server['id']}/administrators/{object_id}",
            "name": object_id,
            "type": f"{SERVER_TYPE}/administrators",
            "properties": {
                "principalType": principal_type,
                "principalName": principal_name,
                "objectId": object_id,
                "tenantId": str(props.get("tenantId") or self.app.tenant_id),
            },
        }
        self.store.put("pgAdministrator", key, {"body": body})
        return self._pg_accepted(ctx, scope, server["location"])

    def _administrators(self, server: dict[str, Any]) -> list[dict[str, Any]]:
        prefix = f"{server['id'].lower()}/administrators/"
        return [r["body"] for k, r in sorted(self.store.all("pgAdministrator").items()) if k.startswith(prefix)]

    def _make_admin_role(self, server: str, role: str, object_id: str, kind: str) -> None:
        with self.app.postgres.superuser(server) as conn, conn.transaction():
            row = conn.execute(
                "SELECT r.oid, p.object_id FROM pg_catalog.pg_roles r "
                "LEFT JOIN pgaadauth.principals p ON p.role_oid = r.oid WHERE r.rolname = %s",
                (role,),
            ).fetchone()
            if row is not None and (row[1] or "").lower() != object_id.lower():
                raise _invalid(
                    f"A role named '{role}' already exists on server '{server}' and is not mapped to {object_id}."
                )
            quoted = _quoted(role)
            if row is None:
                conn.execute(f"CREATE ROLE {quoted} LOGIN")
            conn.execute(f"ALTER ROLE {quoted} CREATEROLE CREATEDB")
            conn.execute(f"GRANT azure_pg_admin TO {quoted}")
            conn.execute(
                "INSERT INTO pgaadauth.principals SELECT oid, %s, %s, %s, false, true FROM pg_catalog.pg_roles "
                "WHERE rolname = %s ON CONFLICT (role_oid) DO UPDATE SET is_admin = true",
                (object_id.lower(), kind, self.app.tenant_id, role),
            )

    def _drop_admin_role(self, server: str, role: str) -> None:
        import psycopg

        quoted = _quoted(role)
        with self.app.postgres.superuser(server) as conn:
            try:
                conn.execute(f"DROP ROLE IF EXISTS {quoted}")
            except psycopg.errors.DependentObjectsStillExist:
                conn.execute(f"REVOKE azure_pg_admin FROM {quoted}")
                conn.execute(f"ALTER ROLE {quoted} NOCREATEROLE NOCREATEDB")
                conn.execute(
                    "UPDATE pgaadauth.principals SET is_admin = false WHERE role_oid = "
                    "(SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)",
                    (role,),
                )

    # -- databases ------------------------------------------------------------------------------------
    def postgres_databases(self, ctx: Context, segs: list[str], name: str | None) -> Response:
        import psycopg

        server, scope = self._server_of(ctx, segs, "databases", name)
        with self.app.postgres.superuser(server["name"]) as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")]
            if name is None:
                return Response(200, {"value": [_database(server, n) for n in names]})
            method = ctx.request.method
            if method == "GET":
                if name not in names:
                    raise self._not_found(f"{SERVER_TYPE}/databases", f"{server['name']}/{name}", "")
                return Response(200, _database(server, name))
            quoted = _quoted(name)
            if method == "DELETE":
                if name not in names:
                    return Response(204)
                conn.execute(f"DROP DATABASE {quoted} WITH (FORCE)")
            elif name not in names:
                if not DATABASE_NAME.fullmatch(name):
                    raise _invalid(f"The database name '{name}' is not valid.")
                try:
                    conn.execute(f"CREATE DATABASE {quoted} OWNER azure_pg_admin")
                except psycopg.Error as exc:
                    raise _invalid(f"The database '{name}' could not be created: {exc}") from exc
        return self._pg_accepted(ctx, scope, server["location"])

    # -- shared ---------------------------------------------------------------------------------------
    def _server_of(
        self, ctx: Context, segs: list[str], kind: str, name: str | None
    ) -> tuple[dict[str, Any], ids.Scope]:
        return self._parent_of(ctx, segs, name is not None, (SERVER_TYPE, kind))

    def _pg_accepted(self, ctx: Context, scope: ids.Scope, location: str) -> Response:
        return self._operation_accepted(
            ctx, scope, ("pgOperation", "Microsoft.DBforPostgreSQL", location, "azureAsyncOperation")
        )

    def postgres_operation(self, ctx: Context, op_id: str, kind: str) -> Response:
        return self._operation(
            op_id, kind, "pgOperation", ApiError(404, "OperationNotFound", f"Operation '{op_id}' not found.")
        )


def _auth_config(raw: Any, tenant: str, current: dict[str, Any] | None) -> dict[str, str]:
    given = raw if isinstance(raw, dict) else {}
    auth = {
        "activeDirectoryAuth": str(
            given.get("activeDirectoryAuth") or (current or {}).get("activeDirectoryAuth") or "Disabled"
        ),
        "passwordAuth": str(given.get("passwordAuth") or (current or {}).get("passwordAuth") or "Enabled"),
        "tenantId": str(given.get("tenantId") or tenant),
    }
    for key in ("activeDirectoryAuth", "passwordAuth"):
        if auth[key] not in SWITCH:
            raise _invalid(f"authConfig.{key} must be Enabled or Disabled, not '{auth[key]}'.")
    if auth["activeDirectoryAuth"] == auth["passwordAuth"] == "Disabled":
        raise _invalid("At least one of Microsoft Entra or password authentication must be enabled.")
    return auth


def _quoted(name: str) -> str:
    """A PostgreSQL identifier, quoted (role and database names keep their case)."""
    return '"' + name.replace('"', '""') + '"'


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties")
    return props if isinstance(props, dict) else {}


def _database(server: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "id": f"{server['id']}/databases/{name}",
        "name": name,
        "type": f"{SERVER_TYPE}/databases",
        "properties": {"charset": "UTF8", "collation": "en_US.utf8"},
    }
