"""Kubernetes access from the Azure credential alone (``workload_identity_kube_auth: azure``), on sandbox clusters with
Entra ID integration, Azure RBAC for Kubernetes and local accounts disabled, as most production AKS clusters are.

No kubeconfig and no K8S_AUTH_* in the environment: the collection reads each cluster's credential from ARM and signs
in to its API server with an Entra token for the AKS server application, which the cluster's kube-apiserver checks
through webhook token authentication, and authorizes through webhook authorization mapped to Azure RBAC data actions
(the sandbox's guard). Role assignments are real ones, at the cluster or at <cluster>/namespaces/<namespace>.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import run_playbook
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox import jwt
from tests.sandbox.demo import ansible_env, deploy_apps

CLUSTER, CLUSTER_RG, IDENTITY_RG = "aks-entra", "rg-aks-entra", "rg-identities-entra"
CHART = PROJECT / "tests" / "integration" / "kube" / "charts" / "workload-identity-webhook"
APPS = [
    ("Deployment", "team-a", "orders-api", "ghcr.io/contoso/orders-api:2.4.1"),
    ("Deployment", "team-b", "billing-api", "ghcr.io/contoso/billing-api:1.0.0"),
]
CLUSTER_ADMIN = "Azure Kubernetes Service RBAC Cluster Admin"
WRITER = "Azure Kubernetes Service RBAC Writer"
CLUSTER_USER = "Azure Kubernetes Service Cluster User Role"


def oid(token: str) -> str:
    return str(jwt.unverified(token)[1]["oid"])


def workload(name: str, namespace: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "service_account": name,
        "roles": [],
        "controllers": [{"kind": "Deployment", "name": name}],
    }


class Entra:
    def __init__(self, box: Sandbox, root: Path) -> None:
        self.box = box
        self.root = root
        self.cluster_id = str(box.control.cluster(CLUSTER_RG, CLUSTER)["id"])
        sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
        # The Azure credential only: no kubeconfig anywhere, no K8S_AUTH_* (the sandbox's env has both).
        env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
        self.env = {k: v for k, v in env.items() if not k.startswith("K8S_AUTH_") and k != "KUBECONFIG"}
        self.runs = 0

    def host(self, workloads: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        return {
            "workload_identity_cluster_resource_group": CLUSTER_RG,
            "workload_identity_identity_resource_group": IDENTITY_RG,
            "workload_identity_location": "westeurope",
            "workload_identity_kube_auth": "azure",
            "workload_identity_webhook_mode": "helm",
            "workload_identity_tenant_id": self.box.tenant_id,
            "webhook_chart": str(CHART),
            "webhook_chart_repo_url": "",
            "webhook_chart_version": "",
            "workload_identity_workloads": workloads,
            **more,
        }

    def run(self, host: dict[str, Any], *options: str, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        self.runs += 1
        return run_playbook(self.root / f"run-{self.runs}", CLUSTER, host, env or self.env, options=options, **kwargs)

    def module(self, name: str, args: dict[str, Any], env: dict[str, str]) -> tuple[int, str]:
        """One module on localhost (ansible's ad hoc command), its return code and output."""
        self.runs += 1
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible"),
                "localhost",
                "-m",
                f"workload_identity.aks.{name}",
                "-a",
                json.dumps(args),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def principal(self, *grants: tuple[str, str]) -> dict[str, str]:
        return self.box.control.create_principal(
            roles=[{"role": role, "scope": scope} for role, scope in grants], display_name=f"sp-{uuid.uuid4().hex[:6]}"
        )

    def env_as(self, principal: dict[str, str]) -> dict[str, str]:
        return {
            **self.env,
            "AZURE_CLIENT_ID": principal["client_id"],
            "AZURE_SECRET": principal["client_secret"],
            "AZURE_CLIENT_SECRET": principal["client_secret"],
        }

    def core(self) -> Any:
        """The sandbox's own view of the cluster (its static admin: what AKS's operators see, not the collection)."""
        api = k8s_config.new_client_from_config(str(self.box.state_dir / "kubeconfig"), context=CLUSTER)
        return k8s.CoreV1Api(api)


@pytest.fixture(scope="module")
def entra(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Entra]:
    box = kube_sandbox
    box.control.seed_cluster(CLUSTER_RG, CLUSTER, kube=True, local_accounts=False)
    deploy_apps(box.state_dir, CLUSTER, APPS)
    box.resource_group(IDENTITY_RG)
    found = Entra(box, tmp_path_factory.mktemp("entra"))
    # The automation's principal: Owner of the subscription in the sandbox, which is not a Kubernetes role.
    admin = oid(box.token())
    box.authz().role_assignments.create(
        found.cluster_id,
        str(uuid.uuid4()),
        {
            "role_definition_id": f"/subscriptions/{box.subscription_id}/providers/Microsoft.Authorization/"
            "roleDefinitions/b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
            "principal_id": admin,
            "principal_type": "ServicePrincipal",
        },
    )
    yield found


def test_the_rollout_reaches_a_cluster_without_local_accounts_with_the_azure_credential_alone(entra: Entra) -> None:
    host = entra.host([workload("orders-api", "team-a"), workload("billing-api", "team-b")])
    first = entra.run(host)
    assert first.changed > 0
    account = entra.core().read_namespaced_service_account("orders-api", "team-a")
    assert (account.metadata.annotations or {}).get("azure.workload.identity/client-id")
    # The webhook chart went in through helm, with the server, CA and token given to it (no kubeconfig).
    assert entra.core().read_namespaced_config_map("azure-wi-webhook-config", "azure-workload-identity-system")
    second = entra.run(host, "-vvv")
    assert second.changed == 0, second.output[-4000:]
    # An Entra token is a JWT (eyJ...): none in the output, even with -vvv (the helm tasks' api_key is no_log).
    assert not re.search(r"eyJ[\w-]{10,}\.eyJ", second.output)


def test_admin_credential_of_a_cluster_without_local_accounts_is_refused_saying_what_to_use(entra: Entra) -> None:
    host = entra.host([workload("orders-api", "team-a")], workload_identity_kube_credential="admin")
    run = entra.run(host, expect_ok=False)
    assert run.returncode != 0
    assert "local accounts disabled" in run.output
    assert "workload_identity_kube_credential to user" in run.output


def test_a_namespace_writer_binds_workloads_there_and_is_refused_elsewhere_naming_the_data_action(entra: Entra) -> None:
    principal = entra.principal((CLUSTER_USER, entra.cluster_id), (WRITER, f"{entra.cluster_id}/namespaces/team-a"))
    env = entra.env_as(principal)
    identity = {"tenant_id": entra.box.tenant_id, "client_id": str(uuid.uuid4())}
    common = {"cluster_name": CLUSTER, "kube_auth": "azure", "aks_cluster": f"{CLUSTER_RG}/{CLUSTER}"}

    def bind(name: str, namespace: str) -> tuple[int, str]:
        args = {
            **common,
            "workloads": [workload(name, namespace)],
            "identities": [{"name": name, "identity": identity}],
        }
        return entra.module("service_accounts", args, env)

    code, output = bind("orders-api", "team-a")
    assert code == 0, output[-3000:]
    assert '"changed": true' in output
    code, output = bind("billing-api", "team-b")
    assert code != 0
    assert "403" in output
    assert "User does not have access to the resource in Azure" in output
    # Its first request there reads the namespace: that data action, the least role granting it, at that scope,
    # and the role binding workloads takes.
    assert "data action Microsoft.ContainerService/managedClusters/namespaces/read on namespace team-b" in output
    assert "'Azure Kubernetes Service RBAC Reader'" in output and f"'{WRITER}'" in output
    assert f"{entra.cluster_id}/namespaces/team-b".lower() in output.lower()
    # Without the Cluster User Role the credential itself is refused, naming the role.
    nobody = entra.env_as(entra.principal((WRITER, f"{entra.cluster_id}/namespaces/team-a")))
    code, output = entra.module("service_accounts_info", {"cluster_name": CLUSTER, **common}, nobody)
    assert code != 0 and f"'{CLUSTER_USER}'" in output, output[-3000:]


def test_a_long_run_outlives_its_tokens(entra: Entra) -> None:
    """Tokens that live two seconds, a run that takes longer: each request that needs one gets a fresh token."""
    box = entra.box
    before = box.control.configure({})["token_lifetime_seconds"]
    box.control.configure({"token_lifetime_seconds": 2, "latency_ms": 250})
    try:
        box.control.reset_stats()
        code, output = entra.module(
            "service_accounts_info",
            {"cluster_name": CLUSTER, "kube_auth": "azure", "aks_cluster": f"{CLUSTER_RG}/{CLUSTER}"},
            entra.env,
        )
        stats = box.control.stats()["operations"]
    finally:
        box.control.configure({"token_lifetime_seconds": before, "latency_ms": 0})
    assert code == 0, output[-3000:]
    authenticated = stats.get("guard.authenticate", {}).get("total", 0)
    tokens = stats.get("entra.token", {}).get("total", 0)
    # One token for ARM, then more than one for the API server: refreshed during the run, not once at its start.
    assert authenticated >= 2 and tokens >= 3, stats


def test_a_private_cluster_out_of_reach_says_where_to_run_from(entra: Entra, kube_sandbox: Sandbox) -> None:
    kube_sandbox.control.seed_cluster(CLUSTER_RG, "aks-private", kube=True, local_accounts=False, private=True)
    code, output = entra.module(
        "service_accounts_info",
        {"cluster_name": "aks-private", "kube_auth": "azure", "aks_cluster": f"{CLUSTER_RG}/aks-private"},
        entra.env,
    )
    assert code != 0
    assert "private cluster" in output and "privatelink" in output, output[-3000:]


def test_discovery_then_teardown_of_everything_with_the_azure_credential_alone(entra: Entra) -> None:
    """Last: discover.yml reads the estate back; teardown's helm uninstall and namespace checks go through the same
    Entra token, twice."""
    host = entra.host([workload("orders-api", "team-a"), workload("billing-api", "team-b")])
    found = {k: v for k, v in host.items() if k != "workload_identity_workloads"}
    entra.run({**found, "workload_identity_discover_resource_groups": [IDENTITY_RG]}, playbook="discover.yml")
    discovered = (entra.root / f"run-{entra.runs}" / "host_vars" / f"{CLUSTER}.yml").read_text()
    assert "orders-api" in discovered and "team-a" in discovered, discovered
    confirmed = ("-e", "workload_identity_teardown_everything=true", "-e", f"workload_identity_prune_confirm={CLUSTER}")
    first = entra.run(host, *confirmed, playbook="teardown.yml")
    assert first.changed > 0
    again = entra.run(host, *confirmed, playbook="teardown.yml")
    assert again.changed == 0, again.output[-4000:]
    core = entra.core()
    accounts = {a.metadata.name for a in core.list_namespaced_service_account("team-a").items}
    assert "orders-api" not in accounts
    assert not core.list_namespaced_config_map(
        "azure-workload-identity-system", field_selector="metadata.name=azure-wi-webhook-config"
    ).items
