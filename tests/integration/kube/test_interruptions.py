"""The kill matrix: a rollout killed at any point converges on the next run, with no duplicate and no orphan.

Each point kills ``ansible-playbook`` (SIGKILL to its process group, as a lost AWX node would) at one moment of a
real run on a sandbox cluster: while Azure holds its answer to a write it has already applied (the worst case:
done, but the client never heard), or right after a Kubernetes write or the report. The next run must succeed, and
the estate then holds exactly what the inventory declares: one identity per workload (no orphan), one credential per
subject, one assignment per principal, role and scope, each ServiceAccount bound to its identity. A final run
reports ``changed=0``. Graph's writes (an app registration, its service principal, its credential) are points too.
CI runs the extremes (6 points; the others are reported as skipped, saying how to run them);
``WORKLOAD_IDENTITY_FULL_MATRICES=1`` (``make test-full``) runs all 11.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import cluster_host, run_playbook, write_requests
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.demo import ansible_env, deploy_apps, ensure_resource_chain

CLUSTER, CLUSTER_RG, IDENTITY_RG = "aks-kill", "rg-aks-kill", "rg-kill-ids"
# Every kill point (make test-full); CI runs the extremes of the matrix, which takes minutes whole.
FULL = os.environ.get("WORKLOAD_IDENTITY_FULL_MATRICES") == "1"
NAMESPACE = "kill"


class Estate:
    def __init__(self, box: Sandbox, root: Path, scope: str) -> None:
        self.box, self.root, self.scope = box, root, scope
        sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
        self.env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
        api = k8s_config.new_client_from_config(str(box.state_dir / "kubeconfig"), context=CLUSTER)
        self.core, self.apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        self.declared: list[dict[str, Any]] = []
        self.runs = 0

    def add_workload(self, application: bool = False) -> str:
        """One more workload (a managed identity, or an app registration) with its Deployment."""
        name = f"w{len(self.declared)}"
        deploy_apps(self.box.state_dir, CLUSTER, [("Deployment", NAMESPACE, name, "ghcr.io/contoso/app:1.0.0")])
        self.declared.append(
            {
                "name": name,
                "namespace": NAMESPACE,
                "service_account": name,
                "roles": [{"role": "Reader", "scope": self.scope}],
                "controllers": [{"kind": "Deployment", "name": name}],
                **({"identity_type": "application"} if application else {}),
            }
        )
        return name

    def folder(self) -> Path:
        self.runs += 1
        return self.root / f"run-{self.runs}"

    def host(self) -> dict[str, Any]:
        return cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, self.declared, workload_identity_prune=True)

    def start(self) -> tuple[subprocess.Popen[bytes], Path]:
        """A site.yml run in the background, in a process group of its own; its folder (output.txt, reports)."""
        folder = self.folder()
        folder.mkdir()
        host = {"ansible_connection": "local", "workload_identity_report_dir": str(folder / "reports"), **self.host()}
        (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {CLUSTER: host}}}))
        command = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(folder / "hosts.yml"),
            str(PROJECT / "playbooks" / "site.yml"),
        ]
        with (folder / "output.txt").open("w") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return process, folder

    def killed_run(self, when: Callable[[], bool]) -> None:
        """A site.yml run, killed (its whole process group) as soon as ``when`` holds; it must not finish first."""
        process, folder = self.start()
        deadline = time.monotonic() + 300
        try:
            while not when():
                assert process.poll() is None, (folder / "output.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "the kill point was never reached"
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def recover(self) -> int:
        """The next run, as an operator would start it: it must succeed; how many tasks changed."""
        return run_playbook(self.folder(), CLUSTER, self.host(), self.env).changed

    # -- what is there -----------------------------------------------------------------------------
    def audit(self) -> None:
        msi, authz = self.box.msi(), self.box.authz()
        ours = {
            i.name: i
            for i in msi.user_assigned_identities.list_by_resource_group(IDENTITY_RG)
            if (i.tags or {}).get("wi-cluster") == CLUSTER
        }
        applications = [w for w in self.declared if w.get("identity_type") == "application"]
        identities = [w for w in self.declared if w not in applications]
        assert sorted(ours) == sorted(f"id-{CLUSTER}-{NAMESPACE}-{w['name']}" for w in identities)  # no orphan
        apps = self.box.graph("GET", f"/applications?$filter=startswith(displayName,'wi-{CLUSTER}-')").json()["value"]
        assert sorted(a["uniqueName"] for a in apps) == sorted(  # no orphan, no duplicate application
            f"wi-{CLUSTER}-{NAMESPACE}-{w['name']}" for w in applications
        )
        by_unique_name = {a["uniqueName"]: a for a in apps}
        for workload in self.declared:
            subject = f"system:serviceaccount:{NAMESPACE}:{workload['name']}"
            if workload in applications:
                app = by_unique_name[f"wi-{CLUSTER}-{NAMESPACE}-{workload['name']}"]
                principals = self.box.graph("GET", f"/servicePrincipals?$filter=appId eq '{app['appId']}'").json()[
                    "value"
                ]
                assert len(principals) == 1, principals
                fics = self.box.graph("GET", f"/applications/{app['id']}/federatedIdentityCredentials").json()["value"]
                assert [f["subject"] for f in fics] == [subject]
                client_id, principal_id = app["appId"], principals[0]["id"]
            else:
                identity = ours[f"id-{CLUSTER}-{NAMESPACE}-{workload['name']}"]
                fics = list(msi.federated_identity_credentials.list(IDENTITY_RG, identity.name))
                assert [f.subject for f in fics] == [subject]
                client_id, principal_id = identity.client_id, identity.principal_id
            listed = authz.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'")
            pairs = sorted((a.role_definition_id.rsplit("/", 1)[1], a.scope.lower()) for a in listed)
            assert len(pairs) == len(set(pairs)) == len(workload["roles"]), pairs  # no duplicate, none left over
            account = self.core.read_namespaced_service_account(workload["name"], NAMESPACE)
            assert account.metadata.annotations["azure.workload.identity/client-id"] == client_id

    def wrote(self, operation: str) -> Callable[[], bool]:
        """True once the sandbox has applied (and is holding its answer to) this write."""
        self.box.control.add_fault(operation=operation, status=None, delay_after=3, count=1)
        self.box.control.reset_stats()
        return lambda: self.box.control.stats()["operations"].get(operation, {}).get("total", 0) >= 1

    def wrote_graph(self, operation: str, path: str) -> Callable[[], bool]:
        """True once Graph has this PATCH (an upsert) in hand: it applies it, then holds its answer 3 s."""
        fault = {"operation": operation, "method": "PATCH", "path": path, "status": None, "delay_after": 3}
        self.box.control.add_fault(**fault, count=1)
        return lambda: not self.box.control.call("GET", "/_sandbox/faults")["faults"]

    def account_exists(self, name: str) -> Callable[[], bool]:
        def check() -> bool:
            return any(a.metadata.name == name for a in self.core.list_namespaced_service_account(NAMESPACE).items)

        return check

    def deployment_bound(self, name: str) -> Callable[[], bool]:
        def check() -> bool:
            labels = self.apps.read_namespaced_deployment(name, NAMESPACE).spec.template.metadata.labels or {}
            return labels.get("azure.workload.identity/use") == "true"

        return check


@pytest.fixture(scope="module")
def estate(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    box = kube_sandbox
    box.control.seed_cluster(CLUSTER_RG, CLUSTER, kube=True)
    box.resource_group(IDENTITY_RG)
    scope = f"{box.resource_group('rg-kill-data')}/providers/Microsoft.Storage/storageAccounts/stkill"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    made = Estate(box, tmp_path_factory.mktemp("kill"), scope)
    yield made
    box.control.clear_faults()


# (what was written when the run is killed, whether the workload left to do is an app registration, when)
POINTS: list[tuple[str, bool, Callable[[Estate], Callable[[], bool]]]] = [
    ("the issuer update sent", False, lambda e: e.wrote("managedClusters.put")),
    ("an identity created", False, lambda e: e.wrote("userAssignedIdentities.put")),
    ("a federated credential written", False, lambda e: e.wrote("federatedIdentityCredentials.put")),
    ("a role assignment written", False, lambda e: e.wrote("roleAssignments.put")),
    ("an application created", True, lambda e: e.wrote_graph("graph.applications", r"\(uniqueName=")),
    ("a service principal created", True, lambda e: e.wrote_graph("graph.servicePrincipals", r"\(appId=")),
    (
        "an application's credential written",
        True,
        lambda e: e.wrote_graph("graph.applications", "federatedIdentityCredentials"),
    ),
    ("a ServiceAccount created", False, lambda e: e.account_exists(e.declared[-1]["name"])),
    ("a controller bound", False, lambda e: e.deployment_bound(e.declared[-1]["name"])),
    (
        "the report written",
        False,
        lambda e: lambda: any((e.root / f"run-{e.runs}").rglob(f"{CLUSTER}.json")),
    ),
]
# CI runs the extremes: the first Azure and Graph writes, the last Kubernetes one, the report (and the prune below).
CI_POINTS = {
    "the issuer update sent",
    "a role assignment written",
    "an application created",
    "a controller bound",
    "the report written",
}
NOT_IN_CI = "not one of CI's extremes: WORKLOAD_IDENTITY_FULL_MATRICES=1 (make test-full) runs it"


@pytest.mark.parametrize(("label", "application", "point"), POINTS, ids=[p[0] for p in POINTS])
def test_a_run_killed_at_this_point_converges_on_the_next_with_no_duplicate_and_no_orphan(
    estate: Estate, label: str, application: bool, point: Callable[[Estate], Callable[[], bool]]
) -> None:
    if not FULL and label not in CI_POINTS:
        pytest.skip(NOT_IN_CI)
    estate.add_workload(application)  # something left to do at that point
    when = point(estate)
    estate.killed_run(when)
    estate.box.control.clear_faults()
    estate.recover()
    estate.audit()


def test_a_prune_killed_while_it_deletes_an_assignment_converges_on_the_next(estate: Estate) -> None:
    estate.declared[0]["roles"] = []
    estate.killed_run(estate.wrote("roleAssignments.delete"))
    estate.box.control.clear_faults()
    estate.recover()
    estate.audit()
    assert estate.recover() == 0


def test_two_runs_at_once_on_one_inventory_leave_no_duplicate(estate: Estate) -> None:
    """Two operators (or two AWX jobs) start the same rollout at the same moment: no duplicate, nothing torn."""
    for _count in range(3):
        estate.add_workload()
    started = [estate.start(), estate.start()]
    processes, folders = [p for p, _f in started], [f for _p, f in started]
    codes = [p.wait(timeout=600) for p in processes]
    outputs = [(f / "output.txt").read_text() for f in folders]
    assert codes == [0, 0], [o[-3000:] for o in outputs]
    estate.audit()
    assert estate.recover() == 0


def test_a_stopped_api_server_fails_the_run_with_a_message_and_the_next_run_converges(estate: Estate) -> None:
    """kube-apiserver stopped (SIGSTOP: it accepts connections and never answers, as a hung control plane does) from
    the start of a run: the run fails on its own, naming the cluster and what it waited for, with Azure untouched;
    once it answers again, the next run converges. Meanwhile the run prints what it still retries. The retry budget
    is made short so that the test does not wait out the default one; the bound itself is each request's read
    timeout plus the budget."""
    estate.add_workload()
    running = estate.box.control.call("GET", "/_sandbox/health")["kube"]
    pid = next(p for key, p in running.items() if CLUSTER in key and key.endswith("/kube-apiserver"))
    estate.env["WORKLOAD_IDENTITY_RETRY_BUDGET"] = "40"
    estate.box.control.reset_stats()
    os.kill(pid, signal.SIGSTOP)
    try:
        process, folder = estate.start()
        code = process.wait(timeout=900)  # a guard against a hang, not a timing assertion
    finally:
        os.kill(pid, signal.SIGCONT)
        del estate.env["WORKLOAD_IDENTITY_RETRY_BUDGET"]
    output = " ".join((folder / "output.txt").read_text().split())
    assert code != 0, output[-3000:]
    assert f"cluster {CLUSTER}" in output or f"[{CLUSTER}]" in output, output[-3000:]
    assert "the API server did not answer within" in output, output[-3000:]
    # While it waited, the run said so: what it retries, for how long so far, and the bound.
    assert f"{CLUSTER}: still retrying read namespace {NAMESPACE}: ConnectionError (attempt" in output, output[-3000:]
    assert "s retry budget; next in" in output
    assert "Traceback" not in output
    assert write_requests(estate.box) == []
    estate.recover()
    estate.audit()
