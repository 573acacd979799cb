"""Running the collection's playbooks on one sandbox cluster, as an operator would: an inventory, a run, its report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import WorkloadIdentityCredential

from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.pods import injected, newest_pods, projected_token


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
    files: dict[str, str] | None = None,
    more_hosts: dict[str, dict[str, Any]] | None = None,
) -> Run:
    """One host (the cluster) with these variables, the playbook (a name under playbooks/ or a path), its output.

    ``files``: more of the inventory (``host_vars/<cluster>.yml``, say), by path under its folder; ``more_hosts``:
    other inventory hosts, with their variables.
    """
    folder.mkdir()
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    common = {"ansible_connection": "local", "workload_identity_report_dir": str(folder / "reports")}
    hosts = {cluster: {**common, **host_vars}, **{name: {**common, **v} for name, v in (more_hosts or {}).items()}}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
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


def kubectl(box: Sandbox, cluster: str, *args: str, stdin: str | None = None) -> None:
    """The real kubectl (from .tools) on the cluster's context of the sandbox's kubeconfig, as an operator runs it."""
    command = [str(PROJECT / ".tools" / "bin" / "kubectl"), "--kubeconfig", str(box.state_dir / "kubeconfig")]
    subprocess.run(
        [*command, "--context", cluster, *args], check=True, capture_output=True, timeout=60, input=stdin, text=True
    )


def write_requests(box: Sandbox) -> list[str]:
    """The sandbox operations that wrote to Azure or Graph since its stats were last reset."""
    return [
        op
        for op in box.control.stats()["operations"]
        if op.rsplit(".", 1)[-1].lower() in ("put", "post", "patch", "delete") and not op.startswith("sandbox.")
    ]


def pod_signs_in(box: Sandbox, core: Any, apps: Any, namespace: str, deployment: str) -> str:
    """The deployment's newest pod signs in as itself: its projected token (requested as the kubelet would), as the
    webhook injected it, exchanged at Entra. "ok", or what Entra said."""
    pod = newest_pods(core, apps, namespace, deployment)[0]
    mark = injected(pod)
    with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as handle:
        handle.write(projected_token(core, pod))
    try:
        credential = WorkloadIdentityCredential(
            tenant_id=mark.env["AZURE_TENANT_ID"],
            client_id=mark.env["AZURE_CLIENT_ID"],
            token_file_path=handle.name,
            authority=mark.env["AZURE_AUTHORITY_HOST"],
            connection_verify=box.ca,
        )
        credential.get_token(box.url + "/.default")
        return "ok"
    except ClientAuthenticationError as exc:
        return str(exc)[:200]
    finally:
        os.unlink(handle.name)
