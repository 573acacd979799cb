# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's report, built from the batch modules' registered results, printed and written in one task.

The results are named, not templated into the task: Ansible copies a value templated into a task's arguments (or
returned as a fact) through its lazy containers, node by node, and 200 workloads' rows cost 0.3-0.7 s a copy, where
building, printing and writing the report from the results as registered costs 0.03 s. So this task takes the
variables' names and reads them as they were registered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.workload_identity.aks.plugins.module_utils._report import (
    ReportError,
    merge_plan_rows,
    rollout_report,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._report_text import (
    rollout_lines,
    rollout_markdown,
)
from ansible_collections.workload_identity.aks.plugins.plugin_utils.report_files import write_files

display = Display()

STAGES = ("plan", "result")


class ActionModule(ActionBase):
    """Runs on the controller only: nothing is sent to a host, and no module process is started."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "dir",
            "stage",
            "planned",
            "converged",
            "cluster",
            "webhook_mode",
            "issuer_url",
            "webhook_tenant",
            "replaced_removed",
        )
    )
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        task_vars = task_vars or {}
        stage = args.get("stage", "result")
        if stage not in STAGES:
            raise AnsibleActionFail(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
        cluster = args.get("cluster")
        if not isinstance(cluster, str) or not cluster:
            raise AnsibleActionFail("cluster: the cluster's name is required (the reports' file names)")
        planned_azure, planned_kube = _results(args, "planned", task_vars, required=True)
        converged_azure, converged_kube = _results(args, "converged", task_vars, required=False)
        options = {
            "cluster": cluster,
            "webhook_mode": str(args.get("webhook_mode") or ""),
            "issuer_url": args.get("issuer_url") or None,
            "webhook_tenant": args.get("webhook_tenant") or None,
            "replaced_removed": _strings(args.get("replaced_removed"), "replaced_removed"),
        }
        check_mode = bool(self._task.check_mode)
        try:
            if converged_azure is not None and stage == "result":
                azure = merge_plan_rows(converged_azure, planned_azure)
                report = rollout_report(azure, converged_kube, check_mode=check_mode, **options)
                reports = {f"{cluster}.plan" if check_mode else cluster: report}
            else:
                reports = {f"{cluster}.plan": rollout_report(planned_azure, planned_kube, check_mode=True, **options)}
                if stage == "result" and not check_mode:
                    # Nothing was converged: the plan changed nothing, and its reads are the run's result. The plan's
                    # own files were not written before the (no) changes, so they are written here too.
                    run = rollout_report(planned_azure, planned_kube, check_mode=False, **options)
                    reports = {cluster: run, **reports}
        except ReportError as exc:
            raise AnsibleActionFail(f"rollout_report: {exc}") from exc
        files = []
        for name, report in reports.items():
            files.append({"name": f"{name}.json", "content": json.dumps(report, indent=4, sort_keys=True) + "\n"})
            files.append({"name": f"{name}.md", "content": rollout_markdown(report)})
        written = write_files(args.get("dir"), files)
        shown = next(iter(reports.values()))
        if stage == "result":
            # One call, so the lines of two clusters reported at once never interleave (as the summary action).
            display.display("\n".join(rollout_lines(shown)))
        result.update(changed=False, written=written, counts=shown["counts"], check_mode=shown["check_mode"])
        return result


def _results(
    args: Mapping[str, Any], option: str, task_vars: Mapping[str, Any], required: bool
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """The registered results that ``option`` names (``{azure: <variable>, kube: <variable>}``), as registered.
    Without ``kube``, the Kubernetes side is the one the Azure side's plan made with it (``plan_kubernetes``).

    A converge that was skipped (nothing to change, or check mode) registered a result without rows: then there is
    none, and the plan is the answer."""
    names = args.get(option)
    if names is None and not required:
        return None, None
    if not isinstance(names, Mapping) or not isinstance(names.get("azure"), str) or set(names) - {"azure", "kube"}:
        raise AnsibleActionFail(
            f"{option}: the names of the registered results, {{azure: <workload_identities'>, kube: "
            "<service_accounts'>}, are required"
        )
    azure = task_vars.get(names["azure"])
    kube = task_vars.get(names["kube"]) if isinstance(names.get("kube"), str) else None
    if kube is None and isinstance(azure, Mapping):
        kube = azure.get("kubernetes")  # a plan of both sides (workload_identities' plan_kubernetes)
    if not isinstance(azure, Mapping) or "workloads" not in azure:
        if required:
            raise AnsibleActionFail(
                f"{option}.azure: {names['azure']} is not a registered result of workload_identities (no workloads)"
            )
        return None, None
    if kube is not None and (not isinstance(kube, Mapping) or "service_accounts" not in kube):
        kube = None
    return azure, kube


def _strings(value: Any, option: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AnsibleActionFail(f"{option}: a list of names is required")
    return list(value)
