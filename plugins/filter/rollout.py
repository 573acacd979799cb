# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's report: what each workload of a cluster got, as data, as Markdown and as lines to print.

The report is one contract (``module_utils/_report.py``, with a ``schema_version``), built there from the two batch
results; these filters hand it over and format it.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.module_utils._report import (
    ReportError,
    RolloutReport,
    merge_plan_rows,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._report import rollout_report as build_report
from ansible_collections.workload_identity.aks.plugins.module_utils._report_text import rollout_lines, rollout_markdown
from ansible_collections.workload_identity.aks.plugins.module_utils._results import (
    AzureBatchResult,
    KubeBatchResult,
    kube_identities,
)

# What a plan row may say and still change nothing (a controller "missing" is reported, never made).
UNCHANGED_KUBE_ACTIONS = ("unchanged", "kept", "missing")


def plan_changes_nothing(azure: AzureBatchResult, kube: KubeBatchResult | None = None) -> bool:
    """Whether a plan (both batch modules in check mode) would change nothing at all: no workload changed on either
    side, nothing pruned or released, no orphaned assignment deleted. A plan that failed changes "something".
    Without ``kube``, the Kubernetes side's plan is the one the Azure side's made (``plan_kubernetes``)."""
    if kube is None and isinstance(azure, dict):
        kube = azure.get("kubernetes")
    if not isinstance(azure, dict) or "workloads" not in azure or not isinstance(kube, dict):
        return False
    if any(item.get("changed") for item in azure["workloads"]):
        return False
    if any(entries for entries in (azure.get("pruned") or {}).values()):
        return False
    if any(row.get("action") != "reported" for row in azure.get("orphaned_assignments") or []):
        return False
    if "service_accounts" not in kube:
        return False
    rows = [*(kube.get("namespaces") or []), *kube["service_accounts"], *(kube.get("controllers") or [])]
    return all(row.get("action") in UNCHANGED_KUBE_ACTIONS for row in rows)


def plan_unchanged(azure: AzureBatchResult) -> list[str]:
    """The managed-identity workloads a plan (workload_identities in check mode) found unchanged, for the converge to
    take as they are (its ``planned_unchanged``); none when the plan prunes, releases or reports anything beyond the
    workloads (then the converge reads every workload again)."""
    if not isinstance(azure, dict) or "workloads" not in azure:
        return []
    if any(entries for entries in (azure.get("pruned") or {}).values()) or azure.get("orphaned_assignments"):
        return []
    return [
        str(row["name"])
        for row in azure["workloads"]
        if not row.get("changed") and (row.get("identity") or {}).get("kind") != "application"
    ]


def client_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of workload_identities as the Kubernetes side needs them: each workload's name, and its identity's
    client and tenant ids (what service_accounts annotates), not the whole identity, credentials and grants."""
    if not isinstance(rows, list):
        raise AnsibleFilterError("client_ids expects the workloads of workload_identities' result")
    return kube_identities({"workloads": rows})


def with_plan_rows(converged: AzureBatchResult, planned: AzureBatchResult) -> AzureBatchResult:
    """The converge's result with the plan's rows (and diff) for the workloads it took from the plan (its
    ``reused``), in the list's order: what the Kubernetes side binds and the report shows."""
    try:
        return merge_plan_rows(converged, planned)
    except ReportError as exc:
        raise AnsibleFilterError(f"with_plan_rows: {exc}") from exc


def rollout_report(azure: AzureBatchResult, kube: KubeBatchResult | None = None, **options: Any) -> RolloutReport:
    """The report (``_report.RolloutReport``): the Azure side (workload_identities) and the Kubernetes side
    (service_accounts) joined per workload, built in module_utils (its options: cluster, webhook_mode, issuer_url,
    check_mode, replaced_removed, webhook_tenant); the other filters only format it."""
    if not isinstance(azure, dict) or "workloads" not in azure:
        raise AnsibleFilterError("rollout_report expects the registered result of workload_identities")
    try:
        return build_report(azure, kube, **options)
    except ReportError as exc:
        raise AnsibleFilterError(f"rollout_report: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "rollout_report": rollout_report,
            "plan_changes_nothing": plan_changes_nothing,
            "plan_unchanged": plan_unchanged,
            "client_ids": client_ids,
            "with_plan_rows": with_plan_rows,
            "rollout_lines": rollout_lines,
            "rollout_markdown": rollout_markdown,
        }
