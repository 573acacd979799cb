"""The network-namespace bridge the add-on's webhooks run behind (tests/sandbox/netns.py), both directions."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.integration.sandbox_helpers import PROJECT
from tests.sandbox.kube import free_port
from tests.sandbox.netns import Bridge, unshare_prefix

# Inside the namespace: serve on the fixed port, and answer each request with what the "API server"
# (a server outside, reached through the bridge on the same port number) says.
INSIDE = """
import http.server, sys, urllib.request
api = int(sys.argv[1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        upstream = urllib.request.urlopen(f"http://127.0.0.1:{api}/", timeout=5).read()
        body = b"inside saw: " + upstream
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", 9443), Handler).serve_forever()
"""


class Outside(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"the api server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_program_in_its_own_namespace_is_reached_and_reaches_out(tmp_path: Path) -> None:
    api = http.server.HTTPServer(("127.0.0.1", 0), Outside)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api_port = api.server_address[1]
    hook_port = free_port()
    bridge = Bridge(tmp_path, hook_port, api_port)
    script = tmp_path / "inside.py"
    script.write_text(INSIDE)
    command = [
        *unshare_prefix(),
        sys.executable,
        "-m",
        "tests.sandbox.netns",
        f"--hook-socket={bridge.hook_socket}",
        "--hook-port=9443",
        f"--api-socket={bridge.api_socket}",
        f"--api-port={api_port}",
        "--",
        sys.executable,
        str(script),
        str(api_port),
    ]
    inside = subprocess.Popen(command, cwd=PROJECT)
    try:
        answer = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not answer:
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{hook_port}/", timeout=5).read()
            except OSError:
                time.sleep(0.1)
        assert answer == b"inside saw: the api server"
        # Port 9443 of this namespace is not the program's: it is free here, so a second one can run.
        probe = subprocess.run(
            [*unshare_prefix(), sys.executable, "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 9443))"],
            check=False,
        )
        assert probe.returncode == 0
    finally:
        inside.terminate()
        inside.wait(10)
        bridge.close()
        api.shutdown()
