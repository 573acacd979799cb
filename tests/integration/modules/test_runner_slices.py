"""A fleet run the way AWX runs a sliced job: each slice streamed with ``ansible-runner transmit``, run by its own
``ansible-runner worker`` (an execution node: its own private data directory and its own temp directory, so the
controller-local lock of ``_lock.py`` is not shared) and read back with ``ansible-runner process``; the slices at
once, on an inventory whose clusters share one identity. Each slice's inventory holds its own hosts only, as AWX
gives a slice.

Asserted: claims made at the same moment from two workers all stay; a second run changes nothing; clusters letting
go at the same moment from two workers leave neither a stale claim nor the identity, and no worker fails. The
sandbox holds each fresh read of the identity a few seconds (as a slow network would) so that the slices really
overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, auth

IDENTITY = "id-fleet-shared"
PLAYBOOK = [
    {
        "name": "The fleet's clusters",
        "hosts": "all",
        "connection": "local",
        "gather_facts": False,
        "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
        "tasks": [
            {
                "name": "Converge the cluster's workload identities",
                "workload_identity.aks.workload_identities": {
                    "cluster_name": "{{ inventory_hostname }}",
                    "cluster_resource_group": "rg-{{ inventory_hostname }}",
                    "issuer_url": "https://issuer.example/{{ inventory_hostname }}/",
                    "location": "westeurope",
                    "identity_resource_group": RESOURCE_GROUP,
                    "state": "{{ fleet_state }}",
                    "workloads": "{{ workload_identity_workloads }}",
                    "shared_with": "{{ hostvars | workload_identity.aks.identity_peers(groups['all'], "
                    "ansible_play_hosts_all, inventory_hostname) }}",
                },
            }
        ],
    }
]
WORKLOADS = [
    {
        "name": "orders",
        "namespace": "orders",
        "service_account": "api",
        "identity_name": IDENTITY,
        "identity_resource_group": RESOURCE_GROUP,
        "roles": [],
    }
]


class Slices:
    """Sliced jobs of one playbook through runner's transmit | worker | process, each slice on its own 'node'."""

    def __init__(self, sandbox: Sandbox, collections: str, root: Path) -> None:
        self.sandbox, self.collections, self.root = sandbox, collections, root
        self.jobs = 0

    def run(self, slices: list[list[str]], state: str = "present") -> list[dict[str, Any]]:
        """Each slice (its hosts) a job at once; per slice: its rc, its hosts' changed counts and its node's temp."""
        self.jobs += 1
        started = [self._start(f"job{self.jobs}-slice{n}", hosts, state) for n, hosts in enumerate(slices, 1)]
        results = []
        for process, controller, ident, node_tmp in started:
            output = process.communicate(timeout=600)[0]
            stats = _stats(controller / "artifacts" / ident)
            results.append({"rc": process.returncode, "output": output, "changed": stats, "tmp": node_tmp})
            assert process.returncode == 0 and (controller / "artifacts" / ident / "rc").read_text() == "0", output
        return results

    def _start(self, ident: str, hosts: list[str], state: str) -> tuple[subprocess.Popen[str], Path, str, Path]:
        job = self.root / ident
        sent, node, controller, node_tmp = (job / d for d in ("sent", "node", "controller", "node-tmp"))
        for folder in (sent / "project", sent / "inventory", sent / "env", controller, node_tmp):
            folder.mkdir(parents=True)
        (sent / "project" / "fleet.yml").write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
        inventory = {"all": {"hosts": {h: {"workload_identity_workloads": WORKLOADS} for h in hosts}}}
        (sent / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
        (sent / "env" / "extravars").write_text(
            yaml.safe_dump({"azure_auth": auth(self.sandbox), "fleet_state": state})
        )
        (sent / "env" / "envvars").write_text(
            yaml.safe_dump(
                {
                    "ANSIBLE_COLLECTIONS_PATH": self.collections,
                    "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                    "ANSIBLE_NOCOLOR": "1",
                }
            )
        )
        runner = str(Path(sys.executable).parent / "ansible-runner")
        bin_dir = str(Path(sys.executable).parent)
        # The node's own environment: its temp directory, and ansible-playbook on its PATH (the execution
        # environment's); nothing of this session's Azure variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "REQUESTS_CA"))}
        env.update({"TMPDIR": str(node_tmp), "PATH": f"{bin_dir}:{env.get('PATH', '')}"})
        pipeline = (
            f"{runner} transmit {sent} -p fleet.yml --ident {ident}"
            f" | {runner} worker --private-data-dir {node}"
            f" | {runner} process {controller} --ident {ident}"
        )
        process = subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", pipeline],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return process, controller, ident, node_tmp


def _stats(artifacts: Path) -> dict[str, int]:
    """The play's recap as runner's process recorded it: host -> changed tasks."""
    for event in sorted((artifacts / "job_events").glob("*.json")):
        data = json.loads(event.read_text())
        if data.get("event") == "playbook_on_stats":
            changed = data["event_data"].get("changed") or {}
            hosts = set(data["event_data"].get("ok") or {}) | set(changed)
            return {host: int(changed.get(host, 0)) for host in hosts}
    raise AssertionError(f"no recap in {artifacts}")


def claims(sandbox: Sandbox) -> list[str] | None:
    identities = sandbox.msi().user_assigned_identities
    found = next((i for i in identities.list_by_resource_group(RESOURCE_GROUP) if i.name == IDENTITY), None)
    return None if found is None else sorted(k for k in (found.tags or {}) if k.startswith("wi-uses:"))


def held(sandbox: Sandbox, reads: int) -> None:
    """The next ``reads`` fresh reads of an identity answered 6 s late: the slices read before either writes."""
    sandbox.control.reset_stats()
    sandbox.control.add_fault(operation="userAssignedIdentities.get", status=None, delay_after=6, count=reads)


def test_sliced_jobs_on_two_nodes_claim_and_let_go_of_one_identity_at_once(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    slices = Slices(sandbox, collections, tmp_path)
    slices.run([["aks-fleet-a"]])
    assert claims(sandbox) == ["wi-uses:aks-fleet-a"]

    held(sandbox, 2)
    try:
        claimed = slices.run([["aks-fleet-b"], ["aks-fleet-c"]])
    finally:
        sandbox.control.clear_faults()
    assert sandbox.control.stats()["operations"]["userAssignedIdentities.get"]["total"] >= 2
    assert claims(sandbox) == ["wi-uses:aks-fleet-a", "wi-uses:aks-fleet-b", "wi-uses:aks-fleet-c"]
    assert [r["changed"] for r in claimed] == [{"aks-fleet-b": 1}, {"aks-fleet-c": 1}]
    # Each node kept its lock in its own temp directory: nothing serialised the two but ARM.
    assert all((r["tmp"] / "workload_identity_aks-locks").is_dir() for r in claimed)

    again = slices.run([["aks-fleet-a", "aks-fleet-b"], ["aks-fleet-c"]])
    assert [r["changed"] for r in again] == [{"aks-fleet-a": 0, "aks-fleet-b": 0}, {"aks-fleet-c": 0}]

    # Two let go at once (each reads the other's claim, then deletes its own): a's claim alone is left.
    held(sandbox, 2)
    try:
        slices.run([["aks-fleet-b"], ["aks-fleet-c"]], state="absent")
    finally:
        sandbox.control.clear_faults()
    assert claims(sandbox) == ["wi-uses:aks-fleet-a"]
    credentials = sandbox.msi().federated_identity_credentials.list(RESOURCE_GROUP, IDENTITY)
    assert [c.issuer for c in credentials] == ["https://issuer.example/aks-fleet-a/"]

    # The last two at once: b claims again while a lets go; then a and b let go together, and the last one deletes.
    slices.run([["aks-fleet-b"]])
    held(sandbox, 2)
    try:
        slices.run([["aks-fleet-a"], ["aks-fleet-b"]], state="absent")
    finally:
        sandbox.control.clear_faults()
    assert claims(sandbox) is None  # deleted by whichever let go last, with no claim or credential left behind
    assert [r["changed"] for r in slices.run([["aks-fleet-a"], ["aks-fleet-b"]], state="absent")] == [
        {"aks-fleet-a": 0},
        {"aks-fleet-b": 0},
    ]
