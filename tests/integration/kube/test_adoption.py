"""Adoption: an operator did the managed-identity walkthrough by hand, then declares the same workload in inventory.

Made with the clients an operator uses (the Azure CLI, kubectl), under the operator's own names. The rollout
must adopt all of it (no duplicate, no restart, no moment where the workload cannot sign in), and a teardown
must give back every Kubernetes object exactly as it was.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import Run, cluster_host, pod_signs_in, run_playbook
from tests.integration.sandbox_helpers import AZ, PROJECT, Cli, Sandbox
from tests.sandbox.demo import ansible_env, ensure_resource_chain
from tests.sandbox.pods import newest_pods

pytestmark = pytest.mark.skipif(not AZ, reason="SANDBOX_AZ_CLI names no az binary (make integration installs one)")

CLUSTER, CLUSTER_RG, IDENTITY_RG = "aks-adopt", "rg-aks-adopt", "rg-adopt-by-hand"
KUBECTL = str(PROJECT / ".tools" / "bin" / "kubectl")
MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: payments}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: payments-sa
  namespace: payments
  annotations:
    azure.workload.identity/client-id: "%(client_id)s"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payments, namespace: payments}
spec:
  replicas: 1
  selector: {matchLabels: {app: payments}}
  template:
    metadata:
      labels: {app: payments, azure.workload.identity/use: "true"}
    spec:
      serviceAccountName: payments-sa
      containers:
        - {name: app, image: "ghcr.io/contoso/payments:1.0.0"}
"""


class Estate:
    def __init__(self, box: Sandbox, root: Path, scope: str, identity: dict[str, Any]) -> None:
        self.box, self.root, self.scope, self.identity = box, root, scope, identity
        sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
        self.env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
        api = k8s_config.new_client_from_config(str(box.state_dir / "kubeconfig"), context=CLUSTER)
        self.core, self.apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        self.runs = 0
        self.original: dict[str, Any] = {}  # the walkthrough's objects before the collection came
        self.original_roles: list[tuple[str, str]] = []

    def workload(self) -> dict[str, Any]:
        return {
            "name": "payments",
            "namespace": "payments",
            "service_account": "payments-sa",
            "identity_name": self.identity["name"],
            "identity_resource_group": IDENTITY_RG,
            "roles": [{"role": "Storage Blob Data Reader", "scope": self.scope}],
            "controllers": [{"kind": "Deployment", "name": "payments"}],
        }

    def run(self, playbook: str = "site.yml", *options: str) -> Run:
        self.runs += 1
        host = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, [self.workload()])
        return run_playbook(self.root / f"run-{self.runs}", CLUSTER, host, self.env, playbook, options)

    def kube_state(self) -> dict[str, Any]:
        """The two objects the walkthrough made, as the API server holds them (without server-kept fields)."""
        account = self.core.read_namespaced_service_account("payments-sa", "payments")
        deployment = self.apps.read_namespaced_deployment("payments", "payments")
        return {
            "account_annotations": account.metadata.annotations,
            "account_labels": account.metadata.labels,
            "template": self.apps.api_client.sanitize_for_serialization(deployment.spec.template),
            "replica_sets": len(self.apps.list_namespaced_replica_set("payments").items),
        }

    def sign_in(self) -> str:
        return pod_signs_in(self.box, self.core, self.apps, "payments", "payments")


@pytest.fixture(scope="module")
def estate(
    kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Estate]:
    box = kube_sandbox
    seeded = box.control.seed_cluster(
        CLUSTER_RG, CLUSTER, kube=True, oidc_issuer_enabled=True, workload_identity_enabled=True
    )
    root = tmp_path_factory.mktemp("adoption")
    data_rg = box.resource_group("rg-adopt-data")
    scope = f"{data_rg}/providers/Microsoft.Storage/storageAccounts/stpayments"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    # The walkthrough, step by step, as the operator typed it.
    az = Cli.for_sandbox(box, root / "azure")
    az.login(box)
    az.run("group", "create", "-n", IDENTITY_RG, "-l", "westeurope")
    identity = az.json("identity", "create", "-g", IDENTITY_RG, "-n", "payments-identity")
    az.run(
        "identity", "federated-credential", "create", "--name", "payments-federated", "--identity-name",
        "payments-identity", "-g", IDENTITY_RG, "--issuer", seeded["issuer_url"], "--subject",
        "system:serviceaccount:payments:payments-sa", "--audiences", "api://AzureADTokenExchange",
    )  # fmt: skip
    az.run(
        "role", "assignment", "create", "--assignee-object-id", identity["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Storage Blob Data Reader", "--scope", scope,
    )  # fmt: skip
    manifest = root / "payments.yaml"
    manifest.write_text(MANIFEST % {"client_id": identity["clientId"]})
    kubectl = [KUBECTL, "--kubeconfig", str(box.state_dir / "kubeconfig"), "--context", CLUSTER]
    subprocess.run([*kubectl, "apply", "-f", str(manifest)], check=True, capture_output=True, timeout=60)
    made = Estate(box, root, scope, identity)
    newest_pods(made.core, made.apps, "payments", "payments")
    made.original = made.kube_state()
    made.original_roles = assignments(made)
    yield made


def write_requests(box: Sandbox) -> list[str]:
    """The ARM and Graph operations that wrote something since the stats were reset."""
    return [
        op
        for op in box.control.stats()["operations"]
        if op.rsplit(".", 1)[-1].lower() in ("put", "post", "patch", "delete") and not op.startswith("sandbox.")
    ]


def fics(estate: Estate) -> list[tuple[str, str, str]]:
    msi = estate.box.msi()
    return [
        (f.name, f.issuer, f.subject) for f in msi.federated_identity_credentials.list(IDENTITY_RG, "payments-identity")
    ]


def assignments(estate: Estate) -> list[tuple[str, str]]:
    listed = estate.box.authz().role_assignments.list_for_subscription(
        filter=f"principalId eq '{estate.identity['principalId']}'"
    )
    return [(a.role_definition_id.rsplit("/", 1)[1], a.scope.lower()) for a in listed]


def test_the_rollout_adopts_the_walkthrough_without_a_duplicate_a_restart_or_a_sign_in_gap(estate: Estate) -> None:
    assert estate.sign_in() == "ok"  # what the operator made works before the collection comes
    before_fics, before_roles, before_kube = fics(estate), assignments(estate), estate.kube_state()

    plan = estate.run("site.yml", "--check", "--diff")
    planned = plan.report(plan=True)["workloads"][0]
    assert planned["identity_action"] == "unchanged"
    assert [f["name"] for f in planned["federated_credentials"]] == ["payments-federated"]
    assert [r["action"] for r in planned["roles"]] == ["unchanged"]
    assert (planned["service_account_action"], [c["action"] for c in planned["controllers"]]) == (
        "adopted",
        ["adopted"],
    )
    # --diff shows both sides' changes, the Kubernetes side's planned in the same module run as Azure's.
    assert "ServiceAccount payments/payments-sa" in plan.output

    # Sign in all through the run: any refusal is an outage the operator would see.
    results: list[str] = []
    done = threading.Event()

    def keep_signing_in() -> None:
        while not done.is_set():
            results.append(estate.sign_in())

    signer = threading.Thread(target=keep_signing_in)
    signer.start()
    try:
        real = estate.run("site.yml", "--diff")
    finally:
        done.set()
        signer.join()
    assert results and set(results) == {"ok"}, results[:3]
    assert real.report()["workloads"][0]["status"] == "adopted"
    assert fics(estate) == before_fics  # one credential for the subject, still the operator's
    assert assignments(estate) == before_roles  # one assignment, still the CLI's
    after = estate.kube_state()
    assert after["template"] == before_kube["template"] and after["replica_sets"] == before_kube["replica_sets"]
    assert after["account_annotations"]["azure.workload.identity/client-id"] == estate.identity["clientId"]
    assert estate.run("site.yml").changed == 0
    assert estate.sign_in() == "ok"


def test_teardown_gives_every_kubernetes_object_back_as_the_operator_made_it(estate: Estate) -> None:
    removed = estate.run("teardown.yml")
    assert removed.changed >= 1
    assert estate.run("teardown.yml").changed == 0
    # Exactly as the operator left them: the client id and the label stay, the pods were never restarted.
    assert estate.kube_state() == estate.original
    deployment = estate.apps.read_namespaced_deployment("payments", "payments")
    assert not [k for k in deployment.metadata.annotations or {} if k.startswith("workload-identity.aks/")]
    # The operator's identity, credential and role assignment stay (this collection did not make them), and the
    # identity carries nothing of this collection's any more.
    assert assignments(estate) == estate.original_roles
    identity = estate.box.msi().user_assigned_identities.get(IDENTITY_RG, "payments-identity")
    assert not [k for k in identity.tags or {} if k.startswith("wi-")]
    assert [(name, subject) for name, _issuer, subject in fics(estate)] == [
        ("payments-federated", "system:serviceaccount:payments:payments-sa")
    ]
    assert estate.sign_in() == "ok"


def test_a_conflict_found_by_the_plan_leaves_the_cluster_untouched_issuer_included(
    kube_sandbox: Sandbox, estate: Estate
) -> None:
    """The read-only plan runs for every cluster before the oidc_issuer role: nothing is written anywhere."""
    box = kube_sandbox
    box.control.seed_cluster("rg-aks-untouched", "aks-untouched", kube=True)  # issuer off
    box.control.reset_stats()
    workload = {
        "name": "ghost",
        "namespace": "default",
        "service_account": "ghost",
        "roles": [{"role": "Reader", "scope": estate.scope}],
        "controllers": [{"kind": "Deployment", "name": "ghost-api"}],
    }
    typo = {"name": "typo", "namespace": "default", "service_account": "typo"}
    typo["roles"] = [{"role": "Storage Blob Data Raeder", "scope": estate.scope}]
    host = cluster_host("aks-untouched", "rg-aks-untouched", IDENTITY_RG, [workload, typo])
    failed = run_playbook(estate.root / "untouched", "aks-untouched", host, estate.env, "site.yml", (), False)
    assert failed.returncode != 0
    # Azure's problems and Kubernetes' together, in one failure.
    assert "cluster aks-untouched: workload 'ghost': controllers: Deployment default/ghost-api does not exist" in (
        failed.output
    )
    assert "cluster aks-untouched: workload 'typo': roles[0]: role: 'Storage Blob Data Raeder'" in failed.output
    assert "Start enabling the OIDC issuer" not in failed.output
    cluster = box.aks().managed_clusters.get("rg-aks-untouched", "aks-untouched")
    assert not cluster.oidc_issuer_profile.enabled
    assert write_requests(box) == []


def test_an_account_bound_by_hand_to_another_identity_is_refused_before_any_change(estate: Estate) -> None:
    """A ServiceAccount that names another client id is not silently moved to a new identity: the plan says how."""
    kubectl = [KUBECTL, "--kubeconfig", str(estate.box.state_dir / "kubeconfig"), "--context", CLUSTER]
    subprocess.run([*kubectl, "create", "serviceaccount", "reports", "-n", "payments"], check=True, capture_output=True)
    subprocess.run(
        [*kubectl, "annotate", "serviceaccount", "reports", "-n", "payments", "azure.workload.identity/client-id=abc"],
        check=True,
        capture_output=True,
    )
    estate.box.control.reset_stats()
    reports = {"name": "reports", "namespace": "payments", "service_account": "reports", "roles": []}
    host = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, [reports])
    refused = run_playbook(estate.root / "rebind-refused", CLUSTER, host, estate.env, "site.yml", (), False)
    assert refused.returncode != 0
    assert "service_account: payments/reports is bound to client id abc, not the new identity" in refused.output
    assert "set rebind: true" in refused.output
    assert write_requests(estate.box) == []
    account = estate.core.read_namespaced_service_account("reports", "payments")
    assert account.metadata.annotations == {"azure.workload.identity/client-id": "abc"}
    # workload_identity_rebind: warn moves it, saying whose it was; teardown puts it back.
    warned = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, [reports], workload_identity_rebind="warn")
    moved = run_playbook(estate.root / "rebind-warned", CLUSTER, warned, estate.env, "site.yml")
    flat = " ".join(moved.output.split())  # warnings are wrapped to the terminal's width
    assert "service_account: payments/reports was bound by hand to client id abc; moved" in flat
    assert "client id changes from abc (set by hand; teardown puts it back)" in moved.output
    account = estate.core.read_namespaced_service_account("reports", "payments")
    assert account.metadata.annotations["azure.workload.identity/client-id"] not in ("abc", None)
    run_playbook(estate.root / "rebind-teardown", CLUSTER, warned, estate.env, "teardown.yml")
    account = estate.core.read_namespaced_service_account("reports", "payments")
    assert account.metadata.annotations == {"azure.workload.identity/client-id": "abc"}


def test_teardown_adopted_deletes_the_operators_identity_with_every_assignment_it_holds(estate: Estate) -> None:
    """Asked for explicitly: the adopted identity goes as if the collection had made it, assignments first."""
    estate.run("site.yml")  # adopted again after the teardown above
    workload = {**estate.workload(), "teardown_adopted": True}
    host = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, [workload])
    plan = run_playbook(estate.root / "teardown-adopted-plan", CLUSTER, host, estate.env, "teardown.yml", ("--check",))
    assert plan.changed >= 1 and assignments(estate) == estate.original_roles
    run_playbook(estate.root / "teardown-adopted", CLUSTER, host, estate.env, "teardown.yml")
    assert assignments(estate) == []
    assert [i.name for i in estate.box.msi().user_assigned_identities.list_by_resource_group(IDENTITY_RG)] == []
    assert estate.kube_state() == estate.original  # Kubernetes still gets back what the operator had
