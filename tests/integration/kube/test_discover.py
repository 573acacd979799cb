"""discover.yml on a cluster set up by hand, and on one still running AAD Pod Identity.

The estate is made with the clients an operator uses (the Azure CLI, kubectl) under the operator's names: the
managed-identity walkthrough, the same with an app registration, and AAD Pod Identity's objects (its real CRDs,
vendored from upstream) binding an identity to a Deployment by label. Discovery must write inventory that site.yml
adopts as it is (no duplicate, no sign-in gap), that migrates the pod-identity workload side by side, and that a
teardown undoes down to what the operator had.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import Run, cluster_host, kubectl, pod_signs_in, run_playbook, write_requests
from tests.integration.sandbox_helpers import AZ, PROJECT, Cli, Sandbox
from tests.sandbox.demo import ansible_env, ensure_resource_chain

pytestmark = pytest.mark.skipif(not AZ, reason="SANDBOX_AZ_CLI names no az binary (make integration installs one)")

CLUSTER, CLUSTER_RG, IDS = "aks-legacy", "rg-aks-legacy", "rg-legacy-ids"
CRDS = PROJECT / "tests" / "integration" / "kube" / "crds" / "aad-pod-identity" / "crd.yaml"
AUDIENCE = "api://AzureADTokenExchange"
MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: payments}
---
apiVersion: v1
kind: Namespace
metadata: {name: cart}
---
apiVersion: v1
kind: Namespace
metadata: {name: reports}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: payments-sa
  namespace: payments
  annotations: {azure.workload.identity/client-id: "%(payments)s"}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cart-sa
  namespace: cart
  annotations: {azure.workload.identity/client-id: "%(cart)s"}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: reports-id, namespace: reports}
spec: {type: 0, resourceID: "%(reports_id)s", clientID: "%(reports)s"}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: reports-binding, namespace: reports}
spec: {azureIdentity: reports-id, selector: reports}
"""
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s, namespace: %(name)s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %(name)s}}
  template:
    metadata:
      labels: {app: %(name)s, %(label)s}
    spec:
      %(account)s
      containers:
        - {name: app, image: "ghcr.io/contoso/%(name)s:1.0.0"}
"""


class Legacy:
    def __init__(self, box: Sandbox, root: Path, made: dict[str, Any]) -> None:
        self.box, self.root, self.made = box, root, made
        sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
        self.env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
        api = k8s_config.new_client_from_config(str(box.state_dir / "kubeconfig"), context=CLUSTER)
        self.core, self.apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        self.runs = 0
        self.original: dict[str, Any] = {}

    def host(self) -> dict[str, Any]:
        host = cluster_host(CLUSTER, CLUSTER_RG, IDS, [])
        del host["workload_identity_workloads"]  # the discovered host_vars declare them
        return host

    def run(self, playbook: str, host_vars: str | None = None, *options: str) -> Run:
        self.runs += 1
        files = {f"host_vars/{CLUSTER}.yml": host_vars} if host_vars is not None else {}
        return run_playbook(
            self.root / f"run-{self.runs}", CLUSTER, self.host(), self.env, playbook, options, files=files
        )

    def discover(self) -> str:
        before = self.runs + 1
        self.run("discover.yml")
        return (self.root / f"run-{before}" / "host_vars" / f"{CLUSTER}.yml").read_text()

    def azure_state(self) -> dict[str, Any]:
        """Every credential and role assignment of the three principals the operator made."""
        msi, authz = self.box.msi(), self.box.authz()

        def roles(principal: str) -> list[tuple[str, str]]:
            listed = authz.role_assignments.list_for_subscription(filter=f"principalId eq '{principal}'")
            return sorted((a.role_definition_id.rsplit("/", 1)[1], a.scope.lower()) for a in listed)

        app_fics = self.box.graph("GET", f"/applications/{self.made['cart_app']['id']}/federatedIdentityCredentials")
        app_fics = app_fics.json()["value"]
        return {
            "payments_fics": sorted(
                (f.name, f.subject) for f in msi.federated_identity_credentials.list(IDS, "payments-identity")
            ),
            "reports_fics": sorted(
                (f.name, f.subject) for f in msi.federated_identity_credentials.list(IDS, "reports-identity")
            ),
            "cart_fics": sorted((f["name"], f["subject"]) for f in app_fics),
            "payments_roles": roles(self.made["payments"]["principalId"]),
            "reports_roles": roles(self.made["reports"]["principalId"]),
            "cart_roles": roles(self.made["cart_sp"]["id"]),
        }

    def kube_state(self) -> dict[str, Any]:
        found = {}
        for name in ("payments", "cart", "reports"):
            deployment = self.apps.read_namespaced_deployment(name, name)
            annotations = dict(deployment.metadata.annotations or {})
            annotations.pop("deployment.kubernetes.io/revision", None)  # counts rollouts (the migration's)
            found[name] = {
                "template": self.apps.api_client.sanitize_for_serialization(deployment.spec.template),
                "labels": deployment.metadata.labels,
                "annotations": annotations,
            }
        for namespace, account in (("payments", "payments-sa"), ("cart", "cart-sa")):
            sa = self.core.read_namespaced_service_account(account, namespace)
            found[account] = {"annotations": sa.metadata.annotations, "labels": sa.metadata.labels}
        found["reports-accounts"] = sorted(
            a.metadata.name for a in self.core.list_namespaced_service_account("reports").items
        )
        return found


@pytest.fixture(scope="module")
def legacy(
    kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Legacy]:
    box = kube_sandbox
    seeded = box.control.seed_cluster(
        CLUSTER_RG, CLUSTER, kube=True, oidc_issuer_enabled=True, workload_identity_enabled=True
    )
    issuer = seeded["issuer_url"]
    root = tmp_path_factory.mktemp("discover")
    scope = f"{box.resource_group('rg-legacy-data')}/providers/Microsoft.Storage/storageAccounts/stlegacy"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    az = Cli.for_sandbox(box, root / "azure")
    az.login(box)
    az.run("group", "create", "-n", IDS, "-l", "westeurope")
    made: dict[str, Any] = {}

    def grant(principal: str, role: str) -> None:
        az.run(
            "role", "assignment", "create", "--assignee-object-id", principal,
            "--assignee-principal-type", "ServicePrincipal", "--role", role, "--scope", scope,
        )  # fmt: skip

    # The managed-identity walkthrough.
    made["payments"] = az.json("identity", "create", "-g", IDS, "-n", "payments-identity")
    az.run(
        "identity", "federated-credential", "create", "--name", "payments-federated", "--identity-name",
        "payments-identity", "-g", IDS, "--issuer", issuer, "--subject", "system:serviceaccount:payments:payments-sa",
        "--audiences", AUDIENCE,
    )  # fmt: skip
    grant(made["payments"]["principalId"], "Storage Blob Data Reader")
    # The same with an app registration.
    made["cart_app"] = az.json("ad", "app", "create", "--display-name", "cart-by-hand")
    made["cart_sp"] = az.json("ad", "sp", "create", "--id", made["cart_app"]["appId"])
    credential = {"name": "cart-federated", "issuer": issuer, "subject": "system:serviceaccount:cart:cart-sa"}
    az.run(
        "ad", "app", "federated-credential", "create", "--id", made["cart_app"]["appId"],
        "--parameters", json.dumps({**credential, "audiences": [AUDIENCE]}),
    )  # fmt: skip
    grant(made["cart_sp"]["id"], "Reader")
    # AAD Pod Identity: an identity bound by label, no federated credential.
    made["reports"] = az.json("identity", "create", "-g", IDS, "-n", "reports-identity")
    grant(made["reports"]["principalId"], "Storage Blob Data Reader")
    kubectl(box, CLUSTER, "apply", "-f", str(CRDS))
    kubectl(
        box,
        CLUSTER,
        "wait",
        "--for=condition=Established",
        "crd/azureidentitybindings.aadpodidentity.k8s.io",
        "--timeout=30s",
    )
    values = {
        "payments": made["payments"]["clientId"],
        "cart": made["cart_app"]["appId"],
        "reports": made["reports"]["clientId"],
        "reports_id": made["reports"]["id"],
    }
    manifest = MANIFEST % values
    for name, label, account in (
        ("payments", 'azure.workload.identity/use: "true"', "serviceAccountName: payments-sa"),
        ("cart", 'azure.workload.identity/use: "true"', "serviceAccountName: cart-sa"),
        ("reports", "aadpodidbinding: reports", ""),
    ):
        manifest += "---" + DEPLOYMENT % {"name": name, "label": label, "account": account}
    kubectl(box, CLUSTER, "apply", "-f", "-", stdin=manifest)
    estate = Legacy(box, root, made)
    for name in ("payments", "cart"):
        assert pod_signs_in(box, estate.core, estate.apps, name, name) == "ok"  # the operator's setup works
    estate.original = {"azure": estate.azure_state(), "kube": estate.kube_state()}
    yield estate


def test_discovered_inventory_adopts_the_hand_made_estate_and_migrates_pod_identity_side_by_side(
    legacy: Legacy,
) -> None:
    legacy.box.control.reset_stats()
    written = legacy.discover()
    assert write_requests(legacy.box) == []  # discovery only reads
    assert legacy.kube_state() == legacy.original["kube"]
    declared = {w["name"]: w for w in yaml.safe_load(written)["workload_identity_workloads"]}
    assert sorted(declared) == ["cart-sa", "payments-sa", "reports-binding"]
    payments = declared["payments-sa"]
    assert (payments["identity_name"], payments["identity_resource_group"]) == ("payments-identity", IDS)
    assert payments["controllers"] == [{"kind": "Deployment", "name": "payments"}]
    assert [r["role"] for r in payments["roles"]] == ["Storage Blob Data Reader"]
    cart = declared["cart-sa"]
    assert (cart["identity_type"], cart["application_id"]) == ("application", legacy.made["cart_app"]["appId"])
    assert [r["role"] for r in cart["roles"]] == ["Reader"]
    reports = declared["reports-binding"]
    assert (reports["namespace"], reports["service_account"], reports["identity_name"]) == (
        "reports",
        "reports-binding",
        "reports-identity",
    )
    assert reports["controllers"] == [{"kind": "Deployment", "name": "reports"}]
    assert "  # MIGRATION from AAD Pod Identity: AzureIdentityBinding reports/reports-binding" in written
    assert "delete the AzureIdentityBinding" in written

    plan = legacy.run("site.yml", written, "--check", "--diff").report(plan=True)
    planned = {w["name"]: w for w in plan["workloads"]}
    for name in ("payments-sa", "cart-sa"):
        assert planned[name]["identity_action"] == "unchanged"
        assert {r["action"] for r in planned[name]["roles"]} == {"unchanged"}
        assert planned[name]["service_account_action"] == "adopted"
    assert [f["name"] for f in planned["payments-sa"]["federated_credentials"]] == ["payments-federated"]
    assert [f["name"] for f in planned["cart-sa"]["federated_credentials"]] == ["cart-federated"]
    assert planned["reports-binding"]["service_account_action"] == "created"

    results: list[str] = []
    done = threading.Event()

    def keep_signing_in() -> None:
        while not done.is_set():
            for name in ("payments", "cart"):
                results.append(pod_signs_in(legacy.box, legacy.core, legacy.apps, name, name))

    signer = threading.Thread(target=keep_signing_in)
    signer.start()
    try:
        legacy.run("site.yml", written)
    finally:
        done.set()
        signer.join()
    assert results and set(results) == {"ok"}, results[:3]
    after = legacy.azure_state()
    # Nothing duplicated: the operator's credentials and assignments are the only ones; the migration adds its trust.
    for key in ("payments_fics", "cart_fics", "payments_roles", "cart_roles", "reports_roles"):
        assert after[key] == legacy.original["azure"][key], key
    assert [subject for _name, subject in after["reports_fics"]] == ["system:serviceaccount:reports:reports-binding"]
    kube = legacy.kube_state()
    for name in ("payments", "cart"):
        assert kube[name]["template"] == legacy.original["kube"][name]["template"]  # no restart
    template = kube["reports"]["template"]
    assert template["metadata"]["labels"]["aadpodidbinding"] == "reports"  # side by side
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["serviceAccountName"] == "reports-binding"
    assert pod_signs_in(legacy.box, legacy.core, legacy.apps, "reports", "reports") == "ok"  # migrated
    assert legacy.run("site.yml", written).changed == 0

    # Discovering again finds the migrated workload bound as it now is: the same declarations, still converged.
    again = legacy.discover()
    assert yaml.safe_load(again) == yaml.safe_load(written)
    assert "still bound by AAD Pod Identity (AzureIdentityBinding reports/reports-binding)" in again
    assert legacy.run("site.yml", again).changed == 0


def test_teardown_of_the_discovered_inventory_gives_back_what_the_operator_had(legacy: Legacy) -> None:
    written = (legacy.root / "run-1" / "host_vars" / f"{CLUSTER}.yml").read_text()
    assert legacy.run("teardown.yml", written).changed >= 1
    assert legacy.run("teardown.yml", written).changed == 0
    assert legacy.azure_state() == legacy.original["azure"]  # the migration's credential went, nothing else
    kube = legacy.kube_state()
    assert kube == legacy.original["kube"]
    for name in ("payments", "cart"):
        assert pod_signs_in(legacy.box, legacy.core, legacy.apps, name, name) == "ok"
