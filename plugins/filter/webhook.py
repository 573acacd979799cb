# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What installing the webhook chart would change, read from the Helm release as it is (no helm-diff plugin)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

TENANT = "azureTenantID"


def chart_changes(release: Any, chart: str, version: str | None, values: Any) -> list[str]:
    """Each change, as a person reads it: the chart's version, the webhook's tenant, and the names of the other values
    that change (their content is not shown: values can hold what should not be logged). Empty: nothing changes, or
    no release yet (then the install itself is the change)."""
    if not isinstance(release, Mapping) or not isinstance(values, Mapping):
        raise AnsibleFilterError("chart_changes expects the helm_info status and the wanted values, both mappings")
    if not release:
        return []
    installed = str(release.get("chart") or "")
    changes = []
    if version and not installed.endswith(f"-{version}"):
        name = chart.rstrip("/").rsplit("/", 1)[-1]
        changes.append(f"chart {installed or '(unknown)'} -> {name}-{version}")
    current = release.get("values") or {}
    if current.get(TENANT) != values.get(TENANT):
        changes.append(f"webhook tenant ({TENANT}) {current.get(TENANT) or '(unset)'} -> {values.get(TENANT)}")
    keys = sorted((set(current) | set(values)) - {TENANT})
    differing = [k for k in keys if current.get(k) != values.get(k)]
    if differing:
        changes.append(f"values {', '.join(differing)} change")
    return changes


def pod_client_ids(pods: Any) -> list[str]:
    """The client ids the webhook injected into these pods (``AZURE_CLIENT_ID`` of any container), each once."""
    if not isinstance(pods, list):
        raise AnsibleFilterError("pod_client_ids expects a list of pods (the resources of kubernetes.core.k8s_info)")
    found: dict[str, None] = {}
    for pod in pods:
        spec = (pod or {}).get("spec") or {}
        for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            for env in container.get("env") or []:
                if env.get("name") == "AZURE_CLIENT_ID" and env.get("value"):
                    found[str(env["value"])] = None
    return list(found)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"chart_changes": chart_changes, "pod_client_ids": pod_client_ids}
