"""The HTTPS server: one thread per connection, TLS handshakes off the accept loop."""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .app import ConnectionReset, Sandbox
from .config import Settings
from .core import Request
from .postgres_gateway import PostgresGateway
from .proxy import PublicHostsProxy, public_host, sandbox_path
from .tls import ensure_certificates


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AzureSandbox/1.0"
    timeout = 60  # idle keep-alive connections give their thread back
    # Headers and body go out in separate writes; with Nagle on, each answer on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        """The JSON-lines request log replaces the default stderr lines."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # A request that reached the sandbox as one of Azure's public hosts (proxy.py) has that host's path, and
        # is answered with that host in the URLs it is handed (discovery documents, nextLink, Location).
        host = public_host(self.headers.get("Host", ""))
        request = Request.build(self.command, sandbox_path(host, self.path), dict(self.headers.items()), body)
        request.origin = f"https://{host}" if host else ""
        try:
            response, _operation, _principal = self.server.app.handle(request)
        except ConnectionReset:
            # An injected fault: RST instead of an answer, as a dropped connection looks to a client.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            raise
        payload = response.encoded()
        self.send_response(response.status)
        if payload or response.status not in (204, 304):
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionReset:
            self.close_connection = True


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, port: int, app: Sandbox, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.serve_tls(tls, client_address)

    def serve_tls(self, tls: ssl.SSLSocket, client_address: Any) -> None:
        """Answer the requests of one TLS connection (the sandbox's own, or one the proxy terminated)."""
        try:
            _Handler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def make_server(state_dir: Path, port: int, settings: Settings | None = None) -> SandboxServer:
    ca, cert, key = ensure_certificates(state_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    app = Sandbox(state_dir, f"https://127.0.0.1:{port}", settings)
    return SandboxServer(port, app, context)


def _saved_port(state_dir: Path, file_name: str) -> int:
    """A port of the proxy or the PostgreSQL gateway: kept across restarts, like the server's (clients hold it in
    HTTPS_PROXY, PGPORT)."""
    saved = state_dir / file_name
    if saved.exists():
        return int(saved.read_text())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    saved.write_text(str(port))
    return port


def serve_forever(state_dir: Path, port: int) -> None:
    server = make_server(state_dir, port)
    proxy = PublicHostsProxy(_saved_port(state_dir, "proxy-port"), state_dir, server.serve_tls)
    server.app.proxy_url = proxy.url
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    gateway = PostgresGateway(_saved_port(state_dir, "postgres-port"), server.app, state_dir)
    server.app.postgres_port = gateway.port
    threading.Thread(target=gateway.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()
        threading.Thread(target=proxy.shutdown, daemon=True).start()
        threading.Thread(target=gateway.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.app.write_env_files()
    # API servers of kube-backed clusters come back in the background: ARM answers meanwhile.
    threading.Thread(target=server.app.start_kube, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        proxy.server_close()
        gateway.server_close()
        server.app.close()
