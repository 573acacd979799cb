"""AKS's managed workload-identity add-on: the real azure-workload-identity webhook, run by the sandbox.

When a kube-backed cluster's ``securityProfile.workloadIdentity.enabled`` is on (and its update
has finished, as AKS applies an add-on at the end of the operation), the sandbox runs
``azure-wi-webhook`` (``cmd/webhook`` of github.com/Azure/azure-workload-identity, built by
``scripts/build-kube.sh``) against that cluster's API server and registers it with the same
MutatingWebhookConfiguration AKS's add-on has: the chart's name, objectSelector
``azure.workload.identity/use: "true"``, pods CREATE, ``failurePolicy: Fail``, ``sideEffects: None``
— except that it reaches the webhook by ``url`` instead of through a Service, since no pod runs it.
When the add-on is turned off, the configuration is removed and the webhook stopped.

The webhook's cloud is the sandbox: it reads ``AZURE_ENVIRONMENT`` and, for the name
``AzureStackCloud``, go-autorest's ``EnvironmentFromName`` loads the environment from the JSON file
named by ``AZURE_ENVIRONMENT_FILEPATH``; its ``activeDirectoryEndpoint`` is what the webhook
injects into pods as ``AZURE_AUTHORITY_HOST``. So mutated pods sign in at the sandbox's Entra ID.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .kube import KubeControlPlane, KubeUnavailable, free_port
from .netns import Bridge, unshare_prefix
from .tls import issue_server_certificate

WEBHOOK_BINARY = "azure-wi-webhook"
# The names AKS's add-on (and the chart) use: a cluster holds at most one of them.
CONFIGURATION_NAME = "azure-wi-webhook-mutating-webhook-configuration"
CONFIGURATION_PATH = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{CONFIGURATION_NAME}"
WEBHOOK_NAME = "mutation.azure-workload-identity.io"
# controller-runtime's webhook server port; cmd/webhook has no flag to change it.
WEBHOOK_PORT = 9443
PROJECT = Path(__file__).resolve().parents[2]


def mutating_webhook_configuration(url: str, ca_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": CONFIGURATION_NAME,
            "labels": {"azure-workload-identity.io/system": "true", "kubernetes.azure.com/managedby": "aks"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1", "v1beta1"],
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
                "reinvocationPolicy": "IfNeeded",
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "*",
                    }
                ],
                "sideEffects": "None",
                "timeoutSeconds": 10,
            }
        ],
    }


def sandbox_cloud(authority_host: str, resource_manager: str) -> dict[str, Any]:
    """The sandbox as a go-autorest Environment (the fields the webhook and SDKs read)."""
    return {
        "name": "AzureStackCloud",
        "activeDirectoryEndpoint": authority_host.rstrip("/") + "/",
        "resourceManagerEndpoint": resource_manager.rstrip("/") + "/",
        "managementPortalURL": resource_manager.rstrip("/") + "/",
        "serviceManagementEndpoint": "api://AzureADTokenExchange",
        "tokenAudience": resource_manager.rstrip("/") + "/",
        "resourceIdentifiers": {"graph": resource_manager.rstrip("/") + "/graph/"},
    }


class ManagedWebhooks:
    """The add-on's webhook per kube-backed cluster, started and stopped with the add-on."""

    def __init__(self, kube: KubeControlPlane, tenant_id: Callable[[], str], base_url: str) -> None:
        self.kube = kube
        self._tenant_id = tenant_id
        self.base_url = base_url
        self._bridges: dict[str, Bridge] = {}

    @property
    def available(self) -> bool:
        return (self.kube.bin_dir / WEBHOOK_BINARY).exists()

    def running(self, key: str) -> bool:
        return key in self._bridges

    def sync(self, key: str, name: str, details: dict[str, Any], enabled: bool) -> None:
        """Make the cluster's webhook match its add-on setting."""
        if details.get("external_kubeconfig"):
            return  # a cluster the sandbox does not run: its webhook is its own business
        if enabled and not self.running(key):
            self.start(key, name, details)
        elif not enabled and (self.running(key) or self._registered(details)):
            self.stop(key, details)

    def start(self, key: str, name: str, details: dict[str, Any]) -> None:
        if not self.available:
            raise KubeUnavailable(
                f"no {WEBHOOK_BINARY} in {self.kube.bin_dir}: build it with `make kube` (scripts/build-kube.sh)"
            )
        folder = self.kube.folder(name) / "webhook"
        folder.mkdir(parents=True, exist_ok=True)
        state = self.kube.state_dir
        certs = folder / "certs"
        issue_server_certificate(
            state, certs / "tls.crt", certs / "tls.key", WEBHOOK_BINARY, ["localhost"], ["127.0.0.1"]
        )
        cloud = folder / "cloud.json"
        cloud.write_text(json.dumps(sandbox_cloud(self.base_url, self.base_url), indent=2))
        kubeconfig = self.kube.write_kubeconfig(folder / "kubeconfig", name, details)
        hook_port = free_port()
        bridge = Bridge(folder, hook_port, int(details["port"]))
        command = [
            *unshare_prefix(),
            sys.executable,
            "-m",
            "tests.sandbox.netns",
            f"--hook-socket={bridge.hook_socket}",
            f"--hook-port={WEBHOOK_PORT}",
            f"--api-socket={bridge.api_socket}",
            f"--api-port={details['port']}",
            "--",
            str(self.kube.bin_dir / WEBHOOK_BINARY),
        ]
        environment = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT),
            "KUBECONFIG": str(kubeconfig),
            "POD_NAMESPACE": "kube-system",
            "AZURE_TENANT_ID": self._tenant_id(),
            "AZURE_ENVIRONMENT": "AzureStackCloud",
            "AZURE_ENVIRONMENT_FILEPATH": str(cloud),
        }
        self.kube.start_process(
            key,
            folder,
            WEBHOOK_BINARY,
            [
                f"--webhook-cert-dir={certs}",
                "--disable-cert-rotation=true",
                "--health-addr=127.0.0.1:9440",
                "--metrics-addr=127.0.0.1:8095",
                "--log-level=info",
            ],
            command=command,
            env=environment,
        )
        self._bridges[key] = bridge
        url = f"https://127.0.0.1:{hook_port}/mutate-v1-pod"
        started = time.monotonic()
        self._wait_serving(url, folder / f"{WEBHOOK_BINARY}.log")
        configuration = mutating_webhook_configuration(url, (state / "ca.pem").read_bytes())
        current = self._registered(details)
        if current is None:
            self.kube.request(details, "POST", CONFIGURATION_PATH.rsplit("/", 1)[0], configuration)
        else:
            configuration["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.kube.request(details, "PUT", CONFIGURATION_PATH, configuration)
        print(f"workload-identity webhook for {name} serving in {time.monotonic() - started:.2f} s", flush=True)

    def stop(self, key: str, details: dict[str, Any] | None) -> None:
        if details is not None:
            self.kube.request(details, "DELETE", CONFIGURATION_PATH, missing_ok=True)
        self.kube.stop_process(key, WEBHOOK_BINARY)
        bridge = self._bridges.pop(key, None)
        if bridge is not None:
            bridge.close()

    def forget(self, key: str) -> None:
        """The cluster's processes are being stopped with it: drop its bridge too."""
        bridge = self._bridges.pop(key, None)
        if bridge is not None:
            bridge.close()

    def forget_all(self) -> None:
        for key in list(self._bridges):
            self.forget(key)

    def _registered(self, details: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.kube.request(details, "GET", CONFIGURATION_PATH, missing_ok=True)
        return found

    def _wait_serving(self, url: str, log: Path) -> None:
        """Until the webhook answers an AdmissionReview through the bridge (not merely listens)."""
        context = ssl.create_default_context(cafile=str(self.kube.state_dir / "ca.pem"))
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "probe"}}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                url, data=json.dumps(review).encode(), headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if json.loads(response.read()).get("response") is not None:
                        return
            except (OSError, ValueError, urllib.error.HTTPError):
                pass
            time.sleep(0.2)
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise KubeUnavailable(f"the workload-identity webhook did not serve in 60 s; {log}:\n{tail}")
