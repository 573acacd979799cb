"""Running the collection's playbooks on one sandbox cluster, as an operator would: an inventory, a run, its report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.integration.sandbox_helpers import PROJECT


@dataclass
class Run:
    cluster: str
    returncode: int
    output: str
    report_dir: Path

    @property
    def changed(self) -> int:
        found = re.search(rf"^{self.cluster}\s+: ok=\d+\s+changed=(\d+)", self.output, re.M)
        assert found, self.output[-3000:]
        return int(found.group(1))

    def report(self, plan: bool = False) -> dict[str, Any]:
        return dict(json.loads((self.report_dir / f"{self.cluster}{'.plan' if plan else ''}.json").read_text()))


def cluster_host(
    cluster: str, cluster_rg: str, identity_rg: str, workloads: list[dict[str, Any]], **more: Any
) -> dict[str, Any]:
    """An inventory host for one sandbox cluster in addon mode (its kube context named as the cluster)."""
    return {
        "workload_identity_cluster_resource_group": cluster_rg,
        "workload_identity_identity_resource_group": identity_rg,
        "workload_identity_location": "westeurope",
        "workload_identity_webhook_mode": "addon",
        "workload_identity_kube_context": cluster,
        "workload_identity_workloads": workloads,
        **more,
    }


def run_playbook(
    folder: Path,
    cluster: str,
    host_vars: dict[str, Any],
    env: dict[str, str],
    playbook: str | Path = "site.yml",
    options: tuple[str, ...] = (),
    expect_ok: bool = True,
) -> Run:
    """One host (the cluster) with these variables, the playbook (a name under playbooks/ or a path), its output."""
    folder.mkdir()
    host = {"ansible_connection": "local", "workload_identity_report_dir": str(folder / "reports"), **host_vars}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {cluster: host}}}))
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(folder / "hosts.yml"),
            str(playbook if isinstance(playbook, Path) else PROJECT / "playbooks" / playbook),
            *options,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    (folder / "output.txt").write_text(output)
    if expect_ok:
        assert done.returncode == 0, output[-8000:]
    return Run(cluster, done.returncode, output, folder / "reports")
