"""The sandbox's Kubernetes: one etcd, and per kube-backed AKS cluster its own control plane.

Every AKS cluster has its own service-account issuer and signing key, so each cluster gets its own
kube-apiserver (its own etcd prefix in one etcd), with a kube-controller-manager running the
workload controllers (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, garbage
collection, namespaces, service accounts), so that patching a pod template really creates pods. The
API server signs service-account tokens with the key whose public half the Azure emulator
publishes as that cluster's JWKS: the token chain is real end to end.

The binaries are built from upstream sources by ``scripts/build-kube.sh``; their versions are in
``scripts/kube-versions.env``. The processes are children of the sandbox server and share its
process group, so stopping the server (``down``, or a test session's teardown) stops all of them.
"""

from __future__ import annotations

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

from .tls import issue_server_certificate

ADMIN_USER = "clusterAdmin"
VERSIONS_FILE = Path(__file__).resolve().parents[2] / "scripts" / "kube-versions.env"

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
"""


def _versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in VERSIONS_FILE.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


VERSIONS = _versions()
KUBE_VERSION = VERSIONS["KUBE_VERSION"]
# The control plane every kube-backed cluster runs (the add-on's webhook is checked when it is turned on).
CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
# The controllers a workload's rollout needs, and the namespace and service-account housekeeping
# every cluster has; nothing that needs a cloud provider, node IPAM or the legacy token secrets.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "pod-garbage-collector-controller",
    "clusterrole-aggregation-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "disruption-controller",
    "endpointslice-controller",
)


class KubeUnavailable(RuntimeError):
    pass


def default_bin_dir() -> Path:
    """Where scripts/build-kube.sh caches this version set (SANDBOX_KUBE_BIN_DIR overrides)."""
    if os.environ.get("SANDBOX_KUBE_BIN_DIR"):
        return Path(os.environ["SANDBOX_KUBE_BIN_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    v = VERSIONS
    folder = f"kube-{v['KUBE_VERSION']}+etcd-{v['ETCD_VERSION']}+wi-{v['WEBHOOK_VERSION']}"
    return cache / "workload-identity-aks" / folder / "bin"


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
        self.state_dir = state_dir
        self.dir = state_dir / "kube"
        self.ca_cert = state_dir / "ca.pem"
        self.bin_dir = bin_dir or default_bin_dir()
        self.external = os.environ.get("SANDBOX_KUBECONFIG")
        self._lock = threading.RLock()
        self._etcd: subprocess.Popen[bytes] | None = None
        self._etcd_port = 0
        # cluster key -> {component name: process}
        self._clusters: dict[str, dict[str, subprocess.Popen[bytes]]] = {}

    # -- what is there --------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return bool(self.external) or all((self.bin_dir / b).exists() for b in CONTROL_PLANE_BINARIES)

    def why_unavailable(self) -> str:
        return (
            f"no {'/'.join(CONTROL_PLANE_BINARIES)} in {self.bin_dir}: build them once with `make kube` "
            "(scripts/build-kube.sh), or set SANDBOX_KUBECONFIG to use an existing cluster"
        )

    def pids(self) -> dict[str, int]:
        with self._lock:
            found = {
                f"{key}/{component}": p.pid
                for key, processes in self._clusters.items()
                for component, p in processes.items()
                if p.poll() is None
            }
            if self._etcd is not None and self._etcd.poll() is None:
                found["etcd"] = self._etcd.pid
            return found

    def lost(self) -> list[str]:
        """Components that were started and have exited since (killed from outside, or crashed)."""
        with self._lock:
            gone = [
                f"{key}/{component}"
                for key, processes in self._clusters.items()
                for component, p in processes.items()
                if p.poll() is not None
            ]
            if self._etcd is not None and self._etcd.poll() is not None:
                gone.append("etcd")
            return gone

    def folder(self, name: str) -> Path:
        """The cluster's working folder: its keys, kubeconfig, logs."""
        return self.dir / name

    # -- lifecycle --------------------------------------------------------------------------------
    def ensure_cluster(
        self,
        key: str,
        name: str,
        issuer_url: str,
        signing_key_pem: str,
        previous: dict[str, Any] | None,
        guard: str | None = None,
    ) -> dict[str, Any]:
        """Start (or find running) the control plane backing one AKS cluster; its connection details."""
        if self.external:
            return self._external_details()
        if not self.available:
            raise KubeUnavailable(self.why_unavailable())
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._ensure_etcd()
            running = self._clusters.get(key, {}).get("kube-apiserver")
            if running is not None and running.poll() is None and previous:
                return previous
            token = (previous or {}).get("token") or secrets.token_urlsafe(32)
            port = (previous or {}).get("port") or 0
            if not port or not _port_free(port):
                port = free_port()
            folder = self.folder(name)
            folder.mkdir(exist_ok=True)
            (folder / "sa.key").write_text(signing_key_pem)
            (folder / "sa.key").chmod(0o600)
            (folder / "tokens.csv").write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
            (folder / "tokens.csv").chmod(0o600)
            # An audit line per answered request (who, verb, resource, user agent; never a body), as AKS's
            # kube-audit diagnostic log: how `make bench` counts a rollout's Kubernetes requests.
            (folder / "audit-policy.yaml").write_text(AUDIT_POLICY)
            cert, cert_key = self._serving_certificate()
            webhook_args = self._guard_args(folder, guard) if guard else ["--authorization-mode=RBAC"]
            args = [
                f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
                f"--etcd-prefix=/registry/{name}-{issuer_url.rstrip('/').rsplit('/', 1)[-1]}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={cert_key}",
                f"--client-ca-file={self.ca_cert}",
                f"--token-auth-file={folder / 'tokens.csv'}",
                *webhook_args,
                "--service-cluster-ip-range=10.0.0.0/16",
                "--allow-privileged=true",
                f"--service-account-issuer={issuer_url}",
                f"--service-account-key-file={folder / 'sa.key'}",
                f"--service-account-signing-key-file={folder / 'sa.key'}",
                f"--api-audiences={issuer_url},https://kubernetes.default.svc.cluster.local",
                f"--cert-dir={folder / 'certs'}",
                "--profiling=false",
                f"--audit-policy-file={folder / 'audit-policy.yaml'}",
                f"--audit-log-path={folder / 'audit.log'}",
                "--audit-log-format=json",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=1",
                # Fair queuing only matters under load; without it a start is faster.
                "--enable-priority-and-fairness=false",
            ]
            processes = self._clusters.setdefault(key, {})
            _stop_all(processes)
            apiserver = processes["kube-apiserver"] = self._start(folder, "kube-apiserver", args)
        details = {
            "server": f"https://127.0.0.1:{port}",
            "port": port,
            "token": token,
            "ca_file": str(self.ca_cert),
            "pid": apiserver.pid,
        }
        started = time.monotonic()
        self._wait_ready(details, apiserver, folder / "kube-apiserver.log")
        details["version"] = str(self.request(details, "GET", "/version")["gitVersion"])
        print(f"kube-apiserver {details['version']} for {name} ready in {time.monotonic() - started:.2f} s", flush=True)
        admin = self.write_kubeconfig(folder / "admin.kubeconfig", name, details)
        with self._lock:
            processes["kube-controller-manager"] = self._start(
                folder,
                "kube-controller-manager",
                [
                    f"--kubeconfig={admin}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    f"--controllers={','.join(CONTROLLERS)}",
                    f"--root-ca-file={self.ca_cert}",
                    "--profiling=false",
                ],
            )
        return details

    def release_cluster(self, key: str) -> None:
        with self._lock:
            processes = self._clusters.pop(key, {})
        _stop_all(processes)

    def stop_all(self) -> None:
        with self._lock:
            clusters = list(self._clusters.values())
            self._clusters.clear()
            etcd, self._etcd = self._etcd, None
        for processes in clusters:
            _stop_all(processes)
        if etcd is not None:
            _stop(etcd)

    def wipe(self) -> None:
        """Forget every Kubernetes object (sandbox reset)."""
        self.stop_all()
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)

    # -- talking to a cluster's API server --------------------------------------------------------
    def request(
        self, details: dict[str, Any], method: str, path: str, body: Any = None, missing_ok: bool = False
    ) -> Any:
        """One call to the API server as its admin; the decoded answer (None for a 404 if missing_ok)."""
        context = ssl.create_default_context(cafile=details.get("ca_file") or str(self.ca_cert))
        request = urllib.request.Request(
            details["server"] + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {details['token']}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            raise KubeUnavailable(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc

    def write_kubeconfig(self, path: Path, name: str, details: dict[str, Any]) -> Path:
        """A kubeconfig for one cluster's admin, for the components that are its clients."""
        import yaml

        path.write_text(yaml.safe_dump(kubeconfig([(name, details)], self.ca_cert.read_text()), sort_keys=False))
        path.chmod(0o600)
        return path

    def start_process(self, key: str, folder: Path, component: str, args: list[str], **kwargs: Any) -> int:
        """Run another component for a cluster (stopped with it); its pid."""
        with self._lock:
            processes = self._clusters.setdefault(key, {})
            if component in processes:
                _stop(processes.pop(component))
            processes[component] = self._start(folder, component, args, **kwargs)
            return processes[component].pid

    def stop_process(self, key: str, component: str) -> None:
        with self._lock:
            process = self._clusters.get(key, {}).pop(component, None)
        if process is not None:
            _stop(process)

    # -- pieces -------------------------------------------------------------------------------------
    def _start(self, folder: Path, component: str, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """A component's process, logging to <folder>/<component>.log; `command` replaces the binary."""
        command = kwargs.pop("command", None) or [str(self.bin_dir / component)]
        log = (folder / f"{component}.log").open("ab")
        return subprocess.Popen(
            [*command, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs
        )

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
                # Per etcd version: 3.6 refuses data an older etcd wrote (its v2 WAL entries); an upgraded sandbox
                # starts its clusters' objects afresh rather than failing to start.
                f"--data-dir={self.dir / ('etcd-' + VERSIONS['ETCD_VERSION'])}",
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

    def _guard_args(self, folder: Path, guard: str) -> list[str]:
        """Entra tokens and Azure RBAC through the sandbox's guard endpoints, as AKS configures its API servers.

        RBAC answers first: it allows the cluster's own components and service accounts without a round trip, and
        has no opinion about an Entra principal it has no binding for, which then goes to Azure RBAC. Short caches:
        a role assignment made (or a token expired) a few seconds ago counts, where AKS takes minutes.
        """
        import yaml

        files = []
        for kind in ("authenticate", "authorize"):
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "guard",
                        "cluster": {"server": f"{guard}/{kind}", "certificate-authority": str(self.ca_cert)},
                    }
                ],
                "users": [{"name": "kube-apiserver", "user": {}}],
                "contexts": [{"name": "guard", "context": {"cluster": "guard", "user": "kube-apiserver"}}],
                "current-context": "guard",
            }
            path = folder / f"guard-{kind}.kubeconfig"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            files.append(path)
        return [
            f"--authentication-token-webhook-config-file={files[0]}",
            "--authentication-token-webhook-version=v1",
            "--authentication-token-webhook-cache-ttl=1s",
            "--authorization-mode=RBAC,Webhook",
            f"--authorization-webhook-config-file={files[1]}",
            "--authorization-webhook-version=v1",
            "--authorization-webhook-cache-authorized-ttl=2s",
            "--authorization-webhook-cache-unauthorized-ttl=1s",
        ]

    def _serving_certificate(self) -> tuple[Path, Path]:
        service = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        return issue_server_certificate(
            self.state_dir,
            self.dir / "apiserver.pem",
            self.dir / "apiserver-key.pem",
            "kube-apiserver",
            ["localhost", *service],
            ["127.0.0.1", "10.0.0.1"],
        )

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


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Stop a cluster's components, the API server last (the others are its clients)."""
    for component in sorted(processes, key=lambda c: c == "kube-apiserver"):
        _stop(processes.pop(component))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
