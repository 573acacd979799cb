# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the rollout's report (``_report``) as a person reads it.

``rollout_lines`` is the summary printed at the end of a run, ``rollout_markdown`` the page written beside the JSON.
The ``rollout_report`` action writes both on the controller; the filters of the same names hand them to playbooks.
"""

from __future__ import annotations

from typing import Any

from ._ids import short_scope
from ._report import policy_text


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
        f"pruned access policy of {row['identity']} @ {scope(row['vault'])} ({policy_text(row['permissions'])})"
        for row in pruned.get("access_policies", [])
    ]
    lines += [
        f"pruned Cosmos DB SQL role assignment of {row['identity']}: role {row['role']} @ {scope(row['scope'])}"
        for row in pruned.get("cosmos_roles", [])
    ]
    lines += [
        f"pruned database role {row['user']} of {row['identity']} @ {scope(row['server'])}: "
        + (f"revoked {', '.join(row['roles'])}" if row["roles"] else "")
        + ("; " if row["roles"] and row["dropped"] else "")
        + ("dropped" if row["dropped"] else "")
        for row in pruned.get("database_roles", [])
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
