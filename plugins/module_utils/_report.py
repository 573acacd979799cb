# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the rollout's report, one contract built once.

The two batch results (``AzureBatchResult`` of ``workload_identities``, ``KubeBatchResult`` of ``service_accounts``,
``_results``) joined per workload into ``RolloutReport``: every key is always there, and ``schema_version`` says
which contract a report written to disk follows (a consumer of ``<cluster>.json`` checks it). A key the batch results'
contracts require and that is missing is an error naming it, never a ``None`` or an "unchanged" in the report. The
filters (``plugins/filter/rollout.py``) only format it as lines and Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from ._results import AzureBatchResult, KubeBatchResult, KubeRow, WorkloadResult

# 1: the report of 0.1.0 with the version added. Raise it when a key is renamed or removed, or changes meaning.
SCHEMA_VERSION = 1
STATUSES = ("created", "changed", "adopted", "unchanged")


class ReportError(ValueError):
    """A batch result that does not hold what its contract says: the report is not made from half of one."""


class ReportCredential(TypedDict):
    name: str
    subject: str
    action: str


class ReportRole(TypedDict):
    role: str  # its name, or its definition's GUID when the subscription's definitions do not name it
    scope: str
    action: str
    adopted: bool


class ReportController(TypedDict):
    kind: str
    name: str
    action: str
    note: str | None


class ReportWorkload(TypedDict):
    name: str
    namespace: str
    service_account: str
    identity: str
    kind: str  # user_assigned | application
    principal_id: str | None
    identity_action: str
    client_id: str | None
    subject: str
    federated_credentials: list[ReportCredential]
    roles: list[ReportRole]
    access: str  # declared | none (it signs in, and may do nothing)
    service_account_action: str | None
    service_account_note: str | None
    controllers: list[ReportController]
    status: str  # one of STATUSES
    notes: list[str]


class RolloutReport(TypedDict):
    schema_version: int
    cluster: str
    webhook_mode: str
    issuer_url: str | None
    check_mode: bool
    changed: bool
    counts: dict[str, int]  # per status, and no_access
    workloads: list[ReportWorkload]
    pruned: dict[str, list[Any]]  # only what is not empty
    notes: list[str]


def rollout_report(
    azure: AzureBatchResult | Mapping[str, Any],
    kube: KubeBatchResult | Mapping[str, Any] | None = None,
    *,
    cluster: str = "",
    webhook_mode: str = "",
    issuer_url: str | None = None,
    check_mode: bool = False,
    replaced_removed: list[str] | None = None,
    webhook_tenant: str | None = None,
) -> RolloutReport:
    """Join the Azure side and the Kubernetes side (absent when it was not planned) per workload.

    ``replaced_removed``: the replaced identities (``pruned.replaced``) that were removed after their pods restarted.
    ``webhook_tenant``: the tenant the self-managed webhook injects by default (helm mode), to compare with the
    identities'.
    """
    for key in ("changed", "workloads", "pruned", "orphaned_assignments"):
        _need(azure, key, "the result of workload_identities")
    kube = kube or {}
    # A workload's rows are those in its namespace: a workload moved to another namespace also has rows in the old one
    # (its account released, its controllers unbound), which are reported as released, not as its own.
    accounts = {
        (row.get("workload"), row.get("namespace"), row["name"]): row for row in kube.get("service_accounts") or []
    }
    controllers: dict[tuple[str, str], list[KubeRow]] = {}
    for row in kube.get("controllers") or []:
        controllers.setdefault((str(row.get("workload")), str(row.get("namespace"))), []).append(row)
    workloads = []
    for item in azure["workloads"]:
        place = (_need(item, "name", "a workload"), _need(item, "namespace", f"workload {item['name']}"))
        account = accounts.get((*place, _need(item, "service_account", f"workload {item['name']}")))
        workloads.append(_workload(item, account, controllers.get(place, [])))
    counts = {s: sum(1 for w in workloads if w["status"] == s) for s in STATUSES}
    counts["no_access"] = sum(1 for w in workloads if w["access"] == "none")
    return {
        "schema_version": SCHEMA_VERSION,
        "cluster": cluster,
        "webhook_mode": webhook_mode,
        "issuer_url": issuer_url,
        "check_mode": bool(check_mode),
        "changed": bool(azure["changed"] or kube.get("changed")),
        "counts": counts,
        "workloads": workloads,
        "pruned": _pruned(azure, kube, workloads, bool(check_mode), replaced_removed),
        "notes": _tenant_notes(azure, webhook_tenant),
    }


def merge_plan_rows(converged: Mapping[str, Any], planned: Mapping[str, Any]) -> AzureBatchResult:
    """The converge's result with the plan's rows (and diff) for the workloads it took from the plan (its
    ``reused``), in the list's order: what the Kubernetes side binds and the report shows."""
    reused = set(converged.get("reused") or [])
    if not reused:
        return converged  # type: ignore[return-value]
    if not isinstance(planned, Mapping) or "workloads" not in planned:
        raise ReportError("expects the plan's registered result of workload_identities")
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


def policy_text(permissions: Mapping[str, list[str]]) -> str:
    """An access policy entry's permissions as a person reads them: ``secrets: get, list; keys: get``."""
    return "; ".join(f"{kind}: {', '.join(values)}" for kind, values in sorted(permissions.items()))


def _need(mapping: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise ReportError(f"{what} has no {key!r}: not the contract a report is built from (_results)")
    return mapping[key]


def _workload(item: WorkloadResult | Mapping[str, Any], account: KubeRow | None, own: list[KubeRow]) -> ReportWorkload:
    """One workload as the report shows it: its identity, credentials, roles, account and controllers, its status."""
    where = f"workload {item['name']}"
    identity = _need(item, "identity", where)
    roles = _need(item, "role_assignments", where)
    policies = item.get("access_policies") or []
    sql_roles = item.get("cosmos_roles") or []
    databases = item.get("database_roles") or []
    try:
        row: ReportWorkload = {
            "name": item["name"],
            "namespace": item["namespace"],
            "service_account": item["service_account"],
            "identity": _need(identity, "name", f"{where}: identity"),
            "kind": identity.get("kind") or "user_assigned",
            "principal_id": identity.get("principal_id"),
            "identity_action": _need(identity, "action", f"{where}: identity"),
            "client_id": identity.get("client_id"),
            "subject": _need(item, "subject", where),
            "federated_credentials": [
                {"name": f["name"], "subject": f["subject"], "action": f["action"]}
                for f in _need(item, "federated_credentials", where)
            ],
            "roles": [
                {
                    "role": r["role"] or r["role_definition_guid"],
                    "scope": r["scope"],
                    "action": r["action"],
                    "adopted": bool(r["adopted"]),
                }
                for r in roles
            ]
            # A Key Vault access policy entry reads as a role on the vault: what the workload may do there.
            + [
                {
                    "role": f"access policy ({policy_text(p['permissions'])})",
                    "scope": p["vault"],
                    "action": p["action"],
                    "adopted": bool(p["adopted"]),
                }
                for p in policies
            ]
            # A Cosmos DB SQL role reads as a role at its scope, said to be Cosmos DB's own.
            + [
                {
                    "role": f"{c['role']} (Cosmos DB SQL role)",
                    "scope": c["scope"],
                    "action": c["action"],
                    "adopted": bool(c["adopted"]),
                }
                for c in sql_roles
            ]
            # A database role reads as the roles it is a member of, in the database it signs in to.
            + [
                {
                    "role": f"database role {d['user']} (member of {', '.join(d['roles']) or 'none'})",
                    "scope": f"{d['server']}/databases/{d['database']}" if d["database"] else d["server"],
                    "action": d["action"],
                    "adopted": bool(d["adopted"]),
                }
                for d in databases
            ],
            # No role declared: it signs in, and may do nothing (prune took any assignment it had away).
            "access": "declared" if roles or policies or sql_roles or databases else "none",
            "service_account_action": account["action"] if account else None,
            "service_account_note": account.get("note") if account else None,
            "controllers": [
                {"kind": c["kind"], "name": c["name"], "action": c["action"], "note": c.get("note")} for c in own
            ],
            "status": _status(item, own + ([account] if account else [])),
            # The role assignments' own notes (on a shared identity: which cluster made it) are the workload's too.
            "notes": list(_need(item, "notes", where))
            + [
                f"role {r['role'] or r['role_definition_guid']} @ {r['scope']}: {n}"
                for r in roles
                for n in r.get("notes") or []
            ]
            + [f"access policy @ {p['vault']}: {n}" for p in policies for n in p.get("notes") or []]
            + [f"database role {d['user']} @ {d['server']}: {n}" for d in databases for n in d.get("notes") or []],
        }
    except KeyError as exc:
        raise ReportError(f"{where}: a row has no {exc}: not the contract a report is built from (_results)") from exc
    return row


def _status(azure: WorkloadResult | Mapping[str, Any], kube: list[KubeRow]) -> str:
    """created, changed, adopted (what an operator had already made is now this collection's, as it was), unchanged."""
    if azure["identity"]["action"] == "created":
        return "created"
    if _need(azure, "changed", f"workload {azure['name']}") or any(
        row["action"] not in ("unchanged", "missing", "adopted") for row in kube
    ):
        return "changed"
    if any(row["action"] == "adopted" for row in kube):
        return "adopted"
    return "unchanged"


def _pruned(
    azure: AzureBatchResult | Mapping[str, Any],
    kube: KubeBatchResult | Mapping[str, Any],
    workloads: list[ReportWorkload],
    check_mode: bool,
    replaced_removed: list[str] | None,
) -> dict[str, list[Any]]:
    """What the run removed, released or left behind, on both sides (only what is not empty)."""
    listed = cast(Mapping[str, list[Any]], azure["pruned"])  # Pruned: every value is a list of rows
    pruned = {kind: list(rows) for kind, rows in listed.items()}
    # Role assignments this collection granted whose principal is gone: deleted with prune, else only reported.
    pruned["orphaned"] = list(azure["orphaned_assignments"])
    pruned["kubernetes"] = _released(kube, workloads) if kube else []
    if pruned.get("replaced"):
        # A plan predicts the removal (the run waits for the pods, then removes it).
        names = [r["name"] for r in pruned["replaced"]] if check_mode else replaced_removed or []
        pruned["replaced_removed"] = sorted(names)
    return {k: v for k, v in pruned.items() if v}


def _released(kube: KubeBatchResult | Mapping[str, Any], workloads: list[ReportWorkload]) -> list[dict[str, Any]]:
    """The Kubernetes objects a workload left (moved to another account or namespace, or no longer listed)."""
    own_accounts = {(w["name"], w["namespace"], w["service_account"]) for w in workloads}
    own_namespaces = {(w["name"], w["namespace"]) for w in workloads}
    accounts = [
        r
        for r in kube.get("service_accounts") or []
        if (r.get("workload"), r.get("namespace"), r["name"]) not in own_accounts
    ]
    controllers = [
        r for r in kube.get("controllers") or [] if (r.get("workload"), r.get("namespace")) not in own_namespaces
    ]
    return [
        {"kind": r["kind"], "namespace": r.get("namespace"), "name": r["name"], "action": r["action"]}
        for r in [*accounts, *controllers]
        if r["action"] != "unchanged"
    ]


def _tenant_notes(azure: AzureBatchResult | Mapping[str, Any], webhook_tenant: str | None) -> list[str]:
    """A self-managed webhook injecting another tenant than the identities' (helm mode)."""
    tenants = sorted({str(i["identity"]["tenant_id"]) for i in azure["workloads"] if i["identity"].get("tenant_id")})
    if not webhook_tenant or not tenants or webhook_tenant in tenants:
        return []
    return [
        f"the webhook's tenant (azureTenantID {webhook_tenant}) is not the identities' ({', '.join(tenants)}): "
        "these workloads' pods get theirs from their ServiceAccount's tenant-id annotation, but any other "
        f"labelled pod signs in to {webhook_tenant}"
    ]
