"""The reports of a fixed estate, rendered as every run renders them, compared with golden files.

``tests/unit/fixtures/reports/estate.json`` holds a cluster's two batch results (every kind of row: created, changed,
adopted, unchanged, an application, no access, a controller missing, a workload moved, everything prune reports, an
orphan) and the verify results of a run with a finding, an accepted one and a cluster that failed. The plan (check
mode), the rollout's report and the access review are rendered in each of their forms and compared byte for byte
with the files beside it: a change to any report is a visible diff in review. After a deliberate change, regenerate
them with ``UPDATE_GOLDEN=1 pytest tests/unit/plugins/filter/test_golden_reports.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.filter.rollout import (
    rollout_lines,
    rollout_markdown,
    rollout_report,
)
from ansible_collections.workload_identity.aks.plugins.filter.verify import (
    verify_html,
    verify_lines,
    verify_markdown,
    verify_report,
    verify_run,
)

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "reports"
ESTATE: dict[str, Any] = json.loads((GOLDEN / "estate.json").read_text())


def _report(check_mode: bool) -> dict[str, Any]:
    replaced = [] if check_mode else ["id-aks-dev-shop-orders-v1"]
    return dict(
        rollout_report(
            ESTATE["azure"],
            ESTATE["kube"],
            cluster=ESTATE["cluster"],
            webhook_mode=ESTATE["webhook_mode"],
            issuer_url=ESTATE["issuer_url"],
            check_mode=check_mode,
            replaced_removed=replaced,
            webhook_tenant=ESTATE["webhook_tenant"],
        )
    )


def _review() -> dict[str, Any]:
    hostvars = {host: {"verify_report": verify_report(result)} for host, result in ESTATE["verify"].items()}
    hostvars["aks-prod"] = {}  # its run failed before verify
    return verify_run(ESTATE["verify_hosts"], hostvars)


def renderings() -> dict[str, Any]:
    plan, rollout, review = _report(True), _report(False), _review()
    return {
        "plan.json": json.dumps(plan, indent=4, sort_keys=True) + "\n",
        "plan.txt": "\n".join(rollout_lines(plan)) + "\n",
        "plan.md": rollout_markdown(plan),
        "rollout.json": json.dumps(rollout, indent=4, sort_keys=True) + "\n",
        "rollout.txt": "\n".join(rollout_lines(rollout)) + "\n",
        "rollout.md": rollout_markdown(rollout),
        "review.json": json.dumps(review, indent=4, sort_keys=True) + "\n",
        "review.txt": "\n".join(verify_lines(review)) + "\n",
        "review.md": verify_markdown(review),
        "review.html": verify_html(review),
    }


RENDERED = renderings()


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rendering_matches_its_golden_file(name: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(RENDERED[name])
    assert golden.exists(), f"{golden} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert RENDERED[name] == golden.read_text()


def test_the_estate_covers_every_status_and_section() -> None:
    """The golden files are worth their bytes only if the estate exercises every part of the reports."""
    rollout = _report(False)
    assert {w["status"] for w in rollout["workloads"]} == {"created", "changed", "adopted", "unchanged"}
    assert {w["kind"] for w in rollout["workloads"]} == {"user_assigned", "application"}
    assert rollout["counts"]["no_access"] == 1
    assert set(rollout["pruned"]) == {
        "identities",
        "applications",
        "federated_credentials",
        "role_assignments",
        "replaced",
        "released",
        "orphaned",
        "kubernetes",
        "replaced_removed",
    }
    review = _review()
    statuses = {w["verified"] for c in review["clusters"] for w in c.get("workloads", [])}
    assert statuses == {True, False} and any("error" in c for c in review["clusters"])
