# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's report: what each workload of a cluster got, as data, as Markdown and as lines to print.

The report is one contract (``module_utils/_report.py``, with a ``schema_version``), built there from the two batch
results; these filters hand it over and format it.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import short_scope
from ansible_collections.workload_identity.aks.plugins.module_utils._report import ReportError, RolloutReport
from ansible_collections.workload_identity.aks.plugins.module_utils._report import rollout_report as build_report
from ansible_collections.workload_identity.aks.plugins.module_utils._results import AzureBatchResult, KubeBatchResult

# What a plan row may say and still change nothing (a controller "missing" is reported, never made).
UNCHANGED_KUBE_ACTIONS = ("unchanged", "kept", "missing")


def plan_changes_nothing(azure: AzureBatchResult, kube: KubeBatchResult | None = None) -> bool:
    """Whether a plan (both batch modules in check mode) would change nothing at all: no workload changed on either
    side, nothing pruned or released, no orphaned assignment deleted. A plan that failed changes "something"."""
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
    return [
        {
            "name": row.get("name"),
            "identity": {key: (row.get("identity") or {}).get(key) for key in ("client_id", "tenant_id")},
        }
        for row in rows
    ]


def with_plan_rows(converged: AzureBatchResult, planned: AzureBatchResult) -> AzureBatchResult:
    """The converge's result with the plan's rows (and diff) for the workloads it took from the plan (its
    ``reused``), in the list's order: what the Kubernetes side binds and the report shows."""
    reused = set(converged.get("reused") or [])
    if not reused:
        return converged
    if not isinstance(planned, dict) or "workloads" not in planned:
        raise AnsibleFilterError("with_plan_rows expects the plan's registered result of workload_identities")
    done = {row["name"]: row for row in converged.get("workloads") or []}
    rows = [
        row if row["name"] in reused else done[row["name"]]
        for row in planned["workloads"]
        if row["name"] in reused or row["name"] in done
    ]
    merged: dict[str, Any] = {**converged, "workloads": rows}
    if "diff" in converged and "diff" in planned:
        merged["diff"] = {
            side: {
                **{k: v for k, v in planned["diff"].get(side, {}).items() if k in reused},
                **converged["diff"].get(side, {}),
            }
            for side in ("before", "after")
        }
    return merged  # type: ignore[return-value]


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


def _roles(workload: dict[str, Any], short: bool = False) -> list[str]:
    rows = [
        f"{r['role']} @ {short_scope(r['scope']) if short else r['scope']} "
        f"({r['action']}{', adopted: an operator made it' if r.get('adopted') else ''})"
        for r in workload["roles"]
    ]
    return rows or ["no access (no roles declared)"]


def _controllers(workload: dict[str, Any]) -> str:
    """Each controller and what the change does to its pods (a restart, or one an operator must do)."""
    rows = [
        f"{c['kind']} {c['name']} ({c['action']}{': ' + c['note'] if c.get('note') else ''})"
        for c in workload["controllers"]
    ]
    return ", ".join(rows) or "(none listed)"


# A workload's status as a plan says it: what the run would do, not what it did.
PLANNED_STATUS = {"created": "would be created", "changed": "would change", "adopted": "would be adopted"}


def _status(workload: dict[str, Any], check_mode: bool) -> str:
    status = str(workload["status"])
    return PLANNED_STATUS.get(status, status) if check_mode else status


def _identity(workload: dict[str, Any]) -> str:
    """The identity with what happened to it and its client id: ``id-x (created, client id ...)``."""
    what = "application" if workload.get("kind") == "application" else "identity"
    action = workload.get("identity_action") or "unchanged"
    return f"{what} {workload['identity']} ({action}, client id {workload['client_id'] or 'pending'})"


def _trust(workload: dict[str, Any]) -> list[str]:
    """Each federated credential by name, its subject and what happened to it."""
    rows = [f"{f['name']}: {f['subject']} ({f['action']})" for f in workload.get("federated_credentials") or []]
    return rows or [f"{workload['subject']} (no federated credential yet)"]


def rollout_lines(report: dict[str, Any]) -> list[str]:
    """The summary a person reads at a glance at the end of a run."""
    verb = "would be" if report["check_mode"] else "were"
    counts = report["counts"]
    lines = [
        f"{report['cluster']}: webhook {report['webhook_mode']}, issuer {report['issuer_url'] or '(not yet enabled)'}",
        f"  {len(report['workloads'])} workload(s): {counts['created']} {verb} created, {counts['changed']} "
        f"changed, {counts.get('adopted', 0)} adopted, {counts['unchanged']} unchanged"
        + (f"; {counts['no_access']} with no access (no roles)" if counts.get("no_access") else ""),
        *(f"  note: {note}" for note in report.get("notes") or []),
    ]
    for w in report["workloads"]:
        lines.append(f"  {w['name']} [{_status(w, report['check_mode'])}] -> {_identity(w)}")
        lines.extend(f"      trust {trust}" for trust in _trust(w))
        lines.extend(f"      role  {role}" for role in _roles(w, short=True))
        note = f": {w['service_account_note']}" if w.get("service_account_note") else ""
        lines.append(f"      sa    {w['namespace']}/{w['service_account']} ({w['service_account_action']}{note})")
        lines.append(f"      pods  {_controllers(w)}")
        lines.extend(f"      note  {note}" for note in w.get("notes") or [])
    lines.extend(f"  {line}" for line in _pruned(report["pruned"], short=True))
    return lines


def _pruned(pruned: dict[str, list[dict[str, Any]]], short: bool = False) -> list[str]:
    """What was removed (or released, on the Kubernetes side) because the list no longer declares it."""
    scope = short_scope if short else str
    lines = [f"pruned identity {row['name']} ({row['resource_group']})" for row in pruned.get("identities", [])]
    lines += [
        f"pruned application {row['name']} (appId {row['app_id']}"
        + (", deleted for good)" if row.get("purged") else ", in Entra's deleted items for 30 days)")
        for row in pruned.get("applications", [])
    ]
    lines += [
        f"pruned federated credential {row['identity']}/{row['name']} ({row['subject']})"
        for row in pruned.get("federated_credentials", [])
    ]
    lines += [
        f"pruned role assignment of {row['identity']}: role {row.get('role') or row['role_definition_guid']} "
        f"@ {scope(row['scope'])}"
        for row in pruned.get("role_assignments", [])
    ]
    lines += [
        f"released {row['kind']} {row['namespace']}/{row['name']} ({row['action']})"
        for row in pruned.get("kubernetes", [])
    ]
    lines += [
        f"let go of {'application' if not row.get('resource_group') else 'identity'} {row['name']}: this cluster's "
        f"credentials and claim removed, kept for {', '.join(row['used_by'])}"
        for row in pruned.get("released", [])
    ]
    lines += [
        f"{'deleted' if row['action'] == 'deleted' else 'found'} orphaned role assignment of {row['granted_to']} "
        f"(workload {row['workload']}): role {row.get('role') or row['role_definition_guid']} @ {scope(row['scope'])}; "
        f"{row['why']}" + ("" if row["action"] == "deleted" else " (kept: prune is off; a run with prune deletes it)")
        for row in pruned.get("orphaned", [])
    ]
    removed = set(pruned.get("replaced_removed", []))
    for row in pruned.get("replaced", []):
        # Made elsewhere, the identity stays: only the assignments this collection granted it go.
        what = "the role assignments this collection granted it" if row.get("assignments_only") else "it"
        lines.append(
            f"replaced {row.get('kind', 'identity')} {row['name']} (workload {row['workload']}, client id "
            f"{row['client_id']}): "
            + (
                ("removed" if what == "it" else f"{what} removed") + " once no pod signs in as it any more"
                if row["name"] in removed
                else f"kept: pods still sign in as it; a later run removes {what} once none does"
            )
        )
    return lines


def rollout_markdown(report: dict[str, Any]) -> str:
    """The same report as a Markdown page (one per cluster)."""
    title = "Plan" if report["check_mode"] else "Rollout"
    out = [
        f"# {title}: {report['cluster']}",
        "",
        f"- webhook: {report['webhook_mode']}",
        f"- issuer: `{report['issuer_url'] or '(not yet enabled)'}`",
        f"- workloads: {report['counts']['created']} {'would be ' if report['check_mode'] else ''}created, "
        f"{report['counts']['changed']} changed, "
        f"{report['counts'].get('adopted', 0)} adopted, {report['counts']['unchanged']} unchanged",
        "",
        "| workload | status | identity (client id) | federated credentials | roles @ scopes | service account "
        "| pod controllers |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in report["workloads"]:
        identity = f"{w['identity']} ({w.get('identity_action') or 'unchanged'}, `{w['client_id'] or 'pending'}`)"
        account = f"{w['namespace']}/{w['service_account']} ({w['service_account_action']})"
        out.append(
            f"| {w['name']} | {_status(w, report['check_mode'])} | {identity} | {'<br>'.join(_trust(w))} "
            f"| {'<br>'.join(_roles(w))} | {account} | {_controllers(w)} |"
        )
    noted = [("cluster", note) for note in report.get("notes") or []]
    noted += [(w["name"], note) for w in report["workloads"] for note in w.get("notes") or []]
    if noted:
        out += ["", "## Notes", ""]
        out.extend(f"- {name}: {note}" for name, note in noted)
    if report["pruned"]:
        out += ["", "## Pruned", ""]
        out.extend(f"- {line}" for line in _pruned(report["pruned"]))
    return "\n".join(out) + "\n"


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
