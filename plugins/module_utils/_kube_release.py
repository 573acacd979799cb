# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): undoing what the Kubernetes side did, for prune and teardown.

Only what carries this collection's marks is touched: a controller gets back the service account (and the
``azure.workload.identity/use`` label) it had before, an account it only annotated gets back the annotations it had,
and what it created goes. A namespace it created goes only when nothing else is left in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._inventory import WorkloadSpec
from ._kube_client import KubeClient
from ._kube_namespaces import NamespaceContents
from ._kube_patch import combine, dig, nest
from ._kube_paths import (
    ACCOUNT_ANNOTATIONS,
    CONTROLLERS,
    RECORDED_ANNOTATIONS,
    RECORDED_TEMPLATE_LABELS,
    USE_LABEL,
    Paths,
    patch_change,
    sa_view,
    template_view,
)
from ._kube_plan import Change, Plan, rollout_consequence
from ._ownership_kube import (
    ADOPTED_ANNOTATION,
    PREVIOUS_ACCOUNT_ANNOTATION,
    RESTARTED_FOR_ANNOTATION,
    TEMPLATE_CLIENT_ID_ANNOTATION,
    adopted_values,
    kube_cluster_selector,
    kube_created_by_collection,
    kube_marks_removed,
    kube_workload,
)


class Releases:
    """The removing half of :class:`._kube_bindings.Bindings`."""

    api: KubeClient
    paths: Paths
    contents: NamespaceContents
    cluster: str

    def _release_account(self, sa: dict[str, Any], workload: str | None) -> Change:
        meta = sa["metadata"]
        path = Paths.service_account(meta["namespace"], meta["name"])
        change = Change("ServiceAccount", meta["namespace"], meta["name"], "deleted", path, workload=workload)
        change.before = sa_view(sa)
        if kube_created_by_collection(meta.get("labels")):
            return change
        # Someone else's account that this collection only annotated: take back what it added, and put back
        # what was there before it came (recorded when it adopted the account).
        before = adopted_values(meta.get("annotations"), RECORDED_ANNOTATIONS)
        annotations: dict[str, Any] = {key: before.get(key) for key in ACCOUNT_ANNOTATIONS}
        annotations[ADOPTED_ANNOTATION] = None
        patch = {"metadata": {"labels": kube_marks_removed(), "annotations": annotations}}
        change = patch_change(change, sa, patch, sa_view)
        if change.action == "updated":
            change.action = "released"
        return change

    def _unbind_controller(self, kind: str, current: dict[str, Any]) -> Change:
        meta = current["metadata"]
        path = self.paths.controller(kind, meta["namespace"], meta["name"])
        workload = kube_workload(meta.get("labels"))
        change = Change(kind, meta["namespace"], meta["name"], "unchanged", path, workload=workload)
        template_path = CONTROLLERS[kind][2]
        previous = (meta.get("annotations") or {}).get(PREVIOUS_ACCOUNT_ANNOTATION) or None
        template_spec: dict[str, Any] = {"serviceAccountName": previous}
        if dig(current, *template_path, "spec", "serviceAccount"):
            template_spec["serviceAccount"] = previous
        label_before = adopted_values(meta.get("annotations"), RECORDED_TEMPLATE_LABELS).get(USE_LABEL)
        patch: dict[str, Any] = {
            "metadata": {
                "labels": kube_marks_removed(),
                "annotations": {PREVIOUS_ACCOUNT_ANNOTATION: None, ADOPTED_ANNOTATION: None},
            }
        }
        if kind == "Job":
            # Its pod template is immutable: only this collection's marks on the Job itself can go.
            change.note = "pod template is immutable; left as it is"
        else:
            # The client id its pods were made for, and the drift it restarted them for, go with the binding (only
            # those recorded: a template this collection never stamped is not restarted by a teardown).
            stamped = dig(current, *template_path, "metadata", "annotations") or {}
            recorded = [a for a in (TEMPLATE_CLIENT_ID_ANNOTATION, RESTARTED_FOR_ANNOTATION) if a in stamped]
            template_meta: dict[str, Any] = {"labels": {USE_LABEL: label_before}}
            if recorded:
                template_meta["annotations"] = dict.fromkeys(recorded)
            patch = combine(patch, nest(template_path, {"metadata": template_meta, "spec": template_spec}))
        change = patch_change(change, current, patch, lambda obj: template_view(kind, obj))
        if change.action == "updated":
            change.action = "unbound"
            if kind != "Job" and change.before != change.after:
                change.note = rollout_consequence(kind, current)
        return change

    def plan_absent(self, specs: list[WorkloadSpec], everything: bool) -> Plan:
        """Undo what this collection did for the listed workloads (or, with ``everything``, for the cluster)."""
        plan = Plan()
        names = {s.name for s in specs}
        accounts = {(s.namespace, s.service_account) for s in specs}
        listed = {(c.kind, s.namespace, c.name) for s in specs for c in s.controllers}

        def account_wanted(namespace: str, name: str) -> bool:
            return everything or (namespace, name) in accounts

        def controller_wanted(key: tuple[str, str, str], workload: str | None = None) -> bool:
            return everything or key in listed or workload in names

        self._plan_release(plan, account_wanted, controller_wanted)
        # Controllers listed but not labelled (bound by hand, or the label was removed) are left alone: only
        # what this collection marked is undone. A namespace it created goes only when nothing else is in it:
        # controllers are only unbound (never deleted), so one of them keeps the namespace, as does anything else.
        deleted = [c for c in plan.service_accounts if c.action == "deleted"]
        selector = kube_cluster_selector(self.cluster, created_only=True)
        for namespace in self.api.list("/api/v1/namespaces", "list namespaces", selector):
            name = namespace["metadata"]["name"]
            if namespace["metadata"].get("deletionTimestamp"):
                continue  # already going
            if not everything and name not in {s.namespace for s in specs}:
                continue
            others = self.contents.remaining(
                name, {("", "serviceaccounts", c.name) for c in deleted if c.namespace == name}
            )
            path = f"/api/v1/namespaces/{name}"
            if others:
                note = "still holds " + ", ".join(others[:3]) + (" and more" if len(others) > 3 else "")
                plan.namespaces.append(Change("Namespace", None, name, "kept", path, note=note))
            else:
                plan.namespaces.append(Change("Namespace", None, name, "deleted", path, before={"name": name}))
        return plan

    def _plan_release(
        self,
        plan: Plan,
        account_wanted: Callable[[str, str], bool],
        controller_wanted: Callable[[tuple[str, str, str], str | None], bool],
    ) -> None:
        """Unbind the labelled controllers and release the labelled accounts that the callers pick."""
        selector = kube_cluster_selector(self.cluster)
        for kind in CONTROLLERS:
            for obj in self.api.list(self.paths.controller(kind, None), f"list {kind}s", selector):
                meta = obj["metadata"]
                key = (kind, meta["namespace"], meta["name"])
                if controller_wanted(key, kube_workload(meta.get("labels"))):
                    change = self._unbind_controller(kind, obj)
                    if change.changed:
                        plan.controllers.append(change)
        for sa in self.api.list("/api/v1/serviceaccounts", "list service accounts", selector):
            meta = sa["metadata"]
            if account_wanted(meta["namespace"], meta["name"]):
                plan.service_accounts.append(self._release_account(sa, kube_workload(meta.get("labels"))))
