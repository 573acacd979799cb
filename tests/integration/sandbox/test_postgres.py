"""Azure Database for PostgreSQL flexible servers in the sandbox, through real clients: the control plane through
azure-mgmt-postgresqlflexibleservers (a server with Entra authentication, its database, its Entra administrator,
long-running writes), the database through psycopg (libpq) at ``<server>.postgres.database.azure.com`` over TLS
with verify-full, an Entra token as the password; a real PostgreSQL enforcing what each role was granted."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.postgresqlflexibleservers import PostgreSQLManagementClient

from tests.integration.sandbox_helpers import Sandbox

AUDIENCE = "https://ossrdbms-aad.database.windows.net/.default"
RG = "rg-data"


@pytest.fixture
def libpq_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """libpq pointed at the sandbox's gateway as its env file says (the host names stay Azure's)."""
    for key in ("PGHOSTADDR", "PGPORT", "PGSSLROOTCERT"):
        monkeypatch.setenv(key, sandbox.env[key])
    yield


def client(sandbox: Sandbox) -> PostgreSQLManagementClient:
    return PostgreSQLManagementClient(sandbox.credential(), sandbox.subscription_id, **sandbox.arm_kwargs())


def server(sandbox: Sandbox, name: str, admin: dict[str, str] | None = None) -> Any:
    """A server with Entra authentication only, a database ``orders``, and ``admin`` (or the sandbox's own
    principal) as its Entra administrator, named ``automation``."""
    sandbox.resource_group(RG)
    pg = client(sandbox)
    body = {
        "location": "westeurope",
        "sku": {"name": "Standard_B1ms", "tier": "Burstable"},
        "properties": {"version": "16", "authConfig": {"activeDirectoryAuth": "Enabled", "passwordAuth": "Disabled"}},
    }
    made = pg.servers.begin_create_or_update(RG, name, body, polling_interval=0).result()
    pg.databases.begin_create(RG, name, "orders", {"properties": {"charset": "UTF8"}}, polling_interval=0).result()
    object_id = admin["principal_id"] if admin else sandbox.admin_principal_id
    entry = {"properties": {"principalType": "ServicePrincipal", "principalName": "automation"}}
    pg.administrators_microsoft_entra.begin_create_or_update(RG, name, object_id, entry, polling_interval=0).result()
    return made


def token(sandbox: Sandbox, principal: dict[str, str] | None = None, scope: str = AUDIENCE) -> str:
    credential = sandbox.credential(principal["client_id"], principal["client_secret"]) if principal else None
    return str((credential or sandbox.credential()).get_token(scope).token)


def connect(host: str, user: str, password: str, dbname: str = "orders", sslmode: str = "verify-full") -> Any:
    return psycopg.connect(host=host, user=user, password=password, dbname=dbname, sslmode=sslmode, autocommit=True)


def test_a_workload_role_made_by_the_entra_admin_logs_in_with_its_token_and_can_do_what_it_was_granted(
    sandbox: Sandbox, libpq_env: None
) -> None:
    made = server(sandbox, "pg-orders")
    host = made.fully_qualified_domain_name
    assert host == "pg-orders.postgres.database.azure.com"
    assert made.auth_config.active_directory_auth == "Enabled"
    workload, other = (sandbox.control.create_principal(display_name=n) for n in ("orders-api", "billing"))
    with connect(host, "automation", token(sandbox), dbname="postgres") as admin:
        created = admin.execute(
            "SELECT pgaadauth_create_principal_with_oid('orders-api', %s, 'service', false, false)",
            (workload["principal_id"],),
        ).fetchone()
        assert created == ('Created role for "orders-api"',)
        listed = admin.execute("SELECT rolname, principaltype, objectid, isadmin FROM pgaadauth_list_principals(false)")
        assert ("orders-api", "service", workload["principal_id"].lower(), 0) in listed.fetchall()
        assert admin.execute("SELECT rolname FROM pgaadauth_list_principals(true)").fetchall() == [("automation",)]
    with connect(host, "automation", token(sandbox)) as admin:
        admin.execute("CREATE TABLE items (id int PRIMARY KEY, customer text)")
        admin.execute("INSERT INTO items VALUES (1001, 'contoso')")
        admin.execute('GRANT pg_read_all_data TO "orders-api"')

    with connect(host, "orders-api", token(sandbox, workload)) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT current_user, customer FROM items").fetchall() == [("orders-api", "contoso")]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table items"):
            conn.execute("INSERT INTO items VALUES (1002, 'fabrikam')")
    # Another principal's token does not log in as the workload, nor a token for another audience.
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "orders-api"'):
        connect(host, "orders-api", token(sandbox, other))
    with pytest.raises(psycopg.OperationalError, match="does not have a valid audience claim"):
        connect(host, "orders-api", token(sandbox, workload, scope=sandbox.url + "/.default"))
    with pytest.raises(psycopg.OperationalError, match="has invalid format"):
        connect(host, "orders-api", "not-a-token")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(host, "orders-api", token(sandbox, workload), sslmode="disable")
    # An unknown database is PostgreSQL's own answer, after the token was accepted.
    with pytest.raises(psycopg.OperationalError, match='database "payments" does not exist'):
        connect(host, "orders-api", token(sandbox, workload), dbname="payments")


def test_only_an_entra_admin_makes_entra_roles_and_only_for_the_tenants_principals(
    sandbox: Sandbox, libpq_env: None
) -> None:
    host = server(sandbox, "pg-admins").fully_qualified_domain_name
    workload = sandbox.control.create_principal(display_name="orders-api")
    with connect(host, "automation", token(sandbox), dbname="postgres") as admin:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="because its name is not found in the tenant"):
            admin.execute(
                "SELECT pgaadauth_create_principal_with_oid('ghost', '00000000-0000-0000-0000-00000000beef', "
                "'service', false, false)"
            )
        admin.execute(
            "SELECT pgaadauth_create_principal_with_oid('orders-api', %s, 'service', false, false)",
            (workload["principal_id"],),
        )
        with pytest.raises(psycopg.errors.DuplicateObject):
            admin.execute(
                "SELECT pgaadauth_create_principal_with_oid('orders-api', %s, 'service', false, false)",
                (workload["principal_id"],),
            )
    with (
        connect(host, "orders-api", token(sandbox, workload), dbname="postgres") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="Only Microsoft Entra administrators"),
    ):
        conn.execute(
            "SELECT pgaadauth_create_principal_with_oid('x', %s, 'service', false, false)", (workload["principal_id"],)
        )
    # A role the admin drops is gone for good: its token no longer logs in, even as a role made again by hand.
    with connect(host, "automation", token(sandbox), dbname="postgres") as admin:
        admin.execute('DROP ROLE "orders-api"')
        admin.execute('CREATE ROLE "orders-api" LOGIN')
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(host, "orders-api", token(sandbox, workload))


def test_the_control_plane_refuses_an_admin_without_entra_auth_and_a_taken_name_and_deletes_the_database(
    sandbox: Sandbox, libpq_env: None
) -> None:
    sandbox.resource_group(RG)
    sandbox.resource_group("rg-other")
    pg = client(sandbox)
    body = {
        "location": "westeurope",
        "properties": {"version": "16", "administratorLogin": "pgadmin", "administratorLoginPassword": "x-Pa55word"},
    }
    made = pg.servers.begin_create_or_update(RG, "pg-password", body, polling_interval=0).result()
    assert made.auth_config.active_directory_auth == "Disabled" and made.auth_config.password_auth == "Enabled"
    entry = {"properties": {"principalType": "ServicePrincipal", "principalName": "automation"}}
    with pytest.raises(HttpResponseError) as refused:
        pg.administrators_microsoft_entra.begin_create_or_update(
            RG, "pg-password", sandbox.admin_principal_id, entry, polling_interval=0
        ).result()
    assert refused.value.status_code == 400 and "not enabled" in str(refused.value)
    with pytest.raises(HttpResponseError) as taken:
        pg.servers.begin_create_or_update("rg-other", "pg-password", body, polling_interval=0).result()
    assert taken.value.status_code == 409
    # Entra authentication turned on by an update; then the admin may be added and signs in.
    update = {"properties": {"authConfig": {"activeDirectoryAuth": "Enabled"}}}
    updated = pg.servers.begin_update(RG, "pg-password", update, polling_interval=0).result()
    assert updated.auth_config.active_directory_auth == "Enabled" and updated.auth_config.password_auth == "Enabled"
    pg.administrators_microsoft_entra.begin_create_or_update(
        RG, "pg-password", sandbox.admin_principal_id, entry, polling_interval=0
    ).result()
    admins = list(pg.administrators_microsoft_entra.list_by_server(RG, "pg-password"))
    assert [(a.principal_name, a.object_id) for a in admins] == [("automation", sandbox.admin_principal_id)]
    with connect("pg-password.postgres.database.azure.com", "automation", token(sandbox), "postgres") as admin:
        assert admin.execute("SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    pg.administrators_microsoft_entra.begin_delete(
        RG, "pg-password", sandbox.admin_principal_id, polling_interval=0
    ).result()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect("pg-password.postgres.database.azure.com", "automation", token(sandbox), "postgres")
    pg.servers.begin_delete(RG, "pg-password", polling_interval=0).result()
    with pytest.raises(psycopg.OperationalError, match="is not known"):
        connect("pg-password.postgres.database.azure.com", "automation", token(sandbox), "postgres")


def test_entra_administrators_signing_in_at_once_all_get_in(sandbox: Sandbox, libpq_env: None) -> None:
    """Each administrator's sign-in refreshes the tenant's principals on the server; many at once all succeed (a
    rollout's clusters reach the same servers in parallel)."""
    host = server(sandbox, "pg-at-once").fully_qualified_domain_name
    password = token(sandbox)

    def sign_in(attempt: int) -> int:
        del attempt  # pool.map hands each call its index; every sign-in is alike
        with connect(host, "automation", password, dbname="postgres") as admin:
            return int(admin.execute("SELECT 1").fetchone()[0])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(sign_in, range(32))) == [1] * 32
