"""A benchmark estate: one AKS cluster (its own API server) running N applications, and the inventory for it.

Every application is a Deployment on its namespace's default service account, as a team deployed it before
workload identity; each workload is granted Reader on the data resource group (one role, as the peer does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox.demo import deploy_apps

NAMESPACES = 10


def workload(index: int, data_scope: str) -> dict[str, Any]:
    name = f"svc-{index:04d}"
    return {
        "name": name,
        "namespace": f"team-{index % NAMESPACES}",
        "service_account": name,
        "roles": [{"role": "Reader", "scope": data_scope}],
        "controllers": [{"kind": "Deployment", "name": name}],
    }


class Estate:
    """Cluster ``name`` in ``rg-<name>``, identities in ``rg-id-<name>``, N applications deployed."""

    def __init__(self, box: Sandbox, name: str, size: int, data_group: str, issuer_on: bool = False) -> None:
        self.box, self.name, self.size = box, name, size
        self.cluster_group, self.identity_group = f"rg-{name}", f"rg-id-{name}"
        self.cluster = box.control.seed_cluster(self.cluster_group, name, kube=True, oidc_issuer_enabled=issuer_on)
        box.resource_group(self.identity_group)
        self.data_scope = box.rg_id(data_group)
        self.workloads = [workload(i, self.data_scope) for i in range(size)]
        self._deploy()

    def _deploy(self) -> None:
        apps = [("Deployment", w["namespace"], w["name"], "ghcr.io/contoso/app:1.0.0") for w in self.workloads]
        deploy_apps(self.box.state_dir, self.name, apps, replicas=1)

    def host_vars(self, report_dir: Path) -> dict[str, Any]:
        return {
            "ansible_connection": "local",
            "workload_identity_cluster_resource_group": self.cluster_group,
            "workload_identity_identity_resource_group": self.identity_group,
            "workload_identity_location": "westeurope",
            "workload_identity_webhook_mode": "addon",
            "workload_identity_kube_context": self.name,
            "workload_identity_prune": True,
            "workload_identity_report_dir": str(report_dir),
            "workload_identity_workloads": self.workloads,
        }

    def write_inventory(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        hosts = folder / "hosts.yml"
        hosts.write_text(
            yaml.safe_dump({"all": {"hosts": {self.name: self.host_vars(folder / "reports")}}}, sort_keys=False)
        )
        return hosts

    def change_one(self) -> None:
        """Day two: one workload of the estate is also granted AcrPull (one role assignment to add)."""
        self.workloads[0] = {
            **self.workloads[0],
            "roles": [*self.workloads[0]["roles"], {"role": "AcrPull", "scope": self.data_scope}],
        }

    @property
    def audit_log(self) -> Path:
        return self.box.state_dir / "kube" / self.name / "audit.log"
