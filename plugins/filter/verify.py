# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The access review: what verify found, per cluster and for the whole run, as lines, Markdown and one HTML page."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import short_scope
from ansible_collections.workload_identity.aks.plugins.module_utils._report import SCHEMA_VERSION

# The review's contract: the verify module's result (its schema_version is _report.SCHEMA_VERSION), without Ansible's
# own keys; these filters only format it.
REPORT_KEYS = ("schema_version", "cluster", "issuer_url", "checked_at", "workloads", "summary")


def verify_report(result: Any) -> dict[str, Any]:
    """A cluster's review: the verify module's result without Ansible's own keys."""
    if not isinstance(result, Mapping) or "workloads" not in result:
        raise AnsibleFilterError("verify_report expects the registered result of workload_identity.aks.verify")
    missing = [k for k in REPORT_KEYS if k not in result]
    if missing:
        raise AnsibleFilterError(f"verify_report: the verify result has no {', '.join(missing)}: not its contract")
    return {k: result[k] for k in REPORT_KEYS}


def verify_run(hosts: Any, hostvars: Any, fact: str = "verify_report") -> dict[str, Any]:
    """Every cluster of the run in one review; a cluster whose verification did not finish is listed as such."""
    if not isinstance(hosts, list):
        raise AnsibleFilterError("verify_run expects the play's hosts (ansible_play_hosts_all) and hostvars")
    clusters: list[dict[str, Any]] = []
    for host in hosts:
        report = hostvars[host].get(fact) if host in hostvars else None
        if isinstance(report, Mapping):
            clusters.append(dict(report))
        else:
            clusters.append({"cluster": host, "error": "not verified: the run failed for it first (see its output)"})
    return _run(clusters)


def _run(clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """Clusters' reviews with the run's totals (a cluster not verified counts as a finding)."""
    totals = {"clusters": len(clusters), "workloads": 0, "verified": 0, "findings": 0, "accepted": 0}
    for cluster in clusters:
        for key in ("workloads", "verified", "findings", "accepted"):
            totals[key] += int((cluster.get("summary") or {}).get(key) or 0)
        totals["findings"] += 1 if cluster.get("error") else 0
    return {"schema_version": SCHEMA_VERSION, "clusters": clusters, "summary": totals}


def _as_run(report: Any) -> dict[str, Any]:
    if isinstance(report, Mapping) and "clusters" in report:
        return dict(report)
    if isinstance(report, Mapping) and "workloads" in report:
        return _run([dict(report)])
    raise AnsibleFilterError("expects a report of verify_report or verify_run")


def _rows(run: dict[str, Any]) -> list[dict[str, str]]:
    """One row per workload: what a reviewer reads, as text."""
    rows = []
    for cluster in run["clusters"]:
        if cluster.get("error"):
            rows.append(
                {
                    "cluster": cluster["cluster"],
                    "workload": "(no workload checked)",
                    "identity": "-",
                    "credential": "-",
                    "roles": "-",
                    "roles_html": "-",
                    "result": str(cluster["error"]),
                    "status": "finding",
                }
            )
            continue
        rows.extend(_workload_row(str(cluster.get("cluster")), w) for w in cluster.get("workloads") or [])
    return rows


def _workload_row(cluster: str, w: dict[str, Any]) -> dict[str, str]:
    identity = w.get("identity") or {}
    credential = w.get("credential") or {}
    # Resource names, as a reviewer reads them; the full ids stay in the JSON, the page's hover and the Markdown's
    # scope list.
    roles = "; ".join(_role_text(r) for r in w.get("roles") or [])
    result, status = _result(w)
    return {
        "cluster": cluster,
        "workload": f"{w['name']} ({w['namespace']}/{w['service_account']})",
        "identity": " ".join(
            [str(identity.get("kind", "-")), str(identity.get("name", "-")), str(identity.get("client_id") or "")]
        ).strip(),
        "credential": f"{credential.get('name')}: {credential.get('subject')}" if credential else "-",
        "roles": roles or "(no access)",
        "roles_html": _roles_html(w),
        "result": result,
        "status": status,
    }


def _role_text(role: dict[str, Any]) -> str:
    return f"{role['role']} @ {short_scope(role['scope'])}" + (
        "" if role.get("granted") is not False else " (not granted)"
    )


def _roles_html(w: dict[str, Any]) -> str:
    """Each role by resource name, its full scope id on hover (and in the title a copy takes)."""
    roles = w.get("roles") or []
    if not roles:
        return "(no access)"
    return "; ".join(
        f'<span class="scope" title="{html.escape(str(r["scope"]))}">{html.escape(_role_text(r))}</span>' for r in roles
    )


def _scopes(run: dict[str, Any]) -> list[tuple[str, str]]:
    """Every scope the review names, as read and in full (sorted, once each)."""
    found = {
        (short_scope(str(r["scope"])), str(r["scope"]))
        for c in run["clusters"]
        for w in c.get("workloads") or []
        for r in w.get("roles") or []
    }
    return sorted(found)


def _result(w: dict[str, Any]) -> tuple[str, str]:
    """The first finding not accepted, with its remedy; else verified, and what was accepted."""
    open_findings = [f for f in w.get("findings") or [] if not f.get("accepted")]
    accepted = [f for f in w.get("findings") or [] if f.get("accepted")]
    if open_findings:
        first = open_findings[0]
        result = f"{first['link']}: {first['message']}. Remedy: {first['remedy']}"
        result += f" (+{len(open_findings) - 1} more)" if len(open_findings) > 1 else ""
        return result, "finding"
    wait = w.get("sign_in_wait")
    result = "verified" + (f" (sign-in after {wait:.0f} s of propagation)" if wait else "")
    result += "".join(f"; accepted {f['link']}: {f['message']} ({f['accepted']})" for f in accepted)
    return result, "accepted" if accepted else "verified"


def verify_lines(report: Any) -> list[str]:
    run = _as_run(report)
    s = run["summary"]
    lines = [
        f"{s['workloads']} workloads, {s['verified']} verified, {s['findings']} finding(s) not accepted, "
        f"{s['accepted']} accepted"
    ]
    for row in _rows(run):
        lines.append(f"{row['cluster']} {row['workload']}: {row['result']}")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def verify_markdown(report: Any) -> str:
    run = _as_run(report)
    s = run["summary"]
    names = ", ".join(str(c.get("cluster")) for c in run["clusters"])
    checked = sorted({str(c.get("checked_at")) for c in run["clusters"] if c.get("checked_at")})
    out = [
        f"# Access review: {names}",
        "",
        f"{s['workloads']} workloads, {s['verified']} verified, {s['findings']} finding(s) not accepted, "
        f"{s['accepted']} accepted. Checked {', '.join(checked) or '(not checked)'}.",
        "",
        "| Cluster | Workload | Identity | Credential | Roles @ scopes | Result |",
        "|---|---|---|---|---|---|",
    ]
    for row in _rows(run):
        cells = [row[k] for k in ("cluster", "workload", "identity", "credential", "roles", "result")]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    findings = [
        (c.get("cluster"), w["name"], f)
        for c in run["clusters"]
        for w in c.get("workloads") or []
        for f in w.get("findings") or []
    ]
    if findings:
        out += ["", "## Findings", ""]
        for cluster, workload, f in findings:
            accepted = f" Accepted: {f['accepted']}." if f.get("accepted") else ""
            out.append(f"- **{cluster} / {workload}**, {f['link']}: {f['message']}. Remedy: {f['remedy']}.{accepted}")
    scopes = [(short, full) for short, full in _scopes(run) if short != full]
    if scopes:
        out += ["", "## Scopes", ""]
        out.extend(f"- {_cell(short)}: `{full}`" for short, full in scopes)
    return "\n".join(out) + "\n"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1b1b}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.4em .6em;text-align:left;vertical-align:top}
td.result{min-width:26em}td.roles{min-width:20em}span.scope{border-bottom:1px dotted #888;cursor:help}
th{background:#f0f0f0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.finding td.result{background:#fde2e1;color:#8a1c14;font-weight:600}
tr.verified td.result{background:#e3f4e1;color:#1d5c17}
tr.accepted td.result{background:#fff4ce;color:#6b5200}
code{font-size:12px}
"""

_SCRIPT = """
document.querySelectorAll('th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    document.querySelectorAll('th').forEach(function (other) { other.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    Array.from(body.rows)
      .sort(function (a, b) {
        var x = a.cells[column].textContent, y = b.cells[column].textContent;
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      })
      .forEach(function (row) { body.appendChild(row); });
  });
});
"""


def verify_html(report: Any) -> str:
    """One self-contained page (no external file, no network): the table sorts by any column on a click."""
    run = _as_run(report)
    s = run["summary"]
    names = ", ".join(str(c.get("cluster")) for c in run["clusters"])
    head = ["Cluster", "Workload", "Identity", "Credential", "Roles @ scopes", "Result"]
    rows = []
    for row in _rows(run):
        cells = "".join(
            f'<td class="{k}">{row["roles_html"] if k == "roles" else html.escape(row[k])}</td>'
            for k in ("cluster", "workload", "identity", "credential", "roles", "result")
        )
        rows.append(f'<tr class="{row["status"]}">{cells}</tr>')
    # The review's data, for tools that read the page (escaped so that no value can end the script element).
    data = json.dumps(run, sort_keys=True).replace("<", "\\u003c")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Access review: {html.escape(names)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Access review: {html.escape(names)}</h1>"
        f'<p id="summary">{s["workloads"]} workloads, {s["verified"]} verified, '
        f"<strong>{s['findings']} finding(s) not accepted</strong>, {s['accepted']} accepted.</p>"
        '<table id="review"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        f'<script type="application/json" id="review-data">{data}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "verify_report": verify_report,
            "verify_run": verify_run,
            "verify_lines": verify_lines,
            "verify_markdown": verify_markdown,
            "verify_html": verify_html,
        }
