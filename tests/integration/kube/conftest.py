"""One sandbox with kube-backed AKS clusters for the whole session (API servers take seconds to start)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError

from tests.integration.sandbox_helpers import PROJECT, TEST_SETTINGS, Sandbox, running

KUBE_SETTINGS = {**TEST_SETTINGS, "kube_clusters": True}


@pytest.fixture(scope="session")
def kube_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running(tmp_path_factory.mktemp("kube-sandbox"), KUBE_SETTINGS) as box:
        # aks-kube is seeded before anything else: the env file's K8S_AUTH_* name the session's first kube-backed
        # cluster, and which test file a worker runs first is xdist's choice, not ours.
        box.control.seed_cluster("rg-kube", "aks-kube", kube=True)
        yield box


@pytest.fixture(scope="module", autouse=True)
def release_the_files_clusters(request: pytest.FixtureRequest) -> Iterator[None]:
    """When a test file ends, the clusters it made are deleted (through ARM, as an operator would), and with them
    their API servers. An idle one still costs about 1.5% of a core; a worker's sandbox would otherwise run every
    file's clusters to the end of the session (a dozen or more), on a machine whose two cores the tests already fill.
    aks-kube, the session's own, stays."""
    yield
    if "kube_sandbox" not in request.fixturenames:
        return
    box: Sandbox = request.getfixturevalue("kube_sandbox")
    clusters = box.control.call("GET", "/_sandbox/clusters")["value"]
    aks, pollers = box.aks(), []
    for cluster in clusters:
        if cluster["kube"] and cluster["name"] != "aks-kube":
            group = cluster["id"].split("/")[4]
            try:
                pollers.append(aks.managed_clusters.begin_delete(group, cluster["name"], polling_interval=0.2))
            except HttpResponseError as exc:  # e.g. an update a killed run left under way: it keeps running
                warnings.warn(f"{cluster['name']} kept: {exc.message}", stacklevel=1)
    for poller in pollers:
        poller.result()


@pytest.fixture(scope="session")
def cluster(kube_sandbox: Sandbox) -> dict[str, str]:
    """An existing AKS cluster (issuer off) backed by its own kube-apiserver: the one K8S_AUTH_* name."""
    return kube_sandbox.control.cluster("rg-kube", "aks-kube")


@pytest.fixture(scope="session")
def ansible_env(
    kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """ansible-playbook's environment: kubernetes.core from .tools, this session's TMPDIR and kubeconfig."""
    import json

    env = json.loads((kube_sandbox.state_dir / "sandbox.json").read_text())
    tmp = tmp_path_factory.mktemp("ansible-tmp")
    return {
        **os.environ,
        **env,
        # kubernetes.core caches API discovery under $TMPDIR keyed by host: a session of its own.
        "TMPDIR": str(tmp),
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".tools" / "collections"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_STDOUT_CALLBACK": "default",
        # helm keeps caches and repository config under $HOME unless told otherwise.
        "HELM_CACHE_HOME": str(tmp / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp / "helm-config"),
        "HELM_DATA_HOME": str(tmp / "helm-data"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "PATH": f"{PROJECT / '.tools' / 'bin'}:{os.environ['PATH']}",
    }
