"""``python -m tests.sandbox up|down|status|reset|env|serve|seed-cluster``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .client import SandboxClient

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_STATE = PROJECT / ".sandbox"


def state_dir(args: argparse.Namespace) -> Path:
    path = Path(args.state_dir or os.environ.get("SANDBOX_STATE_DIR") or DEFAULT_STATE).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port(folder: Path, requested: int | None) -> int:
    """The port is part of every URL the sandbox hands out (issuers!), so it is kept across restarts."""
    saved = folder / "port"
    if requested:
        port = requested
    elif saved.exists():
        port = int(saved.read_text())
    else:
        env = os.environ.get("SANDBOX_PORT")
        port = int(env) if env else _free_port()
    saved.write_text(str(port))
    return port


def _alive(pid: int) -> bool:
    """A running sandbox server: not gone, not a zombie nobody reaped, not a recycled pid."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            return False
        return state != "Z" and b"tests.sandbox" in cmdline
    return True


def _pid(folder: Path) -> int | None:
    path = folder / "sandbox.pid"
    if not path.exists():
        return None
    try:
        pid = int(path.read_text())
    except ValueError:
        pid = -1
    if pid > 0 and _alive(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def up(args: argparse.Namespace) -> int:
    folder = state_dir(args)
    port = _port(folder, args.port)
    if _pid(folder) is not None:
        lost = SandboxClient(f"https://127.0.0.1:{port}", folder / "ca.pem").call("GET", "/_sandbox/health")
        if lost.get("kube_lost"):
            # Its clusters' API servers are gone (killed from outside): a fresh sandbox rather than dead clusters.
            print(f"sandbox running but lost {', '.join(lost['kube_lost'])}: restarting it", file=sys.stderr)
            down(args)
    if _pid(folder) is None:
        log = (folder / "server.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.sandbox", "--state-dir", str(folder), "serve", "--port", str(port)],
            cwd=PROJECT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        (folder / "sandbox.pid").write_text(str(process.pid))
        client = SandboxClient(f"https://127.0.0.1:{port}", folder / "ca.pem")
        deadline = time.monotonic() + 120  # a cold kube-apiserver start is the slow part
        while True:
            if process.poll() is not None:
                print(
                    f"sandbox exited at start (code {process.returncode}); see {folder / 'server.log'}", file=sys.stderr
                )
                return 1
            if (folder / "ca.pem").exists() and client.healthy():
                break
            if time.monotonic() > deadline:
                print(f"sandbox not ready within 120 s; see {folder / 'server.log'}", file=sys.stderr)
                process.terminate()
                return 1
            time.sleep(0.05)
    client = SandboxClient(f"https://127.0.0.1:{port}", folder / "ca.pem")
    if args.settings:
        client.configure(json.loads(args.settings))
    print(f"sandbox up at https://127.0.0.1:{port} (state {folder}); environment: source {folder / 'sandbox.env'}")
    return 0


def down(args: argparse.Namespace) -> int:
    folder = state_dir(args)
    pid = _pid(folder)
    if pid is None:
        print("sandbox is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    # etcd and the API servers are the server's children, in its process group: none outlives it.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    (folder / "sandbox.pid").unlink(missing_ok=True)
    print(f"sandbox stopped (pid {pid})")
    return 0


def _client(args: argparse.Namespace) -> tuple[Path, SandboxClient]:
    folder = state_dir(args)
    if _pid(folder) is None:
        raise SystemExit("sandbox is not running: python -m tests.sandbox up")
    port = int((folder / "port").read_text())
    return folder, SandboxClient(f"https://127.0.0.1:{port}", folder / "ca.pem")


def status(args: argparse.Namespace) -> int:
    folder = state_dir(args)
    pid = _pid(folder)
    if pid is None:
        print("sandbox is not running")
        return 3
    client = _client(args)[1]
    print(json.dumps({"pid": pid, "url": client.base_url, "state_dir": str(folder), **client.stats()["totals"]}))
    return 0


def reset(args: argparse.Namespace) -> int:
    folder = state_dir(args)
    if _pid(folder) is None:
        for name in ("state.db", "state.db-wal", "state.db-shm", "requests.jsonl"):
            (folder / name).unlink(missing_ok=True)
        print("sandbox state wiped")
        return 0
    client = _client(args)[1]
    client.reset()
    print("sandbox state reset")
    return 0


def seed_cluster(args: argparse.Namespace) -> int:
    client = _client(args)[1]
    info = client.seed_cluster(
        args.resource_group, args.name, location=args.location, oidc_issuer_enabled=args.oidc_issuer
    )
    info.pop("signing_key_pem", None)
    print(json.dumps(info, indent=2))
    return 0


def serve(args: argparse.Namespace) -> int:
    from .server import serve_forever

    serve_forever(state_dir(args), args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    parser.add_argument("--state-dir", help="state folder (default $SANDBOX_STATE_DIR or .sandbox/)")
    commands = parser.add_subparsers(dest="command", required=True)
    p_up = commands.add_parser("up", help="start in the background and write the env file")
    p_up.add_argument("--port", type=int)
    p_up.add_argument("--settings", help="JSON of settings to apply, e.g. '{\"throttling\": false}'")
    commands.add_parser("down", help="stop the sandbox started by up")
    commands.add_parser("status", help="is it running, and request totals")
    commands.add_parser("reset", help="wipe every resource")
    p_seed = commands.add_parser("seed-cluster", help="add an existing AKS cluster")
    p_seed.add_argument("resource_group")
    p_seed.add_argument("name")
    p_seed.add_argument("--location", default="westeurope")
    p_seed.add_argument("--oidc-issuer", action="store_true", help="with the OIDC issuer already enabled")
    p_serve = commands.add_parser("serve", help="run in the foreground")
    p_serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    handlers: dict[str, Any] = {
        "up": up,
        "down": down,
        "status": status,
        "reset": reset,
        "seed-cluster": seed_cluster,
        "serve": serve,
    }
    return int(handlers[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
