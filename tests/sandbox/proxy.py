"""Azure's public hostnames, answered by the sandbox through an HTTPS proxy.

Clients written on the Go, JavaScript and .NET SDKs with default options (azwi among them) have fixed hosts:
ARM at ``https://management.azure.com``, Microsoft Graph at ``https://graph.microsoft.com``, Entra ID at
``https://login.microsoftonline.com`` (and its alias ``login.windows.net``). They honour ``HTTPS_PROXY``, so
the sandbox runs a proxy beside its server: a ``CONNECT`` to one of those hosts on 443 is answered by the
sandbox itself, over TLS with a certificate for those hosts signed by the sandbox's CA (the client trusts it
through ``SSL_CERT_FILE``). The requests inside are the sandbox's own; Graph's are served under its ``/graph``
prefix, and the URLs an answer hands out name the public host the client used.

Data planes have a host per account (``<vault>.vault.azure.net``, ``<account>.blob.core.windows.net``): a
``CONNECT`` to one is answered the same way, with a wildcard certificate, its requests served under
``/dataplane/vault/<vault>`` or ``/dataplane/blob/<account>``.

A ``CONNECT`` to a loopback address (a cluster's API server, the sandbox's own URL) is tunnelled as any proxy
would, for clients that proxy loopback too (Go never does). Any other host is refused with 403: nothing here
reaches the internet.
"""

from __future__ import annotations

import hashlib
import select
import socket
import ssl
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .tls import issue_server_certificate

# Each public host, and the path prefix its requests have in the sandbox.
PUBLIC_HOSTS = {
    "management.azure.com": "",
    "login.microsoftonline.com": "",
    "login.windows.net": "",  # Entra's older name, still its alias (ARM's 401 challenge names it)
    "graph.microsoft.com": "/graph",
}
# Data planes: each account's own host under the service's domain, and where its requests go in the sandbox.
DATA_PLANE_DOMAINS = {
    ".vault.azure.net": "/dataplane/vault/",
    ".blob.core.windows.net": "/dataplane/blob/",
    ".documents.azure.com": "/dataplane/cosmos/",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _data_plane(host: str) -> tuple[str, str] | None:
    """(account name, sandbox prefix) for a data-plane host like ``kv-orders.vault.azure.net``."""
    for domain, prefix in DATA_PLANE_DOMAINS.items():
        name = host[: -len(domain)] if host.endswith(domain) else ""
        if name and "." not in name:
            return name, prefix
    return None


def public_host(host_header: str) -> str | None:
    """The public host a request named in its Host header, or None for the sandbox's own address."""
    host = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
    host = host.strip().lower()
    return host if host in PUBLIC_HOSTS or _data_plane(host) else None


def sandbox_path(host: str | None, path: str) -> str:
    """The sandbox's path for a request to ``host`` (Graph's public host serves under /graph, a vault's under
    /dataplane/vault/<name>)."""
    plane = _data_plane(host or "")
    if plane is not None:
        return plane[1] + plane[0] + path
    return PUBLIC_HOSTS.get(host or "", "") + path


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AzureSandboxProxy/1.0"
    server: PublicHostsProxy

    def log_message(self, format: str, *args: Any) -> None:
        """The sandbox's request log records what is served inside; the proxy itself logs nothing."""

    def do_CONNECT(self) -> None:
        host, _colon, port = self.path.rpartition(":")
        host = host.strip("[]").lower()
        self.close_connection = True
        if (host in PUBLIC_HOSTS or _data_plane(host)) and port == "443":
            self._established()
            try:
                tls = self.server.public_context.wrap_socket(self.connection, server_side=True)
            except (ssl.SSLError, OSError):
                return  # a client that does not trust the sandbox's CA: it says so itself
            self.server.serve_tls(tls, self.client_address)
            return
        if host in LOOPBACK and port.isdigit():
            try:
                upstream = socket.create_connection((host, int(port)), timeout=10)
            except OSError as exc:
                self.send_error(502, f"Cannot reach {self.path}: {exc}")
                return
            self._established()
            _tunnel(self.connection, upstream)
            return
        hosts = ", ".join(sorted(PUBLIC_HOSTS))
        self.send_error(403, f"The sandbox's proxy answers only for {hosts} (port 443) and loopback, not {self.path}")

    def _established(self) -> None:
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()

    def _refuse_plain(self) -> None:
        self.close_connection = True
        self.send_error(405, "The sandbox's proxy takes CONNECT only (HTTPS_PROXY); plain HTTP is not proxied")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _refuse_plain


def _tunnel(client: socket.socket, upstream: socket.socket) -> None:
    peers = {client: upstream, upstream: client}
    try:
        while True:
            readable = select.select(list(peers), [], [], 120)[0]
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)
    except OSError:
        return
    finally:
        upstream.close()


class PublicHostsProxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, state_dir: Path, serve_tls: Callable[[ssl.SSLSocket, Any], None]) -> None:
        # Named after the hosts it covers: a state dir from before a host was added gets a new certificate.
        hosts = [*PUBLIC_HOSTS, *(f"*{domain}" for domain in DATA_PLANE_DOMAINS)]
        names = hashlib.sha256(" ".join(sorted(hosts)).encode()).hexdigest()[:8]
        cert, key = issue_server_certificate(
            state_dir,
            state_dir / f"public-hosts-{names}-cert.pem",
            state_dir / f"public-hosts-{names}-key.pem",
            "management.azure.com",
            hosts,
            [],
        )
        self.public_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.public_context.load_cert_chain(str(cert), str(key))
        self.serve_tls = serve_tls
        super().__init__(("127.0.0.1", port), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"
