"""The rollout_report action: the report built from the results as registered (read by name), printed and written.

The golden files of ``tests/unit/fixtures/reports`` are what the filters render from the same estate: the action
writes the same bytes, in each of the stages a run goes through (the plan before changes, a run, a run that changed
nothing, check mode).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.workload_identity.aks.plugins.action import rollout_report as action_module
from ansible_collections.workload_identity.aks.plugins.action.rollout_report import ActionModule

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "reports"
ESTATE: dict[str, Any] = json.loads((GOLDEN / "estate.json").read_text())
SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}


def run(args: dict[str, Any], task_vars: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, diff=False)
    action = ActionModule(
        task=task,
        connection=SimpleNamespace(_shell=SimpleNamespace(tmpdir="unused")),
        play_context=SimpleNamespace(check_mode=check_mode),
        loader=None,
        templar=None,
        shared_loader_obj=None,
    )
    return dict(action.run(task_vars=task_vars))


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr(action_module.display, "display", lambda msg, *a, **k: lines.append(msg))
    return lines


def options(folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "dir": str(folder),
        "cluster": ESTATE["cluster"],
        "webhook_mode": ESTATE["webhook_mode"],
        "issuer_url": ESTATE["issuer_url"],
        "webhook_tenant": ESTATE["webhook_tenant"],
        "planned": {"azure": "planned_azure", "kube": "planned_kube"},
        **extra,
    }


PLANNED = {"planned_azure": ESTATE["azure"], "planned_kube": ESTATE["kube"]}


def test_the_plan_stage_writes_the_plan_before_any_change_and_prints_nothing(
    tmp_path: Path, printed: list[str]
) -> None:
    result = run(options(tmp_path, stage="plan"), PLANNED)
    cluster = ESTATE["cluster"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cluster}.plan.json", f"{cluster}.plan.md"]
    assert (tmp_path / f"{cluster}.plan.json").read_text() == (GOLDEN / "plan.json").read_text()
    assert (tmp_path / f"{cluster}.plan.md").read_text() == (GOLDEN / "plan.md").read_text()
    assert result["changed"] is False and result["check_mode"] is True
    assert printed == []


def test_a_plan_of_both_sides_in_one_result_reports_as_the_two_results_did(tmp_path: Path, printed: list[str]) -> None:
    # workload_identities with plan_kubernetes: the Kubernetes side's plan is the Azure side's "kubernetes".
    both = {"planned_both": {**ESTATE["azure"], "kubernetes": ESTATE["kube"]}}
    run(options(tmp_path, stage="plan", planned={"azure": "planned_both"}), both)
    cluster = ESTATE["cluster"]
    assert (tmp_path / f"{cluster}.plan.json").read_text() == (GOLDEN / "plan.json").read_text()
    assert printed == []


def test_a_run_reports_what_the_converge_did_and_prints_its_summary(tmp_path: Path, printed: list[str]) -> None:
    converged = {"converged_azure": ESTATE["azure"], "converged_kube": ESTATE["kube"]}
    args = options(
        tmp_path,
        converged={"azure": "converged_azure", "kube": "converged_kube"},
        replaced_removed=["id-aks-dev-shop-orders-v1"],
    )
    result = run(args, {**PLANNED, **converged})
    cluster = ESTATE["cluster"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cluster}.json", f"{cluster}.md"]
    assert (tmp_path / f"{cluster}.json").read_text() == (GOLDEN / "rollout.json").read_text()
    assert (tmp_path / f"{cluster}.md").read_text() == (GOLDEN / "rollout.md").read_text()
    assert printed == [(GOLDEN / "rollout.txt").read_text().rstrip("\n")]
    assert result["counts"] == json.loads((GOLDEN / "rollout.json").read_text())["counts"]


def test_a_run_that_converged_nothing_reports_the_plans_reads_and_writes_the_plan_too(
    tmp_path: Path, printed: list[str]
) -> None:
    skipped = {"converged_azure": SKIPPED, "converged_kube": SKIPPED}
    args = options(tmp_path, converged={"azure": "converged_azure", "kube": "converged_kube"})
    result = run(args, {**PLANNED, **skipped})
    cluster = ESTATE["cluster"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{cluster}.json", f"{cluster}.md", f"{cluster}.plan.json", f"{cluster}.plan.md"]
    assert (tmp_path / f"{cluster}.plan.json").read_text() == (GOLDEN / "plan.json").read_text()
    written = json.loads((tmp_path / f"{cluster}.json").read_text())
    assert written["check_mode"] is False and result["check_mode"] is False
    assert [w["name"] for w in written["workloads"]] == [w["name"] for w in ESTATE["azure"]["workloads"]]
    assert len(printed) == 1 and "were created" in printed[0]


def test_check_mode_reports_the_plan_as_the_run(tmp_path: Path, printed: list[str]) -> None:
    args = options(tmp_path, converged={"azure": "converged_azure", "kube": "converged_kube"})
    result = run(args, {**PLANNED, "converged_azure": SKIPPED, "converged_kube": SKIPPED}, check_mode=True)
    cluster = ESTATE["cluster"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cluster}.plan.json", f"{cluster}.plan.md"]
    assert (tmp_path / f"{cluster}.plan.json").read_text() == (GOLDEN / "plan.json").read_text()
    assert printed == [(GOLDEN / "plan.txt").read_text().rstrip("\n")]
    assert result["check_mode"] is True


def test_the_workloads_the_converge_reused_are_reported_with_the_plans_rows(tmp_path: Path, printed: list[str]) -> None:
    first, *rest = ESTATE["azure"]["workloads"]
    converged = {**copy.deepcopy(ESTATE["azure"]), "workloads": rest, "reused": [first["name"]]}
    task_vars = {**PLANNED, "converged_azure": converged, "converged_kube": ESTATE["kube"]}
    run(options(tmp_path, converged={"azure": "converged_azure", "kube": "converged_kube"}), task_vars)
    written = json.loads((tmp_path / f"{ESTATE['cluster']}.json").read_text())
    assert [w["name"] for w in written["workloads"]] == [w["name"] for w in ESTATE["azure"]["workloads"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cluster": ""}, "cluster: the cluster's name is required"),
        ({"stage": "later"}, "stage: 'later' is not one of plan, result"),
        ({"planned": "planned_azure"}, "planned: the names of the registered results"),
        ({"planned": {"azure": "nothing_registered"}}, "planned.azure: nothing_registered is not a registered result"),
        ({"replaced_removed": "id-x"}, "replaced_removed: a list of names is required"),
        ({"dir": ""}, "dir: the folder to write the reports in is required"),
    ],
)
def test_bad_arguments_are_named_before_anything_is_written(
    tmp_path: Path, printed: list[str], change: dict[str, Any], message: str
) -> None:
    folder = tmp_path / "reports"
    with pytest.raises(AnsibleActionFail, match=message.replace("(", r"\(")):
        run({**options(folder), **change}, PLANNED)
    assert not folder.exists() and printed == []
