"""Starting a sandbox for a test session, and real SDK clients pointed at it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, WorkloadIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from tests.sandbox import jwt
from tests.sandbox.client import SandboxClient

PROJECT = Path(__file__).resolve().parents[2]
# Fast, deterministic defaults; each test that exercises a behaviour turns it on itself.
TEST_SETTINGS = {
    "throttling": False,
    "latency_ms": 0,
    "principal_replication_seconds": 10.0,
    "fic_write_seconds": 0.25,
    "fic_propagation_seconds": 0.0,
    "role_assignment_limit": 4000,
    "fic_limit": 20,
    "lro_seconds": 0.5,
    "page_size": 100,
    "token_lifetime_seconds": 3599,
    "kube_clusters": False,
    "buckets": {"reads": [250, 25], "writes": [200, 10], "deletes": [200, 10], "graph": [3500, 350]},
    "graph_replication_seconds": 0.0,
    "graph_page_size": 100,
}


def run_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.sandbox", "--state-dir", str(state_dir), *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@dataclass
class Sandbox:
    state_dir: Path
    env: dict[str, str]
    control: SandboxClient

    @property
    def url(self) -> str:
        return self.env["SANDBOX_URL"]

    @property
    def subscription_id(self) -> str:
        return self.env["AZURE_SUBSCRIPTION_ID"]

    @property
    def tenant_id(self) -> str:
        return self.env["AZURE_TENANT_ID"]

    @property
    def ca(self) -> str:
        return self.env["AZURE_CA_BUNDLE"]

    @property
    def admin_principal_id(self) -> str:
        """The object id of the principal the env's credential signs in as (its token's ``oid``)."""
        import base64
        import json

        payload = self.token().split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["oid"])

    @property
    def server_pid(self) -> int:
        """The sandbox's server (the API servers and the rest it runs are its descendants)."""
        return int((self.state_dir / "sandbox.pid").read_text())

    def rg_id(self, rg: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}"

    def credential(self, client_id: str | None = None, secret: str | None = None) -> ClientSecretCredential:
        return ClientSecretCredential(
            self.tenant_id,
            client_id or self.env["AZURE_CLIENT_ID"],
            secret or self.env["AZURE_CLIENT_SECRET"],
            authority=self.url,
            disable_instance_discovery=True,
            connection_verify=self.ca,
        )

    def arm_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.url, "credential_scopes": [self.url + "/.default"], "connection_verify": self.ca}

    def msi(self, credential: Any = None) -> ManagedServiceIdentityClient:
        return ManagedServiceIdentityClient(credential or self.credential(), self.subscription_id, **self.arm_kwargs())

    def authz(self, credential: Any = None) -> AuthorizationManagementClient:
        return AuthorizationManagementClient(credential or self.credential(), self.subscription_id, **self.arm_kwargs())

    def aks(self, credential: Any = None) -> ContainerServiceClient:
        return ContainerServiceClient(credential or self.credential(), self.subscription_id, **self.arm_kwargs())

    def token(self) -> str:
        return str(self.credential().get_token(self.url + "/.default").token)

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        api_version: str | None = "2024-11-30",
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A plain requests call, for status codes and headers the SDK hides."""
        import requests

        url = self.url + path
        if api_version:
            url += ("&" if "?" in url else "?") + "api-version=" + api_version
        all_headers = {"Authorization": f"Bearer {token if token is not None else self.token()}"}
        all_headers.update(headers or {})
        if token == "":
            all_headers.pop("Authorization")
        return requests.request(method, url, json=body, headers=all_headers, verify=self.ca, timeout=30)

    @property
    def graph_url(self) -> str:
        """Microsoft Graph's base, as the cloud metadata publishes it (microsoftGraphResourceId, less the slash)."""
        return self.url + "/graph"

    def graph_token(self, client_id: str | None = None, secret: str | None = None) -> str:
        return str(self.credential(client_id, secret).get_token(self.graph_url + "/.default").token)

    def graph(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A plain requests call to Graph v1.0 (``path`` from the collection on, or a full URL)."""
        import requests

        url = path if path.startswith("https://") else f"{self.graph_url}/v1.0{path}"
        all_headers = {"Authorization": f"Bearer {token if token is not None else self.graph_token()}"}
        all_headers.update(headers or {})
        return requests.request(method, url, json=body, headers=all_headers, verify=self.ca, timeout=30)

    def resource_group(self, name: str, location: str = "westeurope") -> str:
        response = self.raw(
            "PUT",
            f"/subscriptions/{self.subscription_id}/resourcegroups/{name}",
            {"location": location},
            api_version="2022-09-01",
        )
        assert response.status_code in (200, 201), response.text
        return self.rg_id(name)

    def sign_assertion(
        self,
        signing_key_pem: str,
        issuer: str,
        subject: str,
        audience: str = "api://AzureADTokenExchange",
        lifetime: int = 3600,
    ) -> str:
        """A service-account token as the cluster's API server would issue it."""
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "kubernetes.io": {
                "namespace": subject.split(":")[2],
                "serviceaccount": {"name": subject.split(":")[3], "uid": str(uuid.uuid4())},
            },
        }
        return jwt.sign(claims, jwt.load_private(signing_key_pem))


def start(state_dir: Path, settings: dict[str, Any] | None = None) -> Sandbox:
    """`python -m tests.sandbox up` on its own state dir, as a user would run it."""
    started = run_cli(state_dir, "up", "--settings", json.dumps(settings or TEST_SETTINGS))
    assert started.returncode == 0, started.stdout + started.stderr
    env = json.loads((state_dir / "sandbox.json").read_text())
    return Sandbox(state_dir, env, SandboxClient(env["SANDBOX_URL"], Path(env["AZURE_CA_BUNDLE"])))


def assert_no_internal_error(box: Sandbox, before: int = 0) -> None:
    """A crashed handler is a sandbox bug: fail with its traceback rather than let a client's retry hide it."""
    crashes = box.control.internal_errors() - before
    log = box.state_dir / "server.log"
    assert crashes == 0, f"{crashes} sandbox handler crash(es); from {log}:\n" + log.read_text()[-4000:]


# The CAs of the sandboxes running in this process. requests lets REQUESTS_CA_BUNDLE win over a session's own
# ``verify``, so the variable names them all (one bundle): one sandbox's CA alone would fail every other's requests.
_RUNNING_CAS: list[str] = []
_ORIGINAL_CA_BUNDLE = os.environ.get("REQUESTS_CA_BUNDLE")


def _trust_running_sandboxes(bundle: Path) -> None:
    if _RUNNING_CAS:
        bundle.write_text("".join(Path(ca).read_text() for ca in _RUNNING_CAS))
        os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    elif _ORIGINAL_CA_BUNDLE is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = _ORIGINAL_CA_BUNDLE


@contextlib.contextmanager
def running(state_dir: Path, settings: dict[str, Any] | None = None) -> Iterator[Sandbox]:
    """A sandbox for the duration of a block; stopped (with every process it started) afterwards."""
    bundle = state_dir.parent / f".trusted-cas-{os.getpid()}.pem"
    box: Sandbox | None = None
    try:
        box = start(state_dir, settings)
        _RUNNING_CAS.append(box.ca)
        _trust_running_sandboxes(bundle)
        yield box
        with contextlib.suppress(OSError):  # not answering: the block stopped it already (down)
            assert_no_internal_error(box)
    finally:
        run_cli(state_dir, "down")
        if box is not None and box.ca in _RUNNING_CAS:
            _RUNNING_CAS.remove(box.ca)
        _trust_running_sandboxes(bundle)


# The Azure CLI (make integration installs it into .tools/azcli): a client nobody here wrote.
AZ = os.environ.get("SANDBOX_AZ_CLI")


class Cli:
    def __init__(self, sandbox: Sandbox, config_dir: Path) -> None:
        self.env = {
            **os.environ,
            "AZURE_CONFIG_DIR": str(config_dir),
            "REQUESTS_CA_BUNDLE": sandbox.ca,
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_NO_COLOR": "true",
            # MSAL's instance discovery lives on login.microsoftonline.com; the CLI's switch for
            # Azure Stack turns it off, as for any private authority.
            "AZURE_CORE_INSTANCE_DISCOVERY": "false",
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(AZ), *args], env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        if check:
            assert result.returncode == 0, result.stderr[-2000:]
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    @classmethod
    def for_sandbox(cls, sandbox: Sandbox, config_dir: Path) -> Cli:
        """The CLI with the sandbox registered as its cloud (`az cloud register`, `az cloud set`)."""
        cli = cls(sandbox, config_dir)
        cli.run("cloud", "register", "-n", "Sandbox", "--endpoint-resource-manager", sandbox.url + "/")
        cli.run("cloud", "set", "-n", "Sandbox")
        return cli

    def login(self, sandbox: Sandbox) -> Any:
        """`az login` as the sandbox's admin service principal; the accounts it lists."""
        return self.json(
            "login",
            "--service-principal",
            "-u",
            sandbox.env["AZURE_CLIENT_ID"],
            "--password=" + sandbox.env["AZURE_CLIENT_SECRET"],  # a secret may start with '-'
            "--tenant",
            sandbox.tenant_id,
        )


class SignInProbe:
    """A workload signing in over and over while something changes: its service-account token (signed with the
    cluster's key, as its API server would) exchanged at Entra for its client id, then that token used on ARM (the
    resource group its role is on). Every attempt's outcome is kept: "ok", or what Entra or ARM said."""

    def __init__(
        self, box: Sandbox, cluster: dict[str, Any], subject: str, client_id: str, resource_group: str, workdir: Path
    ) -> None:
        self.box, self.cluster, self.subject, self.client_id = box, cluster, subject, client_id
        self.resource_group, self.workdir = resource_group, workdir
        self.outcomes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def attempt(self) -> str:
        token_file = self.workdir / f"probe-{uuid.uuid4().hex}.jwt"
        token_file.write_text(
            self.box.sign_assertion(self.cluster["signing_key_pem"], self.cluster["issuer_url"], self.subject)
        )
        try:
            credential = WorkloadIdentityCredential(
                tenant_id=self.box.tenant_id,
                client_id=self.client_id,
                token_file_path=str(token_file),
                authority=self.box.url,
                connection_verify=self.box.ca,
            )
            token = credential.get_token(self.box.url + "/.default").token
            response = requests.get(
                f"{self.box.url}{self.box.rg_id(self.resource_group)}",
                params={"api-version": "2022-09-01"},
                headers={"Authorization": f"Bearer {token}"},
                verify=self.box.ca,
                timeout=30,
            )
            return "ok" if response.status_code == 200 else f"ARM {response.status_code}: {response.text[:200]}"
        except ClientAuthenticationError as exc:
            return str(exc)[:300]
        finally:
            token_file.unlink()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.outcomes.append(self.attempt())
            self._stop.wait(0.2)

    def __enter__(self) -> SignInProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def failures(self) -> list[str]:
        return [o for o in self.outcomes if o != "ok"]
