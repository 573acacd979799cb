"""The gateway in front of the sandbox's PostgreSQL servers: PostgreSQL's wire protocol, Entra tokens as passwords.

A client connects as it would to Azure, to ``<server>.postgres.database.azure.com`` on 5432: libpq and every driver
built on it take ``PGHOSTADDR`` and ``PGPORT`` from the environment, which the sandbox's env sets to this gateway
(as ``HTTPS_PROXY`` points HTTP clients at the sandbox), and ``PGSSLROOTCERT`` to its CA. One gateway serves every
server: the TLS handshake's server name (SNI, which libpq sends) says which.

What it does, as Azure's servers do (``require_secure_transport`` on, Entra authentication):

- TLS is required: a startup without it is refused with PostgreSQL's ``no pg_hba.conf entry ... no encryption``.
  GSSAPI encryption is declined (``N``), as a server without it does.
- The password is the Entra token, checked for Entra's signature, its audience
  (``https://ossrdbms-aad.database.windows.net``), its expiry and its ``oid``, with Azure's messages ("The access
  token has expired. Please acquire a new token and retry." ...). The role named must be mapped to that very object
  (``pgaadauth.principals``, see ``postgres.py``); a role mapped to another object, or to none, is refused with
  ``password authentication failed for user "<role>"``. A server whose Entra authentication is disabled takes no
  token. Password (non-Entra) logins are not emulated: the sandbox's servers take Entra tokens only.
- Then the connection is PostgreSQL's: the startup is replayed to the server's cluster over its Unix socket (where
  the sandbox is trusted) and the bytes flow both ways unchanged; PostgreSQL checks the database, the role's
  privileges and every statement.

Faults are injected as for HTTP operations (``postgres.signIn``, the path being the server's host): a connection reset,
or a FATAL error with its SQLSTATE; sign-ins are counted in the sandbox's stats (``postgres.signIn``, by outcome).

Not emulated: cancel requests (they arrive without TLS, so without a server name), groups' roles (a role mapped to
a group), MFA claims.
"""

from __future__ import annotations

import select
import socket
import socketserver
import ssl
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import jwt
from .tls import issue_server_certificate

if TYPE_CHECKING:
    from .app import Sandbox

AUDIENCE = "https://ossrdbms-aad.database.windows.net"
DOMAIN = ".postgres.database.azure.com"
SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608
MAX_STARTUP = 10000  # PostgreSQL's own limit on a startup packet


class Reset(Exception):
    """An injected fault: the connection dropped without an answer."""


class Refused(Exception):
    """A FATAL error to send the client before closing (SQLSTATE and message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def error_message(code: str, message: str) -> bytes:
    fields = b"".join(tag + text.encode() + b"\0" for tag, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code)))
    fields += b"M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


class _Connection(socketserver.BaseRequestHandler):
    server: PostgresGateway

    def handle(self) -> None:
        raw: socket.socket = self.request
        raw.settimeout(30)
        try:
            tls = self._negotiate(raw)
            if tls is None:
                return
            startup, params = _read_startup(tls)
            backend = self.server.admit(tls, params)
            self.server.app.count("postgres.signIn", "ok")
            backend.sendall(startup)
            tls.settimeout(None)
            _relay(tls, backend)
        except Reset:
            # An injected fault: RST instead of an answer, as a dropped connection looks to a client.
            self.server.app.count("postgres.signIn", "reset")
            (getattr(self, "_tls", None) or raw).setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        except Refused as refused:
            self.server.app.count("postgres.signIn", refused.code)
            try:
                (getattr(self, "_tls", None) or raw).sendall(error_message(refused.code, refused.message))
            except OSError:
                pass
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        finally:
            tls_socket = getattr(self, "_tls", None)
            if tls_socket is not None:
                tls_socket.close()

    def _negotiate(self, raw: socket.socket) -> ssl.SSLSocket | None:
        """The client's TLS (after declining GSSAPI); a startup without it is refused, a cancel ignored."""
        while True:
            head = _read_exact(raw, 8)
            length, code = struct.unpack("!II", head)
            if length == 8 and code == GSS_REQUEST:
                raw.sendall(b"N")
                continue
            if length == 8 and code == SSL_REQUEST:
                raw.sendall(b"S")
                tls = self.server.context.wrap_socket(raw, server_side=True)
                self._tls = tls
                return tls
            if code == CANCEL_REQUEST:
                return None
            if not 8 <= length <= MAX_STARTUP:
                raise Refused("08P01", "invalid length of startup packet")
            params = _parse_params(_read_exact(raw, length - 8))
            raise Refused(
                "28000",
                f'no pg_hba.conf entry for host "{self.client_address[0]}", user "{params.get("user", "")}", '
                f'database "{params.get("database", params.get("user", ""))}", no encryption',
            )


class PostgresGateway(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, app: Sandbox, state_dir: Path) -> None:
        self.app = app
        cert, key = issue_server_certificate(
            state_dir,
            state_dir / "postgres-gateway.pem",
            state_dir / "postgres-gateway-key.pem",
            "*" + DOMAIN,
            ["*" + DOMAIN],
            ["127.0.0.1"],
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.context.sni_callback = _remember_server_name
        super().__init__(("127.0.0.1", port), _Connection)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def admit(self, tls: ssl.SSLSocket, params: dict[str, str]) -> socket.socket:
        """The client's token checked for the role it names; a connection to the server's cluster, or Refused."""
        user = params.get("user", "")
        host = str(getattr(tls, "sandbox_server_name", "") or "").lower()
        name = host[: -len(DOMAIN)] if host.endswith(DOMAIN) else ""
        server = self.app.arm.postgres_server_by_name(name) if name else None
        if server is None:
            raise Refused("08004", f'the server "{host or "(no server name: connect with TLS and SNI)"}" is not known')
        # Injected faults (operation postgres.signIn, path the server's host): a reset, or a FATAL error such as a
        # server restarting (57P03) or out of connection slots (53300), as Azure's servers answer during a failover.
        fault = self.app.faults.pick("postgres.signIn", "CONNECT", host)
        if fault is not None and fault.reset:
            raise Reset()
        if fault is not None:
            raise Refused(fault.code or "57P03", fault.message or "the database system is starting up")
        tls.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword: the token comes next
        token = _read_password(tls)
        claims = self._claims(token)
        auth = (server["properties"].get("authConfig") or {}).get("activeDirectoryAuth", "Disabled")
        mapped = self._mapping(name, user) if auth == "Enabled" else None
        if mapped is None or mapped["object_id"] != str(claims.get("oid", "")).lower():
            raise Refused("28P01", f'password authentication failed for user "{user}"')
        if mapped["is_admin"]:
            self._refresh_tenant(name)
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        backend.connect(self.app.postgres.socket_path(name))
        return backend

    def _claims(self, token: str) -> dict[str, Any]:
        if token.count(".") != 2:
            raise Refused(
                "28000",
                "The access token has invalid format. Please ensure the token is passed exactly as returned by the "
                "authentication endpoint and retry.",
            )
        try:
            claims = jwt.verify(token, self.app._entra_key.public_key())
        except jwt.InvalidToken:
            raise Refused(
                "28000", "An error occurred while validating the access token. Please acquire a new token and retry."
            ) from None
        if float(claims.get("exp", 0)) < time.time():
            raise Refused("28000", "The access token has expired. Please acquire a new token and retry.")
        if str(claims.get("aud", "")).rstrip("/").lower() != AUDIENCE:
            raise Refused(
                "28000",
                "The access token does not have a valid audience claim. Please acquire a new token for the "
                f'resource "{AUDIENCE}".',
            )
        if not claims.get("oid"):
            raise Refused("28000", "The access token doesn't have a valid oid claim. Acquire a new token and try again")
        return dict(claims)

    def _mapping(self, server: str, user: str) -> dict[str, Any] | None:
        with self.app.postgres.superuser(server) as conn:
            row = conn.execute(
                "SELECT p.object_id, p.is_admin FROM pgaadauth.principals p "
                "JOIN pg_catalog.pg_roles r ON r.oid = p.role_oid WHERE r.rolname = %s AND r.rolcanlogin",
                (user,),
            ).fetchone()
        return {"object_id": row[0].lower(), "is_admin": bool(row[1])} if row else None

    def _refresh_tenant(self, server: str) -> None:
        """The tenant's principals, as the pgaadauth functions check an object id against them."""
        rows = [(p["principal_id"].lower(), p.get("display_name"), "service") for p in self.app.directory.principals()]
        with self.app.postgres.superuser(server) as conn, conn.transaction():
            # Two administrators signing in at once refresh it at once: without the lock, the second's DELETE misses
            # the first's rows (committed after its snapshot) and its INSERT then fails on their keys, dropping that
            # sign-in (an EOF to the client), which Azure never does. Readers (the pgaadauth functions) are not blocked.
            conn.execute("LOCK TABLE pgaadauth.tenant_objects IN EXCLUSIVE MODE")
            conn.execute("DELETE FROM pgaadauth.tenant_objects")
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO pgaadauth.tenant_objects VALUES (%s, %s, %s)", rows)


def _remember_server_name(tls: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
    tls.sandbox_server_name = server_name or ""


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
    return data


def _parse_params(body: bytes) -> dict[str, str]:
    parts = body.split(b"\0")
    return {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2) if parts[i]}


def _read_startup(tls: ssl.SSLSocket) -> tuple[bytes, dict[str, str]]:
    head = _read_exact(tls, 8)
    length, protocol = struct.unpack("!II", head)
    if not 8 <= length <= MAX_STARTUP:
        raise Refused("08P01", "invalid length of startup packet")
    body = _read_exact(tls, length - 8)
    if protocol >> 16 != 3:
        raise Refused("0A000", f"unsupported frontend protocol {protocol >> 16}.{protocol & 0xFFFF}")
    params = _parse_params(body)
    if not params.get("user"):
        raise Refused("28000", "no PostgreSQL user name specified in startup packet")
    return head + body, params


def _read_password(tls: ssl.SSLSocket) -> str:
    kind = _read_exact(tls, 1)
    (length,) = struct.unpack("!I", _read_exact(tls, 4))
    if kind != b"p" or not 4 < length <= 65536:
        raise Refused("08P01", f"expected password response, got message type {kind!r}")
    return _read_exact(tls, length - 4).rstrip(b"\0").decode(errors="replace")


def _relay(client: ssl.SSLSocket, backend: socket.socket) -> None:
    """Bytes both ways until either side closes (TLS may hold decrypted bytes select cannot see: ``pending``)."""
    try:
        while True:
            readable = [client] if client.pending() else select.select([client, backend], [], [], 300)[0]
            if not readable:
                continue
            for source in readable:
                target = backend if source is client else client
                data = source.recv(65536)
                if not data:
                    return
                target.sendall(data)
    finally:
        backend.close()
