"""A process in a network namespace of its own, joined to the sandbox by Unix sockets.

The azure-workload-identity webhook always serves on port 9443 of every address (controller-runtime's
default; its command line has no flag for it), so two clusters' webhooks cannot share one network
namespace. On AKS each webhook runs in a pod, with a network namespace of its own; the sandbox does
the same: every webhook runs under ``unshare --net`` and reaches, and is reached from, the sandbox's
loopback through Unix sockets in the state dir (the filesystem is shared; the network is not).

    sandbox side (``Bridge``):   127.0.0.1:<hook port>  -> hook.sock
                                 api.sock               -> 127.0.0.1:<API server port>
    namespace side (``main``):   hook.sock              -> 127.0.0.1:9443 (the webhook)
                                 127.0.0.1:<API port>   -> api.sock

The namespace side is this module run as a program (``python -m tests.sandbox.netns``): it brings
the namespace's loopback up, starts its two forwarders, then runs the command it was given and
exits with it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

Connect = Callable[[], socket.socket]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                end.shutdown(how)
            except OSError:
                pass


def _serve(listener: socket.socket, connect: Connect) -> None:
    """Accept forever; each connection is joined to a new one made by ``connect``."""
    while True:
        try:
            accepted = listener.accept()[0]
        except OSError:
            return  # the listener was closed
        try:
            upstream = connect()
        except OSError:
            accepted.close()
            continue

        def join(a: socket.socket = accepted, b: socket.socket = upstream) -> None:
            backward = threading.Thread(target=_pipe, args=(b, a), daemon=True)
            backward.start()
            _pipe(a, b)
            backward.join()
            a.close()
            b.close()

        threading.Thread(target=join, daemon=True).start()


def tcp_listener(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    return listener


def to_tcp(port: int) -> Connect:
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=10)


def to_unix(path: Path) -> Connect:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        return sock

    return connect


def forward(listener: socket.socket, connect: Connect) -> None:
    threading.Thread(target=_serve, args=(listener, connect), daemon=True).start()


class Bridge:
    """The sandbox side: the webhook reachable on a loopback port, the API server on a socket."""

    def __init__(self, folder: Path, hook_port: int, api_port: int) -> None:
        self.hook_socket = folder / "hook.sock"
        self.api_socket = folder / "api.sock"
        self._listeners = [tcp_listener(hook_port), unix_listener(self.api_socket)]
        forward(self._listeners[0], to_unix(self.hook_socket))
        forward(self._listeners[1], to_tcp(api_port))

    def close(self) -> None:
        for listener in self._listeners:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        self.api_socket.unlink(missing_ok=True)


def unshare_prefix() -> list[str]:
    """The command that puts a program in a new network namespace (root, or a user namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("`unshare` (util-linux) is not installed: the webhook needs a network namespace")
    return [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--user", "--map-root-user", "--net"]


def _loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on lo."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), siocgifflags, request))[1]
        fcntl.ioctl(sock.fileno(), siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a command in this network namespace, bridged to the sandbox.")
    parser.add_argument("--hook-socket", type=Path, required=True)
    parser.add_argument("--hook-port", type=int, required=True, help="the port the program serves on")
    parser.add_argument("--api-socket", type=Path, required=True)
    parser.add_argument("--api-port", type=int, required=True, help="the API server's port, as the program sees it")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    _loopback_up()
    forward(unix_listener(args.hook_socket), to_tcp(args.hook_port))
    forward(tcp_listener(args.api_port), to_unix(args.api_socket))
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    signal.signal(signal.SIGINT, lambda *_: child.terminate())
    code = child.wait()
    args.hook_socket.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
