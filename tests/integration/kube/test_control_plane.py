"""A real kube-apiserver behind each sandbox AKS cluster, driven by the clients users have."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.sandbox_helpers import PROJECT, Sandbox, run_cli, running
from tests.sandbox.kube import KUBE_VERSION

from .conftest import KUBE_SETTINGS

KUBECTL = str(PROJECT / ".tools" / "bin" / "kubectl")
HELM = str(PROJECT / ".tools" / "bin" / "helm")


def api(sandbox: Sandbox, context: str = "aks-kube") -> k8s.ApiClient:
    return k8s_config.new_client_from_config(str(sandbox.state_dir / "kubeconfig"), context=context)


def playbook(tmp_path: Path, env: dict[str, str], tasks: list[dict[str, Any]], *extra: str) -> str:
    """Run tasks against localhost with ansible-playbook; its output (default callback)."""
    book = tmp_path / f"play-{len(list(tmp_path.glob('play-*')))}.yml"
    book.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}])
    )
    done = subprocess.run(
        [
            str(Path(env["ANSIBLE_PYTHON_INTERPRETER"]).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            str(book),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def changed(output: str) -> int:
    """changed= from the PLAY RECAP line."""
    match = re.search(r"^localhost\s+:.*\bchanged=(\d+)", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


def test_cluster_body_and_credentials_point_at_the_api_server(kube_sandbox: Sandbox, cluster: dict[str, str]) -> None:
    aks = kube_sandbox.aks().managed_clusters
    body = aks.get("rg-kube", "aks-kube")
    server = cluster["kube"]["server"]  # type: ignore[index]
    assert body.fqdn == server.split("://")[1]
    credentials = aks.list_cluster_user_credentials("rg-kube", "aks-kube")
    config = yaml.safe_load(
        base64.b64decode(credentials.kubeconfigs[0].value)
        if isinstance(credentials.kubeconfigs[0].value, str)
        else credentials.kubeconfigs[0].value
    )
    assert config["clusters"][0]["cluster"]["server"] == server
    client = k8s_config.new_client_from_config_dict(config)
    assert k8s.VersionApi(client).get_code().git_version == f"v{KUBE_VERSION}"
    # The cluster reports its API server's version, as AKS does.
    assert body.kubernetes_version == body.current_kubernetes_version == KUBE_VERSION


def test_env_file_carries_kubeconfig_and_k8s_auth(kube_sandbox: Sandbox, cluster: dict[str, str]) -> None:
    env = json.loads((kube_sandbox.state_dir / "sandbox.json").read_text())
    assert env["KUBECONFIG"] == str(kube_sandbox.state_dir / "kubeconfig")
    assert env["K8S_AUTH_HOST"] == cluster["kube"]["server"]  # type: ignore[index]
    configuration = k8s.Configuration(
        host=env["K8S_AUTH_HOST"],
        api_key={"authorization": env["K8S_AUTH_API_KEY"]},
        api_key_prefix={"authorization": "Bearer"},
    )
    configuration.ssl_ca_cert = env["K8S_AUTH_SSL_CA_CERT"]
    names = {n.metadata.name for n in k8s.CoreV1Api(k8s.ApiClient(configuration)).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_python_client_patches_like_kubernetes(kube_sandbox: Sandbox, cluster: dict[str, str]) -> None:
    core, apps = k8s.CoreV1Api(api(kube_sandbox)), k8s.AppsV1Api(api(kube_sandbox))
    core.create_namespace({"metadata": {"name": "py-orders"}})
    core.create_namespaced_service_account("py-orders", {"metadata": {"name": "orders-api"}})
    apps.create_namespaced_deployment(
        "py-orders",
        {
            "metadata": {"name": "orders-api"},
            "spec": {
                "selector": {"matchLabels": {"app": "orders"}},
                "template": {
                    "metadata": {"labels": {"app": "orders"}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "registry.example/orders:1", "env": [{"name": "A", "value": "1"}]}
                        ]
                    },
                },
            },
        },
    )
    apps.patch_namespaced_deployment(
        "orders-api",
        "py-orders",
        {
            "spec": {
                "template": {
                    "metadata": {"labels": {"azure.workload.identity/use": "true"}},
                    "spec": {"serviceAccountName": "orders-api"},
                }
            }
        },
    )
    template = apps.read_namespaced_deployment("orders-api", "py-orders").spec.template
    assert template.metadata.labels == {"app": "orders", "azure.workload.identity/use": "true"}
    assert template.spec.service_account_name == "orders-api"
    assert template.spec.containers[0].env[0].value == "1"  # strategic merge kept the rest
    rejected = None
    try:
        core.create_namespaced_config_map("does-not-exist", {"metadata": {"name": "x"}})
    except k8s.ApiException as exc:
        rejected = exc.status
    assert rejected == 404


def test_kubectl(kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path: Path) -> None:
    base = [
        KUBECTL,
        "--kubeconfig",
        str(kube_sandbox.state_dir / "kubeconfig"),
        "--context",
        "aks-kube",
        "--cache-dir",
        str(tmp_path / "kube-cache"),
    ]  # not ~/.kube/cache
    version = json.loads(
        subprocess.run([*base, "version", "-o", "json"], capture_output=True, text=True, check=True).stdout
    )
    assert version["serverVersion"]["gitVersion"] == f"v{KUBE_VERSION}"
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubectl-cm, namespace: default}\ndata: {a: '1'}\n"
    )
    first = subprocess.run([*base, "apply", "-f", str(manifest)], capture_output=True, text=True, check=True)
    second = subprocess.run([*base, "apply", "-f", str(manifest)], capture_output=True, text=True, check=True)
    assert "created" in first.stdout and "unchanged" in second.stdout


def test_kubernetes_core_k8s_list_twice_check_and_diff(
    cluster: dict[str, str], ansible_env: dict[str, str], tmp_path: Path
) -> None:
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ansible-orders"}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "orders-api",
                "namespace": "ansible-orders",
                "annotations": {"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001"},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "orders-api", "namespace": "ansible-orders"},
            "spec": {
                "selector": {"matchLabels": {"app": "orders"}},
                "template": {
                    "metadata": {"labels": {"app": "orders", "azure.workload.identity/use": "true"}},
                    "spec": {
                        "serviceAccountName": "orders-api",
                        "containers": [{"name": "app", "image": "registry.example/orders:1"}],
                    },
                },
            },
        },
    ]
    task = {"name": "apply", "kubernetes.core.k8s": {"state": "present", "definition": objects, "context": "aks-kube"}}
    assert changed(playbook(tmp_path, ansible_env, [task])) == 1
    assert changed(playbook(tmp_path, ansible_env, [task])) == 0
    objects[1]["metadata"]["annotations"]["azure.workload.identity/client-id"] = "changed"  # type: ignore[index]
    checked = playbook(tmp_path, ansible_env, [task], "--check", "--diff")
    assert changed(checked) == 1
    # kubernetes.core 6.2 prints --diff for a single definition only (a list keeps diffs per item).
    single = {
        "name": "sa",
        "kubernetes.core.k8s": {"state": "present", "definition": objects[1], "context": "aks-kube"},
    }
    checked = playbook(tmp_path, ansible_env, [single], "--check", "--diff")
    assert changed(checked) == 1
    assert re.search(r"^-.*00000000-0000-0000-0000-000000000001", checked, re.MULTILINE), checked
    assert re.search(r"^\+.*client-id.*changed", checked, re.MULTILINE), checked
    sa = k8s.CoreV1Api(api_from_env(ansible_env)).read_namespaced_service_account("orders-api", "ansible-orders")
    assert sa.metadata.annotations["azure.workload.identity/client-id"] == "00000000-0000-0000-0000-000000000001"


def api_from_env(env: dict[str, str]) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(env["KUBECONFIG"], context="aks-kube")


def test_kubernetes_core_helm_installs_a_local_chart_twice(
    cluster: dict[str, str], ansible_env: dict[str, str], tmp_path: Path
) -> None:
    task = {
        "name": "install",
        "kubernetes.core.helm": {
            "name": "sample",
            "chart_ref": str(Path(__file__).parent / "charts" / "sample"),
            "release_namespace": "helm-sample",
            "create_namespace": True,
            "binary_path": HELM,
            "release_values": {"greeting": "hi", "serviceAccount": {"clientId": "abc"}},
        },
    }
    # The AWX way: K8S_AUTH_HOST / K8S_AUTH_API_KEY / K8S_AUTH_SSL_CA_CERT from the environment
    # (kubernetes.core.helm refuses `context` together with the CA those variables bring).
    assert ansible_env["K8S_AUTH_HOST"] == cluster["kube"]["server"]  # type: ignore[index]
    assert changed(playbook(tmp_path, ansible_env, [task])) == 1
    assert changed(playbook(tmp_path, ansible_env, [task])) == 0
    cm = k8s.CoreV1Api(api_from_env(ansible_env)).read_namespaced_config_map("sample-settings", "helm-sample")
    assert cm.data == {"greeting": "hi"}


def test_down_stops_every_process_and_up_brings_the_cluster_back(tmp_path: Path) -> None:
    state = tmp_path / "own"
    with running(state, KUBE_SETTINGS) as box:
        box.control.seed_cluster("rg-k", "aks-restart", kube=True)
        k8s.CoreV1Api(api(box, "aks-restart")).create_namespace({"metadata": {"name": "survives"}})
        pids = box.control.call("GET", "/_sandbox/health")["kube"]
        components = sorted(p.rsplit("/", 1)[-1] for p in pids)
        assert components == ["etcd", "kube-apiserver", "kube-controller-manager"], pids
        run_cli(state, "down")
        for pid in pids.values():
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        again = running(state, KUBE_SETTINGS)
        with again as box2:
            import time

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(box2.control.call("GET", "/_sandbox/health")["kube"]) < 3:
                time.sleep(0.2)
            names = {n.metadata.name for n in k8s.CoreV1Api(api(box2, "aks-restart")).list_namespace().items}
            assert "survives" in names


def test_the_env_files_keep_naming_a_live_api_server_through_updates_and_deletions(tmp_path: Path) -> None:
    """sandbox.env's K8S_AUTH_* and the kubeconfig's current context name the oldest kube-backed cluster: an update
    through ARM does not make another one older, and a deleted one is no longer named (its API server is gone)."""
    with running(tmp_path / "own", KUBE_SETTINGS) as box:
        first = box.control.seed_cluster("rg-env", "aks-env-first", kube=True)
        second = box.control.seed_cluster("rg-env", "aks-env-second", kube=True)

        def named() -> tuple[str, str]:
            env = json.loads((box.state_dir / "sandbox.json").read_text())
            config = yaml.safe_load((box.state_dir / "kubeconfig").read_text())
            return env["K8S_AUTH_HOST"], config["current-context"]

        assert named() == (first["kube"]["server"], "aks-env-first")  # type: ignore[index]
        clusters = box.aks().managed_clusters
        updated = clusters.get("rg-env", "aks-env-second")
        updated.tags = {"team": "platform"}
        clusters.begin_create_or_update("rg-env", "aks-env-second", updated, polling_interval=0.2).result()
        assert named() == (first["kube"]["server"], "aks-env-first")  # type: ignore[index]
        clusters.begin_delete("rg-env", "aks-env-first", polling_interval=0.2).result()
        assert named() == (second["kube"]["server"], "aks-env-second")  # type: ignore[index]


def test_an_existing_cluster_named_by_sandbox_kubeconfig(
    kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SANDBOX_KUBECONFIG: a second sandbox uses this session's API server instead of starting one."""
    monkeypatch.setenv("SANDBOX_KUBECONFIG", str(kube_sandbox.state_dir / "kubeconfig"))
    with running(tmp_path / "borrower", KUBE_SETTINGS) as other:
        seeded = other.control.seed_cluster("rg-b", "aks-borrowed", kube=True)
        assert seeded["kube"]["server"] == cluster["kube"]["server"]  # type: ignore[index]
        assert other.control.call("GET", "/_sandbox/health")["kube"] == {}  # no process of its own
        k8s.CoreV1Api(api(kube_sandbox)).create_namespace({"metadata": {"name": "made-on-the-lender"}})
        names = {n.metadata.name for n in k8s.CoreV1Api(api(other, "aks-borrowed")).list_namespace().items}
        assert "made-on-the-lender" in names


def test_current_apis_are_served(kube_sandbox: Sandbox, cluster: dict[str, str]) -> None:
    """What AKS serves today and Kubernetes 1.20 did not: batch/v1 CronJob, policy/v1 PodDisruptionBudget."""
    client = api(kube_sandbox)
    batch = {r.kind for r in k8s.BatchV1Api(client).get_api_resources().resources}
    policy = {r.kind for r in k8s.PolicyV1Api(client).get_api_resources().resources}
    assert "CronJob" in batch and "PodDisruptionBudget" in policy
    groups = {g.name: [v.version for v in g.versions] for g in k8s.ApisApi(client).get_api_versions().groups}
    assert "v1beta1" not in groups["batch"]  # gone since 1.25: nothing may still depend on it


def wait_for(what: str, probe: Any, timeout: float = 60) -> Any:
    """Poll until probe() is truthy (controllers act asynchronously); its value."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_controllers_create_replica_sets_and_pods_and_finish_namespaces(
    kube_sandbox: Sandbox, cluster: dict[str, str]
) -> None:
    core, apps = k8s.CoreV1Api(api(kube_sandbox)), k8s.AppsV1Api(api(kube_sandbox))
    core.create_namespace({"metadata": {"name": "controllers"}})
    # The service-account controller gives every namespace its `default` account.
    wait_for("the default service account", lambda: core.list_namespaced_service_account("controllers").items)
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": "c"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/c:1"}]},
    }
    apps.create_namespaced_deployment(
        "controllers",
        {
            "metadata": {"name": "c"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "c"}}, "template": template},
        },
    )
    wait_for("two pods", lambda: len(core.list_namespaced_pod("controllers").items) == 2)
    apps.patch_namespaced_deployment("c", "controllers", {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}})
    sets = wait_for("a second ReplicaSet", lambda: len(apps.list_namespaced_replica_set("controllers").items) == 2)
    assert sets
    # Without nodes nothing is scheduled: pods stay Pending, which is what the sandbox says it does.
    assert {p.status.phase for p in core.list_namespaced_pod("controllers").items} == {"Pending"}
    core.delete_namespace("controllers")
    wait_for(
        "the namespace to be gone",
        lambda: "controllers" not in {n.metadata.name for n in core.list_namespace().items},
        timeout=90,
    )
