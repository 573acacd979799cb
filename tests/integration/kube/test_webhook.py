"""The azure-workload-identity webhook, for real: AKS's add-on mode (the sandbox runs the upstream webhook) and
helm mode (the upstream chart 1.6.0, installed by the webhook role; its pods cannot run here).

Pods are created by the API server's clients exactly as on AKS, and what lands in etcd is what the real
webhook wrote; a pod's projected token is then requested as the kubelet would, and exchanged at Entra ID.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.identity import WorkloadIdentityCredential
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import run_playbook
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.addon import CONFIGURATION_NAME, WEBHOOK_BINARY
from tests.sandbox.demo import ansible_env
from tests.sandbox.pods import TOKEN_FILE, TOKEN_MOUNT, injected, newest_pods, projected_token

CHART = PROJECT / "tests" / "integration" / "kube" / "charts" / "workload-identity-webhook"
ADDON_RG, ADDON = "rg-aks-addon", "aks-addon"
HELM_RG, HELM = "rg-aks-helm", "aks-helm"
USE = {"azure.workload.identity/use": "true"}


def clients(box: Sandbox, context: str) -> tuple[Any, Any, Any]:
    api = k8s_config.new_client_from_config(str(box.state_dir / "kubeconfig"), context=context)
    return k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.AdmissionregistrationV1Api(api)


def set_addon(box: Sandbox, enabled: bool, group: str = ADDON_RG, name: str = ADDON) -> Any:
    """What `az aks update --enable-workload-identity` does: a PUT of the cluster, then its long-running operation."""
    aks = box.aks().managed_clusters
    cluster = aks.get(group, name)
    cluster.oidc_issuer_profile.enabled = True
    from azure.mgmt.containerservice.models import (
        ManagedClusterSecurityProfile,
        ManagedClusterSecurityProfileWorkloadIdentity,
    )

    cluster.security_profile = cluster.security_profile or ManagedClusterSecurityProfile()
    cluster.security_profile.workload_identity = ManagedClusterSecurityProfileWorkloadIdentity(enabled=enabled)
    return aks.begin_create_or_update(group, name, cluster).result()


@pytest.fixture(scope="module")
def addon(kube_sandbox: Sandbox, cluster: dict[str, str]) -> Iterator[Sandbox]:
    """A kube-backed cluster whose add-on an operator has just turned on (issuer first, as AKS requires)."""
    kube_sandbox.control.seed_cluster(ADDON_RG, ADDON, kube=True)
    set_addon(kube_sandbox, True)
    yield kube_sandbox


def webhook_running(box: Sandbox) -> bool:
    """Whether the sandbox runs a webhook process for this cluster (others in the session may have theirs)."""
    processes = box.control.call("GET", "/_sandbox/health")["kube"]
    return any(name.lower().endswith(f"/managedclusters/{ADDON}/{WEBHOOK_BINARY}") for name in processes)


def pod(name: str, account: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceAccountName": account,
            "containers": [{"name": "app", "image": "registry.example/app:1", "env": [{"name": "A", "value": "1"}]}],
        },
    }


def test_the_add_on_registers_the_webhook_as_aks_does(addon: Sandbox) -> None:
    _core, _apps, admission = clients(addon, ADDON)
    configuration = admission.read_mutating_webhook_configuration(CONFIGURATION_NAME)
    assert configuration.metadata.labels["kubernetes.azure.com/managedby"] == "aks"
    (hook,) = configuration.webhooks
    assert hook.object_selector.match_labels == USE
    assert hook.failure_policy == "Fail" and hook.side_effects == "None"
    assert [(r.operations, r.resources, r.api_groups) for r in hook.rules] == [(["CREATE"], ["pods"], [""])]
    assert hook.client_config.url.startswith("https://127.0.0.1:") and hook.client_config.service is None
    assert webhook_running(addon)


def test_a_bound_deployments_pods_carry_what_the_webhook_injects_and_sign_in(addon: Sandbox) -> None:
    core, apps, _admission = clients(addon, ADDON)
    issuer = addon.aks().managed_clusters.get(ADDON_RG, ADDON).oidc_issuer_profile.issuer_url
    addon.resource_group("rg-addon-identities")
    msi = addon.msi()
    identity = msi.user_assigned_identities.create_or_update(
        "rg-addon-identities", "id-payments", {"location": "westeurope"}
    )
    msi.federated_identity_credentials.create_or_update(
        "rg-addon-identities",
        "id-payments",
        "aks-addon-payments",
        {
            "issuer": issuer,
            "subject": "system:serviceaccount:payments:payments",
            "audiences": ["api://AzureADTokenExchange"],
        },
    )
    core.create_namespace({"metadata": {"name": "payments"}})
    annotations = {
        "azure.workload.identity/client-id": identity.client_id,
        "azure.workload.identity/service-account-token-expiration": "7200",
    }
    core.create_namespaced_service_account("payments", {"metadata": {"name": "payments", "annotations": annotations}})
    template = pod("unused", "payments", {"app": "payments", **USE})
    template["metadata"].pop("name")
    apps.create_namespaced_deployment(
        "payments",
        {
            "metadata": {"name": "payments"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "payments"}}, "template": template},
        },
    )
    pods = newest_pods(core, apps, "payments", "payments")
    assert len(pods) == 2
    for made in pods:
        mark = injected(made)
        assert mark.env == {
            "AZURE_CLIENT_ID": identity.client_id,
            "AZURE_TENANT_ID": addon.tenant_id,
            "AZURE_FEDERATED_TOKEN_FILE": TOKEN_FILE,
            # From the custom cloud file the sandbox gives the webhook: pods sign in at the sandbox's Entra ID.
            "AZURE_AUTHORITY_HOST": addon.url + "/",
        }
        assert (mark.audience, mark.expiration_seconds, mark.mounted_at) == (
            "api://AzureADTokenExchange",
            7200,
            TOKEN_MOUNT,
        )
        assert made.spec.containers[0].env[0].name == "A"  # the team's own variables stay first
    # The kubelet's token for that pod, exchanged at Entra ID by the SDK with exactly the pod's environment.
    mark = injected(pods[0])
    with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as handle:
        handle.write(projected_token(core, pods[0]))
    try:
        credential = WorkloadIdentityCredential(
            tenant_id=mark.env["AZURE_TENANT_ID"],
            client_id=mark.env["AZURE_CLIENT_ID"],
            token_file_path=handle.name,
            authority=mark.env["AZURE_AUTHORITY_HOST"],
            connection_verify=addon.ca,
        )
        token = credential.get_token(addon.url + "/.default").token
    finally:
        os.unlink(handle.name)
    claims = json.loads(_b64(token.split(".")[1]))
    assert claims["oid"] == identity.principal_id


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_unlabelled_pods_are_left_alone_and_an_unannotated_account_gets_no_client_id(addon: Sandbox) -> None:
    core, _apps, _admission = clients(addon, ADDON)
    core.create_namespace({"metadata": {"name": "strangers"}})
    core.create_namespaced_service_account("strangers", {"metadata": {"name": "plain"}})
    alone = core.create_namespaced_pod("strangers", pod("unlabelled", "plain", {"app": "x"}))
    assert not injected(alone).mutated and injected(alone).env == {}
    assert [e.name for e in alone.spec.containers[0].env] == ["A"]
    # Labelled, on an account with no client-id annotation: the webhook still mutates the pod, with
    # everything but AZURE_CLIENT_ID (it adds only variables that have a value), so the SDK has no identity.
    labelled = core.create_namespaced_pod("strangers", pod("labelled", "plain", {"app": "x", **USE}))
    mark = injected(labelled)
    assert mark.mutated and mark.audience == "api://AzureADTokenExchange"
    assert mark.expiration_seconds == 3600  # the webhook's default
    assert mark.env == {
        "AZURE_TENANT_ID": addon.tenant_id,
        "AZURE_FEDERATED_TOKEN_FILE": TOKEN_FILE,
        "AZURE_AUTHORITY_HOST": addon.url + "/",
    }


def test_turning_the_add_on_off_removes_the_webhook(addon: Sandbox) -> None:
    core, _apps, admission = clients(addon, ADDON)
    set_addon(addon, False)
    names = [c.metadata.name for c in admission.list_mutating_webhook_configuration().items]
    assert CONFIGURATION_NAME not in names
    assert not webhook_running(addon)
    core.create_namespace({"metadata": {"name": "after"}})
    core.create_namespaced_service_account("after", {"metadata": {"name": "plain"}})
    made = core.create_namespaced_pod("after", pod("labelled", "plain", {"app": "x", **USE}))
    assert not injected(made).mutated
    set_addon(addon, True)  # and on again: it comes back
    assert admission.read_mutating_webhook_configuration(CONFIGURATION_NAME).webhooks


# -- helm mode: the real chart ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_cluster(kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    kube_sandbox.control.seed_cluster(HELM_RG, HELM, kube=True, oidc_issuer_enabled=True)
    root = tmp_path_factory.mktemp("helm")
    env = {
        **ansible_env(json.loads((kube_sandbox.state_dir / "sandbox.json").read_text()), kube_sandbox.state_dir),
        "ANSIBLE_NOCOLOR": "1",
        "TMPDIR": str(root),
    }
    book = root / "webhook.yml"
    roles = [{"role": "workload_identity.aks.webhook", "webhook_chart": str(CHART)}]
    book.write_text(yaml.safe_dump([{"name": "Webhook only", "hosts": "all", "gather_facts": False, "roles": roles}]))
    host = {
        "workload_identity_webhook_mode": "helm",
        "workload_identity_tenant_id": kube_sandbox.tenant_id,
        "workload_identity_kube_context": HELM,
        "webhook_chart_repo_url": "",
        "webhook_chart_version": "",
    }
    runs = iter(range(100))

    def run(expect_ok: bool = True, options: tuple[str, ...] = (), playbook: str | Path = book, **extra: Any) -> Any:
        return run_playbook(root / f"run-{next(runs)}", HELM, {**host, **extra}, env, playbook, options, expect_ok)

    return run


def test_helm_mode_installs_the_real_chart_once(kube_sandbox: Sandbox, helm_cluster: Any) -> None:
    first = helm_cluster()
    assert first.changed == 1, first.output[-4000:]
    second = helm_cluster()
    assert second.changed == 0, second.output[-4000:]
    core, apps, admission = clients(kube_sandbox, HELM)
    namespace = "azure-workload-identity-system"
    config = core.read_namespaced_config_map("azure-wi-webhook-config", namespace)
    assert config.data["AZURE_TENANT_ID"] == kube_sandbox.tenant_id
    assert config.data["AZURE_ENVIRONMENT"] == "AzurePublicCloud"
    deployment = apps.read_namespaced_deployment("azure-wi-webhook-controller-manager", namespace)
    image = deployment.spec.template.spec.containers[0].image
    assert image == "mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.6.0"
    assert core.read_namespaced_service("azure-wi-webhook-webhook-service", namespace).spec.ports[0].port == 443
    (hook,) = admission.read_mutating_webhook_configuration(CONFIGURATION_NAME).webhooks
    assert hook.client_config.service.name == "azure-wi-webhook-webhook-service"
    # The webhook is installed but its pods cannot run here (no kubelet, no registry): the state an operator
    # hits when the webhook's pods are down. With failurePolicy Fail, labelled pods are refused; others are not.
    assert not deployment.status.available_replicas
    core.create_namespace({"metadata": {"name": "helm-apps"}})
    core.create_namespaced_service_account("helm-apps", {"metadata": {"name": "plain"}})
    core.create_namespaced_pod("helm-apps", pod("unlabelled", "plain", {"app": "x"}))
    with pytest.raises(k8s.ApiException) as refused:
        core.create_namespaced_pod("helm-apps", pod("labelled", "plain", {"app": "x", **USE}))
    assert refused.value.status == 500 and "mutation.azure-workload-identity.io" in str(refused.value.body)


def test_helm_mode_refuses_a_second_webhook_next_to_the_add_on(helm_cluster: Any) -> None:
    refused = helm_cluster(expect_ok=False, oidc_issuer_addon_enabled=True)
    assert "two webhooks would both mutate every pod" in refused.output


def test_the_plan_says_what_installing_the_chart_changes_without_helm_diff(helm_cluster: Any) -> None:
    # The chart is installed (test_helm_mode_installs_the_real_chart_once, before this one).
    planned = helm_cluster(
        options=("--check",),
        webhook_chart_version="1.7.0",
        webhook_values={"logLevel": "debug"},
        workload_identity_tenant_id="11111111-2222-3333-4444-555555555555",
    )
    assert "chart workload-identity-webhook-1.6.0 -> workload-identity-webhook-1.7.0" in planned.output
    assert " -> 11111111-2222-3333-4444-555555555555" in planned.output
    assert "values logLevel change" in planned.output
    assert planned.changed <= 1  # check mode: the install is predicted, nothing is written
    same = helm_cluster(options=("--check",))
    assert '"msg": []' in same.output and same.changed == 0


def test_the_plan_reads_the_release_from_helms_storage_as_helm_info_does(
    kube_sandbox: Sandbox, helm_cluster: Any, tmp_path: Path
) -> None:
    """The workloads role's plan reads the chart's release from the Secrets the real helm wrote (one list request,
    no helm binary): what helm_info's status says, but for the time's format; a release that is not there is empty."""
    helm_cluster()  # the chart is installed (helm mode)
    release = {"name": "workload-identity-webhook", "namespace": "azure-workload-identity-system"}
    reads = [
        {
            "name": "helm_info",
            "kubernetes.core.helm_info": {**release, "release_namespace": release["namespace"], "context": HELM},
            "register": "by_helm",
        },
        {
            "name": "from storage",
            "workload_identity.aks.service_accounts": {
                "cluster_name": HELM,
                "workloads": [],
                "context": HELM,
                "read_release": "{{ item }}",
            },
            "check_mode": True,
            "loop": [release, {**release, "name": "no-such-release"}],
            "register": "by_storage",
        },
        {
            "name": "show",
            "ansible.builtin.debug": {
                "msg": "READS={{ {'helm': by_helm.status, 'storage': by_storage.results | map(attribute='release')} "
                "| to_json }}"
            },
        },
    ]
    book = tmp_path / "reads.yml"
    book.write_text(yaml.safe_dump([{"name": "Reads", "hosts": "all", "gather_facts": False, "tasks": reads}]))
    done = helm_cluster(playbook=book)
    found = json.loads(json.loads('"' + done.output.split('"msg": "READS=', 1)[1].split('"\n', 1)[0] + '"'))
    by_helm, (by_storage, missing) = found["helm"], found["storage"]
    fields = ("name", "namespace", "revision", "status", "chart", "app_version", "values")
    assert {k: by_storage[k] for k in fields} == {k: by_helm[k] for k in fields}, found
    assert by_storage["values"]["azureTenantID"] == kube_sandbox.tenant_id
    assert by_storage["revision"] == by_helm["revision"] and by_helm["status"] == "deployed"
    assert missing == {}


def test_switching_helm_to_addon_is_refused_before_the_add_on_is_on_then_ends_with_one_webhook(
    kube_sandbox: Sandbox, helm_cluster: Any
) -> None:
    helm_cluster()  # the chart is installed (helm mode)
    site = {
        "workload_identity_webhook_mode": "addon",
        "workload_identity_cluster_resource_group": HELM_RG,
        "workload_identity_identity_resource_group": HELM_RG,
        "workload_identity_location": "westeurope",
        "workload_identity_workloads": [],
        "webhook_chart": str(CHART),
    }
    refused = helm_cluster(expect_ok=False, playbook="site.yml", **site)
    assert "the webhook chart is installed (Helm release workload-identity-webhook" in refused.output
    assert "uninstall the chart first" in refused.output
    # Refused in the plan, for every cluster: the add-on was not turned on.
    profile = kube_sandbox.aks().managed_clusters.get(HELM_RG, HELM).security_profile
    assert not (profile and profile.workload_identity and profile.workload_identity.enabled)
    # Teardown of everything uninstalls the chart, though the cluster is now in addon mode.
    torn = helm_cluster(
        playbook="teardown.yml",
        workload_identity_teardown_everything=True,
        workload_identity_prune_confirm=HELM,
        **site,
    )
    assert "webhook chart: uninstalled" in torn.output
    switched = helm_cluster(playbook="site.yml", **site)
    assert "release workload-identity-webhook is not installed (checked)" in switched.output
    _core, _apps, admission = clients(kube_sandbox, HELM)
    configurations = admission.list_mutating_webhook_configuration().items
    hooks = [c for c in configurations if c.metadata.name == CONFIGURATION_NAME]
    assert len(hooks) == 1 and (hooks[0].metadata.labels or {}).get("app.kubernetes.io/managed-by") != "Helm"
    assert kube_sandbox.aks().managed_clusters.get(HELM_RG, HELM).security_profile.workload_identity.enabled
    assert helm_cluster(playbook="site.yml", **site).changed == 0
    set_addon(kube_sandbox, False, HELM_RG, HELM)  # as the fixture made it, for any test after this one


def test_the_vendored_chart_is_the_upstream_artifact() -> None:
    """tests/…/charts/workload-identity-webhook is ../shared/charts/workload-identity-webhook, byte for byte."""
    shared = PROJECT.parent / "shared" / "charts" / "workload-identity-webhook"
    if not shared.is_dir():
        pytest.skip("no ../shared/charts next to this checkout")
    ours = {p.relative_to(CHART): p.read_bytes() for p in CHART.rglob("*") if p.is_file()}
    theirs = {p.relative_to(shared): p.read_bytes() for p in shared.rglob("*") if p.is_file()}
    assert ours == theirs
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["version"] == "1.6.0"
    assert Path(CHART / "LICENSE").exists()
