"""Installed and run the way Ansible and AWX users do it: the built tarball, installed offline into a fresh path, run
by FQCN from a project folder; the AWX example project through ansible-runner with exactly the environment AWX's
credentials inject; the execution-environment definition through ``ansible-builder create``.

Nothing here uses this checkout as the collection: the collections path holds only the installed tarball and
kubernetes.core.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.awx_jobs import awx_project, azure_rm_credential, run_jobs
from tests.integration.kube.rollout_runs import Run
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.demo import deploy_apps, ensure_resource_chain

CLUSTER, CLUSTER_RG, IDENTITY_RG, DATA_RG = "aks-install", "rg-aks-install", "rg-identities-install", "rg-data-install"
BIN = Path(sys.executable).parent
# What the tarball must carry for users, and what it must leave in the repository.
SHIPPED = {"README.md", "LICENSE", "CHANGELOG.rst", "requirements.txt", "bindep.txt", "meta/runtime.yml",
           "meta/execution-environment.yml", "docs/awx.md", "playbooks/site.yml", "plugins/modules/summary.py",
           "plugins/lookup/report_dir.py", "examples/execution-environment/execution-environment.yml",
           "docs/docsite/rst/awx.rst"}  # fmt: skip
LEFT_OUT = ("tests/", "scripts/", "Makefile", "noxfile.py", "pyproject.toml", "test-requirements.txt", ".ci/",
            "changelogs/fragments/")  # fmt: skip


@dataclass
class Installed:
    box: Sandbox
    tarball: Path
    collections: Path  # the fresh path the tarball went into (its ansible_collections/ inside)
    scope: str
    root: Path

    def env(self, **more: str) -> dict[str, str]:
        """A user's shell: the sandbox's Azure variables, only installed collections, no kubeconfig of the project."""
        sandbox = json.loads((self.box.state_dir / "sandbox.json").read_text())
        base = {k: v for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "AZURE_", "ANSIBLE_"))}
        azure = {k: v for k, v in sandbox.items() if k.startswith("AZURE_") or k == "REQUESTS_CA_BUNDLE"}
        return {
            **base,
            **azure,
            "KUBECONFIG": str(self.box.state_dir / "kubeconfig"),
            "ANSIBLE_COLLECTIONS_PATH": f"{self.collections}:{PROJECT / '.tools' / 'collections'}",
            "ANSIBLE_HOME": str(self.root / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.root / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "PATH": f"{BIN}:{PROJECT / '.tools' / 'bin'}:{os.environ['PATH']}",
            **more,
        }


def inventory(scope: str, workload: str = "orders-api", namespace: str = "orders", **host: Any) -> dict[str, Any]:
    return {
        "all": {
            "hosts": {
                CLUSTER: {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    "workload_identity_cluster_resource_group": CLUSTER_RG,
                    "workload_identity_identity_resource_group": IDENTITY_RG,
                    "workload_identity_location": "westeurope",
                    "workload_identity_webhook_mode": "addon",
                    "workload_identity_workloads": [
                        {
                            "name": workload,
                            "namespace": namespace,
                            "service_account": workload,
                            "roles": [{"role": "Storage Blob Data Contributor", "scope": scope}],
                            "controllers": [{"kind": "Deployment", "name": workload}],
                        }
                    ],
                    **host,
                }
            }
        }
    }


@pytest.fixture(scope="module")
def installed(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    box = kube_sandbox
    box.control.seed_cluster(CLUSTER_RG, CLUSTER, kube=True)
    box.resource_group(IDENTITY_RG)
    box.resource_group(DATA_RG)
    scope = f"{box.rg_id(DATA_RG)}/providers/Microsoft.Storage/storageAccounts/stinstall"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    # One workload for the tarball's run, another for the AWX project's (each test has its own work to do).
    apps = [("Deployment", "orders", "orders-api", "ghcr.io/contoso/orders-api:2.4.1"),
            ("Deployment", "billing", "billing-worker", "ghcr.io/contoso/billing-worker:1.9.0")]  # fmt: skip
    deploy_apps(box.state_dir, CLUSTER, apps)
    root = tmp_path_factory.mktemp("install")
    # The tarball from a copy of the tracked files, as a release job builds it from a clean checkout.
    source = root / "source"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (PROJECT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, source / name)
    built = root / "built"
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(built), str(source)],
        check=True,
        capture_output=True,
    )
    tarball = sorted(built.glob("workload_identity-aks-*.tar.gz"))[0]
    collections = root / "collections"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".tools" / "collections")}
    env.pop("ANSIBLE_GALAXY_SERVER_LIST", None)
    done = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections), str(tarball)],
        env={**env, "ANSIBLE_HOME": str(root / "galaxy-home")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # kubernetes.core was found where it was already installed: nothing was fetched.
    assert "kubernetes.core:6.2.0' is already installed" in done.stdout, done.stdout
    yield Installed(box, tarball, collections, scope, root)


def test_the_tarball_carries_what_users_run_and_none_of_the_test_tooling(installed: Installed) -> None:
    with tarfile.open(installed.tarball) as archive:
        names = set(archive.getnames())
    assert names >= SHIPPED, sorted(SHIPPED - names)
    assert not [n for n in names if n.startswith(LEFT_OUT)]
    collection = installed.collections / "ansible_collections" / "workload_identity" / "aks"
    manifest = json.loads((collection / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["dependencies"] == {"kubernetes.core": ">=6.2.0,<7.0.0"}


def test_installed_offline_it_runs_by_fqcn_from_a_project_and_reports_there(installed: Installed) -> None:
    project = installed.root / "project"
    project.mkdir()
    (project / "hosts.yml").write_text(
        yaml.safe_dump(inventory(installed.scope, workload_identity_kube_context=CLUSTER))
    )
    collection = installed.collections / "ansible_collections" / "workload_identity" / "aks"
    reports = project / "workload-identity-reports"
    before = sorted(p.relative_to(collection) for p in collection.rglob("*"))

    def run(*options: str, expect_ok: bool = True, extra: tuple[str, ...] = ()) -> Run:
        done = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "hosts.yml", "workload_identity.aks.site", *options, *extra],
            cwd=project,
            env=installed.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode == 0) == expect_ok, (done.stdout + done.stderr)[-6000:]
        return Run(CLUSTER, done.returncode, done.stdout + done.stderr, reports)

    # A report directory inside the installed collection is refused before anything is read or changed.
    inside = collection / "reports"
    refused = run(extra=("-e", f"workload_identity_report_dir={inside}"), expect_ok=False)
    assert "workload_identity_report_dir" in refused.output
    assert "inside an ansible_collections tree" in refused.output
    assert not list(installed.box.msi().user_assigned_identities.list_by_resource_group(IDENTITY_RG))

    plan = run("--check", "--diff")
    assert (reports / f"{CLUSTER}.plan.json").exists()
    shutil.rmtree(reports)
    rolled = run("--diff")
    assert rolled.changed > 0
    report = json.loads((reports / f"{CLUSTER}.json").read_text())
    assert [w["status"] for w in report["workloads"]] == ["created"]
    # The real run wrote its plan before its first change, and did what it planned.
    planned = json.loads((reports / f"{CLUSTER}.plan.json").read_text())
    assert [(w["name"], w["status"]) for w in planned["workloads"]] == [("orders-api", "created")]
    assert (reports / f"{CLUSTER}.plan.json").stat().st_mtime < (reports / f"{CLUSTER}.json").stat().st_mtime
    # The summary is plain lines, under the task's own name (no host's values in it).
    assert f"\n{CLUSTER}: webhook addon, issuer " in rolled.output
    assert "  orders-api [created] -> identity " in rolled.output
    assert "TASK [workload_identity.aks.workloads : Summary and reports (JSON and Markdown)]" in rolled.output
    assert "  orders-api [would be created] -> identity " in plan.output
    assert run().changed == 0
    # Nothing was written into the installed collection.
    assert sorted(p.relative_to(collection) for p in collection.rglob("*") if "__pycache__" not in p.parts) == [
        p for p in before if "__pycache__" not in p.parts
    ]


def bearer_token_credential(box: Sandbox, root: Path) -> dict[str, str]:
    """What AWX's "OpenShift or Kubernetes API Bearer Token" credential injects, for a service account made for AWX."""
    api = k8s_config.new_client_from_config(str(box.state_dir / "kubeconfig"), context=CLUSTER)
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    try:
        core.create_namespaced_service_account("kube-system", {"metadata": {"name": "awx"}})
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": "awx-cluster-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "awx", "namespace": "kube-system"}],
            }
        )
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise
    token = core.create_namespaced_service_account_token(
        "awx", "kube-system", k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[]))
    ).status.token
    config = yaml.safe_load((box.state_dir / "kubeconfig").read_text())
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == CLUSTER)
    ca = root / "awx-ca.crt"
    if "certificate-authority-data" in cluster:
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    else:
        shutil.copy(cluster["certificate-authority"], ca)
    return {
        "K8S_AUTH_HOST": cluster["server"],
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca),
    }


def test_the_awx_project_runs_through_ansible_runner_with_what_awx_injects(installed: Installed) -> None:
    sandbox = json.loads((installed.box.state_dir / "sandbox.json").read_text())
    # Exactly what AWX's Microsoft Azure Resource Manager credential injects, where the sandbox is ...
    azure = azure_rm_credential(sandbox)
    # ... and the bearer-token credential: one cluster, so the inventory names no context.
    kube = bearer_token_credential(installed.box, installed.root)
    secrets = [azure["AZURE_SECRET"], kube["K8S_AUTH_API_KEY"]]
    runner_dir = installed.root / "runner"
    awx_inventory = inventory(installed.scope, workload="billing-worker", namespace="billing")
    project = awx_project(runner_dir, {"dev": awx_inventory})
    env = installed.env()
    envvars = {
        **azure,
        "ANSIBLE_COLLECTIONS_PATH": env["ANSIBLE_COLLECTIONS_PATH"],
        "ANSIBLE_HOME": env["ANSIBLE_HOME"],
        "ANSIBLE_FORCE_COLOR": "0",
        **kube,
    }
    jobs = [("check", "--check --diff"), ("run", "--diff"), ("again", "--diff")]
    runs = run_jobs(runner_dir, project, "dev", envvars, env["PATH"], jobs)
    for run in runs:
        assert (run.status, run.rc) == ("successful", 0), run.stdout.read()[-6000:]
    check, real, again = runs
    # AWX's view of the job: per-host events with the task names as written, and the recap.
    events = list(real.events)
    names = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"}
    assert "Converge Azure (identities, federated credentials, role assignments)" in names, sorted(filter(None, names))
    assert real.stats["changed"].get(CLUSTER, 0) > 0
    assert again.stats["changed"].get(CLUSTER, 0) == 0
    assert check.stats["changed"].get(CLUSTER, 0) > 0
    # Reports in the job's working directory (the project), the plan from the Check job beside them.
    assert (project / "workload-identity-reports" / f"{CLUSTER}.json").exists()
    assert (project / "workload-identity-reports" / f"{CLUSTER}.plan.json").exists()
    # No secret anywhere runner recorded the jobs, but runner's own `command` file (which copies its environment).
    leaked = []
    for path in (runner_dir / "artifacts").rglob("*"):
        if path.is_file() and path.name != "command":
            text = path.read_text(errors="replace")
            leaked += [f"{path.relative_to(runner_dir)}" for secret in secrets if secret in text]
    for path in (project / "workload-identity-reports").rglob("*"):
        leaked += [f"{path.relative_to(runner_dir)}" for secret in secrets if secret in path.read_text()]
    assert not leaked, leaked


def test_ansible_builder_turns_the_ee_definition_into_a_context_with_everything(installed: Installed) -> None:
    definition = installed.root / "ee"
    shutil.copytree(PROJECT / "examples" / "execution-environment", definition)
    # As docs/awx.md says: the collection's tarball beside the definition (ansible-galaxy collection build).
    shutil.copy(installed.tarball, definition / installed.tarball.name)
    context = installed.root / "ee-context"
    done = subprocess.run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "-f",
            "execution-environment.yml",
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ],  # fmt: skip
        cwd=definition,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile  # collections' own requirements are gathered at build time
    requested = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    tarball = f"collections/{installed.tarball.name}"
    assert {c["name"] for c in requested["collections"]} == {tarball, "kubernetes.core"}
    # The tarball is in the build context, where the requirements name it (the build installs from /build).
    assert (context / "_build" / tarball).read_bytes() == installed.tarball.read_bytes()
    # What the build's introspection then finds in the collections it installed (here: the tarball, kubernetes.core):
    # this collection's Python packages, helm included, and system packages, beside kubernetes.core's.
    image = installed.root / "ee-collections" / "ansible_collections"
    image.mkdir(parents=True)
    (image / "workload_identity").symlink_to(installed.collections / "ansible_collections" / "workload_identity")
    (image / "kubernetes").symlink_to(PROJECT / ".tools" / "collections" / "ansible_collections" / "kubernetes")
    found = subprocess.run(
        [sys.executable, str(context / "_build" / "scripts" / "introspect.py"), "introspect", str(image.parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stdout + found.stderr
    gathered = yaml.safe_load(found.stdout)
    ours = [line.split("  #", 1)[0] for line in gathered["python"] if "workload_identity.aks" in line]
    assert [re.split(r"[<>=;\s]", line, maxsplit=1)[0] for line in ours] == [
        "azure-identity", "azure-mgmt-msi", "azure-mgmt-authorization", "azure-mgmt-containerservice", "kubernetes",
        "psycopg[binary]", "helm-binary",
    ]  # fmt: skip
    assert any(line.startswith("ca-certificates") and "workload_identity.aks" in line for line in gathered["system"])
    assert any("kubernetes.core" in line for line in gathered["python"])
