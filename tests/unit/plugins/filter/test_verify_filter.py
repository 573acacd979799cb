"""The access review's renderings: a cluster's review and the whole run's, as lines, Markdown and one HTML page."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.filter.verify import (
    verify_html,
    verify_lines,
    verify_markdown,
    verify_report,
    verify_run,
)


def workload(name: str, findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "orders",
        "service_account": name,
        "identity": {"kind": "user_assigned", "name": f"id-{name}", "client_id": "c1"},
        "credential": {
            "name": f"aks-dev-{name}",
            "issuer": "https://i/",
            "subject": f"system:serviceaccount:orders:{name}",
        },
        "roles": [{"role": "Reader", "scope": "/subscriptions/s", "granted": not findings}],
        "findings": findings or [],
        "verified": not any(not f["accepted"] for f in findings or []),
        "sign_in_wait": None,
    }


FINDING = {"link": "webhook", "message": "no webhook answered", "remedy": "register it", "accepted": None}
RESULT = {
    "changed": False,
    "invocation": {"module_args": {}},
    "schema_version": 1,
    "cluster": "aks-dev",
    "issuer_url": "https://i/",
    "checked_at": "2026-12-02T03:00:00+00:00",
    "workloads": [workload("orders-api"), workload("<script>alert(1)</script>", [FINDING])],
    "summary": {"workloads": 2, "verified": 1, "findings": 1, "accepted": 0},
}


def test_a_cluster_review_drops_ansibles_keys_and_reads_in_every_form() -> None:
    report = verify_report(RESULT)
    assert set(report) == {"schema_version", "cluster", "issuer_url", "checked_at", "workloads", "summary"}
    assert verify_lines(report) == [
        "2 workloads, 1 verified, 1 finding(s) not accepted, 0 accepted",
        "aks-dev orders-api (orders/orders-api): verified",
        "aks-dev <script>alert(1)</script> (orders/<script>alert(1)</script>): webhook: no webhook answered. "
        "Remedy: register it",
    ]
    markdown = verify_markdown(report)
    assert "| aks-dev | orders-api (orders/orders-api) | user_assigned id-orders-api c1 |" in markdown
    assert "## Findings" in markdown and "webhook: no webhook answered. Remedy: register it." in markdown
    page = verify_html(report)
    assert "<script>alert(1)</script>" not in page.split('<script type="application/json"')[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<tr class="finding">' in page and page.count("<tr class=") == 2
    # The embedded data cannot close its script element.
    assert "</script>alert" not in page and "\\u003c/script>" in page


def test_the_run_lists_every_cluster_and_one_whose_run_failed() -> None:
    hostvars = {"aks-dev": {"verify_report": verify_report(RESULT)}, "aks-prod": {}}
    run = verify_run(["aks-dev", "aks-prod"], hostvars)
    assert run["schema_version"] == 1
    assert run["summary"] == {"clusters": 2, "workloads": 2, "verified": 1, "findings": 2, "accepted": 0}
    assert run["clusters"][1] == {
        "cluster": "aks-prod",
        "error": "not verified: the run failed for it first (see its output)",
    }
    assert (
        verify_lines(run)[-1]
        == "aks-prod (no workload checked): not verified: the run failed for it first (see its output)"
    )
    with pytest.raises(AnsibleFilterError):
        verify_report({"changed": False})


def test_a_result_without_its_contract_keys_is_refused_naming_them() -> None:
    with pytest.raises(AnsibleFilterError, match="has no schema_version, checked_at"):
        verify_report({k: v for k, v in RESULT.items() if k not in ("schema_version", "checked_at")})
