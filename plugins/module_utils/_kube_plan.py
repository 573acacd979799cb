# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the Kubernetes engine decided, and its report.

A :class:`Plan` is every :class:`Change` for one cluster, computed before the first write; check mode
reports it as it is, a real run applies it (``_kube_bindings``) and reports the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._results import KubeBatchResult, KubeRow


@dataclass
class Change:
    """One object's planned change: a create, a merge patch or a delete, and what a diff shows of it."""

    kind: str
    namespace: str | None
    name: str
    action: str  # created, updated, adopted, unchanged, deleted, bound, unbound, missing, kept
    path: str
    body: dict[str, Any] | None = None
    before: Any = None
    after: Any = None
    workload: str | None = None
    note: str | None = None

    @property
    def changed(self) -> bool:
        return self.action not in ("unchanged", "missing", "kept")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass
class Plan:
    namespaces: list[Change] = field(default_factory=list)
    service_accounts: list[Change] = field(default_factory=list)
    controllers: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ordered(self, state: str) -> list[Change]:
        """Creates: namespaces, then accounts, then controllers. Removals: controllers first (a pod template
        must not name a deleted account), then accounts, then namespaces."""
        steps = [*self.namespaces, *self.service_accounts, *self.controllers]
        return steps if state == "present" else [*self.controllers, *self.service_accounts, *self.namespaces]


def report(plan: Plan) -> KubeBatchResult:
    """The module's result: per object what was done, and a before/after diff of the fields it owns."""

    def rows(changes: list[Change]) -> list[KubeRow]:
        out: list[KubeRow] = []
        for c in changes:
            row: KubeRow = {"kind": c.kind, "namespace": c.namespace, "name": c.name, "action": c.action}
            if c.workload:
                row["workload"] = c.workload
            if c.note:
                row["note"] = c.note
            out.append(row)
        return out

    steps = [*plan.namespaces, *plan.service_accounts, *plan.controllers]
    changed = [c for c in steps if c.changed]
    return {
        "changed": bool(changed),
        "namespaces": rows(plan.namespaces),
        "service_accounts": rows(plan.service_accounts),
        "controllers": rows(plan.controllers),
        "diff": {
            "before": {c.label: c.before for c in changed},
            "after": {c.label: c.after if c.action != "deleted" else None for c in changed},
        },
    }


def rollout_consequence(kind: str, current: dict[str, Any]) -> str:
    """What a change to a controller's pod template does to its pods, for the plan and the summary."""
    spec = current.get("spec") or {}
    if kind == "CronJob":
        return "the next runs use it; running jobs keep theirs"
    strategy = (spec.get("updateStrategy") or {}).get("type")
    if kind in ("StatefulSet", "DaemonSet") and strategy == "OnDelete":
        return "updateStrategy OnDelete: its pods keep the old template until deleted; restart them"
    if kind in ("Deployment", "StatefulSet") and spec.get("replicas") == 0:
        return "scaled to 0: pods get it when scaled up"
    return "its pods restart (rolling update)"
