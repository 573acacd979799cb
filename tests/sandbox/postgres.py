"""Azure Database for PostgreSQL flexible server's databases: a real PostgreSQL for each server, with what Azure adds.

Each ``Microsoft.DBforPostgreSQL/flexibleServers`` resource ARM makes (``arm/postgres.py``) is a PostgreSQL cluster
of its own (Debian's ``postgresql`` package: ``initdb`` into ``<state>/postgres/<server>/data`` at the server's
creation, started on first need, stopped with the sandbox), listening on a Unix socket only, where the sandbox is its
only client with PostgreSQL's ``trust``. Clients reach it through the gateway (``postgres_gateway.py``), which takes
an Entra token as the password as Azure does and then hands the connection to PostgreSQL as the role the client
named: from there on, PostgreSQL itself decides what the role may do (its grants, its memberships, its privileges).

What Azure adds, emulated in each cluster's ``postgres`` database:

- the superuser ``azuresu`` (Azure's own, which no customer has) and the role ``azure_pg_admin``;
- ``pg_catalog.pgaadauth_create_principal(roleName, isAdmin, isMfa)``,
  ``pg_catalog.pgaadauth_create_principal_with_oid(roleName, objectId, objectType, isAdmin, isMfa)`` and
  ``pg_catalog.pgaadauth_list_principals(isAdminValue)``, with the arguments, results and checks Microsoft Learn
  gives ("Manage Microsoft Entra roles"): only an Entra administrator may create Entra roles; an object id must be
  one of the tenant's principals (``Could not validate AAD user <oid> because its name is not found in the
  tenant.``); an admin role is a member of ``azure_pg_admin`` with CREATEROLE and CREATEDB.
- The mapping from a role to its Entra object: Azure keeps it as a security label (provider ``pgaadauth``), which
  needs a label provider compiled into the server; here it is a table (``pgaadauth.principals``) keyed by the role's
  oid, so that a role dropped and made again by hand is not mapped (as a label goes with its role). ``SECURITY
  LABEL FOR pgaadauth`` itself is not emulated.
- The tenant's principals the functions check an object id against (``pgaadauth.tenant_objects``), refreshed from
  the sandbox's directory each time an Entra administrator signs in.

PostgreSQL refuses to run as root: when the sandbox runs as root, each server runs in a user namespace of its own
(``unshare --user``) as an unprivileged user, on files root owns outside it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPERUSER = "azuresu"
ADMIN_GROUP = "azure_pg_admin"
ADMIN_ONLY = "Only Microsoft Entra administrators of the server can create Microsoft Entra roles"

# Run once in the ``postgres`` database of a new cluster, as the superuser.
BOOTSTRAP = f"""
CREATE ROLE {ADMIN_GROUP} NOLOGIN;
CREATE SCHEMA pgaadauth;
REVOKE ALL ON SCHEMA pgaadauth FROM PUBLIC;
CREATE TABLE pgaadauth.principals (
    role_oid oid PRIMARY KEY, object_id text NOT NULL, principal_type text NOT NULL, tenant_id text NOT NULL,
    is_mfa boolean NOT NULL, is_admin boolean NOT NULL);
CREATE TABLE pgaadauth.tenant_objects (object_id text PRIMARY KEY, display_name text, principal_type text NOT NULL);
CREATE TABLE pgaadauth.tenant (id text NOT NULL);

CREATE FUNCTION pg_catalog.pgaadauth_list_principals(isAdminValue boolean)
RETURNS TABLE(rolname name, principalType text, objectId text, tenantId text, isMfa integer, isAdmin integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.rolname, p.principal_type, p.object_id, p.tenant_id, p.is_mfa::integer, p.is_admin::integer
    FROM pgaadauth.principals p JOIN pg_catalog.pg_roles r ON r.oid = p.role_oid
    WHERE p.is_admin OR NOT isAdminValue ORDER BY r.rolname
$$;

CREATE FUNCTION pg_catalog.pgaadauth_create_principal_with_oid(
    roleName text, objectId text, objectType text, isAdmin boolean, isMfa boolean)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pgaadauth.principals p JOIN pg_catalog.pg_roles r ON r.oid = p.role_oid
        WHERE r.rolname = session_user AND p.is_admin
    ) THEN
        RAISE EXCEPTION '{ADMIN_ONLY}' USING ERRCODE = '42501';
    END IF;
    IF objectType IS NULL OR objectType NOT IN ('user', 'group', 'service') THEN
        RAISE EXCEPTION 'objectType must be user, group or service, not %', objectType USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pgaadauth.tenant_objects WHERE object_id = lower(objectId)) THEN
        RAISE EXCEPTION 'Could not validate AAD user % because its name is not found in the tenant.', objectId
            USING ERRCODE = '22023';
    END IF;
    EXECUTE format('CREATE ROLE %I LOGIN', roleName);
    IF isAdmin THEN
        EXECUTE format('ALTER ROLE %I CREATEROLE CREATEDB', roleName);
        EXECUTE format('GRANT {ADMIN_GROUP} TO %I', roleName);
    END IF;
    INSERT INTO pgaadauth.principals
        SELECT r.oid, lower(objectId), objectType, (SELECT id FROM pgaadauth.tenant), isMfa, isAdmin
        FROM pg_catalog.pg_roles r WHERE r.rolname = roleName;
    RETURN format('Created role for "%s"', roleName);
END
$$;

CREATE FUNCTION pg_catalog.pgaadauth_create_principal(roleName text, isAdmin boolean, isMfa boolean)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found pgaadauth.tenant_objects;
BEGIN
    SELECT * INTO found FROM pgaadauth.tenant_objects WHERE display_name = roleName;
    IF found.object_id IS NULL THEN
        RAISE EXCEPTION 'Could not validate AAD user % because its name is not found in the tenant.', roleName
            USING ERRCODE = '22023';
    END IF;
    RETURN pg_catalog.pgaadauth_create_principal_with_oid(roleName, found.object_id, found.principal_type,
                                                          isAdmin, isMfa);
END
$$;
"""


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries on this machine (``apt-get install postgresql``)."""


def server_binaries() -> Path:
    """The newest PostgreSQL's bin directory (``SANDBOX_POSTGRES_BIN``, else Debian's ``/usr/lib/postgresql/<v>``)."""
    chosen = os.environ.get("SANDBOX_POSTGRES_BIN")
    candidates = [chosen] if chosen else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "the sandbox's PostgreSQL servers need PostgreSQL's server binaries: apt-get install postgresql "
        "(or set SANDBOX_POSTGRES_BIN to a directory with initdb and postgres)"
    )


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


@dataclass
class Instance:
    """One server's PostgreSQL cluster."""

    name: str
    home: Path
    process: subprocess.Popen[bytes] | None = None
    socket_dir: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"


class PostgresServers:
    """The clusters of the sandbox's flexible servers, by server name (names are global in Azure, as their hosts)."""

    def __init__(self, state_dir: Path, tenant_id: str) -> None:
        self.root = state_dir / "postgres"
        self.tenant_id = tenant_id
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()

    def _instance(self, name: str) -> Instance:
        with self._lock:
            return self._instances.setdefault(name.lower(), Instance(name.lower(), self.root / name.lower()))

    def create(self, name: str) -> None:
        """A new server's cluster: made (``initdb``), started, and given what Azure adds. Idempotent."""
        instance = self._instance(name)
        with instance.lock:
            self._start(instance)

    def exists(self, name: str) -> bool:
        return (self.root / name.lower() / "data" / "PG_VERSION").exists()

    @contextmanager
    def superuser(self, name: str, dbname: str = "postgres") -> Iterator[Any]:
        """A connection as ``azuresu`` (autocommit), the cluster started if it was not."""
        import psycopg

        instance = self._instance(name)
        with instance.lock:
            self._start(instance)
        assert instance.socket_dir is not None
        with psycopg.connect(
            host=str(instance.socket_dir), user=SUPERUSER, dbname=dbname, autocommit=True, connect_timeout=10
        ) as conn:
            yield conn

    def socket_path(self, name: str) -> str:
        """Where the server's PostgreSQL listens (its Unix socket), started if it was not."""
        instance = self._instance(name)
        with instance.lock:
            self._start(instance)
        assert instance.socket_dir is not None
        return str(instance.socket_dir / ".s.PGSQL.5432")

    def drop(self, name: str) -> None:
        """The server deleted: its cluster stopped and its files removed."""
        instance = self._instance(name)
        with instance.lock:
            self._stop(instance)
            shutil.rmtree(instance.home, ignore_errors=True)

    def wipe(self) -> None:
        """Every server's cluster stopped and removed (the sandbox's reset)."""
        self.close()
        with self._lock:
            self._instances.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            instances = list(self._instances.values())
        for instance in instances:
            with instance.lock:
                self._stop(instance)

    # -- the processes ------------------------------------------------------------------------------
    def _start(self, instance: Instance) -> None:
        if instance.process is not None and instance.process.poll() is None:
            return
        binaries = server_binaries()
        fresh = not (instance.data_dir / "PG_VERSION").exists()
        instance.home.mkdir(parents=True, exist_ok=True)
        if fresh:
            shutil.rmtree(instance.data_dir, ignore_errors=True)
            initdb = [str(binaries / "initdb"), "-D", str(instance.data_dir), "-U", SUPERUSER, "-A", "trust", "-N"]
            initdb += ["-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"]
            done = subprocess.run(_unprivileged(initdb), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"initdb for server {instance.name} failed: {done.stderr or done.stdout}")
        # A short directory for the socket: a Unix socket's path has at most 107 bytes, a state dir may be long.
        instance.socket_dir = Path(tempfile.mkdtemp(prefix="sandbox-pg-"))
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(instance.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "shared_buffers": "16MB",
            "max_connections": "40",
            "log_min_messages": "warning",
        }
        command = [str(binaries / "postgres"), "-D", str(instance.data_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        log = (instance.home / "postgres.log").open("ab")
        instance.process = subprocess.Popen(_unprivileged(command), stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._wait_ready(instance)
        if fresh:
            self._bootstrap(instance)

    def _wait_ready(self, instance: Instance) -> None:
        import psycopg

        assert instance.socket_dir is not None and instance.process is not None
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(host=str(instance.socket_dir), user=SUPERUSER, dbname="postgres").close()
                return
            except psycopg.OperationalError:
                if instance.process.poll() is not None or time.monotonic() > deadline:
                    tail = (instance.home / "postgres.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"PostgreSQL for server {instance.name} did not start: {tail}") from None
                time.sleep(0.05)

    def _bootstrap(self, instance: Instance) -> None:
        import psycopg

        assert instance.socket_dir is not None
        with psycopg.connect(host=str(instance.socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            conn.execute(BOOTSTRAP)
            conn.execute("INSERT INTO pgaadauth.tenant VALUES (%s)", (self.tenant_id,))

    @staticmethod
    def _stop(instance: Instance) -> None:
        process, instance.process = instance.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown: its clients are disconnected
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if instance.socket_dir is not None:
            shutil.rmtree(instance.socket_dir, ignore_errors=True)
            instance.socket_dir = None


def _unprivileged(command: list[str]) -> list[str]:
    """The command as an unprivileged user: PostgreSQL will not run as root."""
    if os.geteuid() != 0:
        return command
    return ["unshare", "--user", "--map-user=1000", "--map-group=1000", *command]
