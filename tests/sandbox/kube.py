"""The sandbox's Kubernetes control plane: one etcd, one kube-apiserver per kube-backed AKS cluster.

Kubernetes 1.20 takes a single ``--service-account-issuer``, and every AKS cluster has its own
issuer and signing key, so each cluster gets its own API server (its own etcd prefix in one etcd).
The API server signs service-account tokens with the key whose public half the Azure emulator
publishes as that cluster's JWKS: the token chain is real end to end.

The processes are children of the sandbox server and share its process group, so stopping the
server (``down``, or a test session's teardown) stops all of them.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KUBE_VERSION = "1.20.2"
ADMIN_USER = "clusterAdmin"


class KubeUnavailable(RuntimeError):
    pass


def default_bin_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(
        os.environ.get("SANDBOX_KUBE_BIN_DIR") or cache / "workload-identity-aks" / f"kube-{KUBE_VERSION}" / "bin"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class KubeControlPlane:
    def __init__(self, state_dir: Path, bin_dir: Path | None = None) -> None:
        self.dir = state_dir / "kube"
        self.ca_cert = state_dir / "ca.pem"
        self.ca_key = state_dir / "ca-key.pem"
        self.bin_dir = bin_dir or default_bin_dir()
        self.external = os.environ.get("SANDBOX_KUBECONFIG")
        self._lock = threading.RLock()
        self._etcd: subprocess.Popen[bytes] | None = None
        self._etcd_port = 0
        self._apiservers: dict[str, subprocess.Popen[bytes]] = {}

    # -- what is there --------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return bool(self.external) or all((self.bin_dir / b).exists() for b in ("kube-apiserver", "etcd"))

    def why_unavailable(self) -> str:
        return (
            f"no kube-apiserver/etcd in {self.bin_dir}: build them once with `make kube` "
            "(scripts/build-kube.sh), or set SANDBOX_KUBECONFIG to use an existing cluster"
        )

    def pids(self) -> dict[str, int]:
        with self._lock:
            found = {key: p.pid for key, p in self._apiservers.items() if p.poll() is None}
            if self._etcd is not None and self._etcd.poll() is None:
                found["etcd"] = self._etcd.pid
            return found

    # -- lifecycle --------------------------------------------------------------------------------
    def ensure_cluster(
        self, key: str, name: str, issuer_url: str, signing_key_pem: str, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Start (or find running) the API server backing one AKS cluster; its connection details."""
        if self.external:
            return self._external_details()
        if not self.available:
            raise KubeUnavailable(self.why_unavailable())
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._ensure_etcd()
            running = self._apiservers.get(key)
            if running is not None and running.poll() is None and previous:
                return previous
            token = (previous or {}).get("token") or secrets.token_urlsafe(32)
            port = (previous or {}).get("port") or 0
            if not port or not _port_free(port):
                port = free_port()
            folder = self.dir / name
            folder.mkdir(exist_ok=True)
            (folder / "sa.key").write_text(signing_key_pem)
            (folder / "sa.key").chmod(0o600)
            (folder / "tokens.csv").write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
            (folder / "tokens.csv").chmod(0o600)
            cert, cert_key = self._serving_certificate()
            log = (folder / "kube-apiserver.log").open("ab")
            args = [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
                f"--etcd-prefix=/registry/{name}-{issuer_url.rstrip('/').rsplit('/', 1)[-1]}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={cert_key}",
                f"--client-ca-file={self.ca_cert}",
                f"--token-auth-file={folder / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/16",
                "--allow-privileged=true",
                f"--service-account-issuer={issuer_url}",
                f"--service-account-key-file={folder / 'sa.key'}",
                f"--service-account-signing-key-file={folder / 'sa.key'}",
                f"--api-audiences={issuer_url},https://kubernetes.default.svc.cluster.local",
                f"--cert-dir={folder / 'certs'}",
                "--profiling=false",
                # Fair queuing only matters under load; without it a start is ~0.4 s faster.
                "--enable-priority-and-fairness=false",
            ]
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self._apiservers[key] = process
        details = {
            "server": f"https://127.0.0.1:{port}",
            "port": port,
            "token": token,
            "ca_file": str(self.ca_cert),
            "pid": process.pid,
        }
        started = time.monotonic()
        self._wait_ready(details, process, folder / "kube-apiserver.log")
        print(f"kube-apiserver for {name} ready in {time.monotonic() - started:.2f} s", flush=True)
        return details

    def release_cluster(self, key: str) -> None:
        with self._lock:
            process = self._apiservers.pop(key, None)
        if process is not None:
            _stop(process)

    def stop_all(self) -> None:
        with self._lock:
            processes = list(self._apiservers.values())
            self._apiservers.clear()
            etcd, self._etcd = self._etcd, None
        for process in processes:
            _stop(process)
        if etcd is not None:
            _stop(etcd)

    def wipe(self) -> None:
        """Forget every Kubernetes object (sandbox reset)."""
        self.stop_all()
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)

    # -- pieces -------------------------------------------------------------------------------------
    def _ensure_etcd(self) -> None:
        if self._etcd is not None and self._etcd.poll() is None:
            return
        ports_file = self.dir / "etcd-ports.json"
        saved = json.loads(ports_file.read_text()) if ports_file.exists() else {}
        client = int(saved["client"]) if saved.get("client") and _port_free(saved["client"]) else free_port()
        peer = int(saved["peer"]) if saved.get("peer") and _port_free(saved["peer"]) else free_port()
        ports_file.write_text(json.dumps({"client": client, "peer": peer}))
        log = (self.dir / "etcd.log").open("ab")
        self._etcd = subprocess.Popen(
            [
                str(self.bin_dir / "etcd"),
                "--name=sandbox",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=sandbox=http://127.0.0.1:{peer}",
                "--log-level=warn",
                # One member: it elects itself in ~0.1 s on restart instead of the default ~1.8 s.
                "--heartbeat-interval=10",
                "--election-timeout=100",
                "--quota-backend-bytes=1073741824",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._etcd_port = client
        started = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._etcd.poll() is not None:
                raise KubeUnavailable(f"etcd exited with {self._etcd.returncode}; see {self.dir / 'etcd.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=2) as response:
                    if json.loads(response.read()).get("health") == "true":
                        print(f"etcd healthy in {time.monotonic() - started:.2f} s", flush=True)
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise KubeUnavailable(f"etcd did not become healthy in 30 s; see {self.dir / 'etcd.log'}")

    def _wait_ready(self, details: dict[str, Any], process: subprocess.Popen[bytes], log: Path) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        request = urllib.request.Request(
            details["server"] + "/readyz", headers={"Authorization": f"Bearer {details['token']}"}
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise KubeUnavailable(f"kube-apiserver exited with {process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.1)
        raise KubeUnavailable(f"kube-apiserver did not become ready in 90 s; see {log}")

    def _serving_certificate(self) -> tuple[Path, Path]:
        cert_path, key_path = self.dir / "apiserver.pem", self.dir / "apiserver-key.pem"
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names = [
            x509.DNSName(n)
            for n in (
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            )
        ]
        ips = [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.0.0.1")]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([*names, *ips]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def _external_details(self) -> dict[str, Any]:
        """An existing cluster named by SANDBOX_KUBECONFIG (its current context) backs every cluster."""
        import base64

        import yaml

        config = yaml.safe_load(Path(str(self.external)).read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        ca_file: str | None = cluster.get("certificate-authority")
        if cluster.get("certificate-authority-data"):
            # Its CA travels with the connection: kubeconfigs and K8S_AUTH_SSL_CA_CERT must trust it.
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / "external-ca.pem"
            path.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
            ca_file = str(path)
        return {
            "server": cluster["server"],
            "port": None,
            "token": user.get("token"),
            "ca_file": ca_file,
            "external_kubeconfig": str(self.external),
        }


def kubeconfig(entries: list[tuple[str, dict[str, Any]]], ca_pem: str) -> dict[str, Any]:
    """A kubeconfig with one context per cluster, as `az aks get-credentials` writes them."""
    import base64

    def ca_data(kube: dict[str, Any]) -> str:
        pem = Path(kube["ca_file"]).read_text() if kube.get("ca_file") else ca_pem
        return base64.b64encode(pem.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": name, "cluster": {"server": kube["server"], "certificate-authority-data": ca_data(kube)}}
            for name, kube in entries
        ],
        "users": [{"name": f"clusterUser_{name}", "user": {"token": kube["token"]}} for name, kube in entries],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": f"clusterUser_{name}"}} for name, kube in entries
        ],
        "current-context": entries[0][0] if entries else "",
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
