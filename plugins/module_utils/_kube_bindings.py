# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the Kubernetes side of a cluster's workloads.

One engine for namespaces, service accounts and pod controllers, so a whole cluster is one task:
read everything first, plan every change (and find every missing controller) before the first
write, then write with JSON merge patches that touch only the fields this collection owns. The
plan is computed by applying those same patches to what was read (``_kube_patch``), so check mode
predicts exactly. :meth:`Bindings.apply` is the only code that writes to a cluster.

What this collection touches carries the marks of ``_ownership``, so that prune and teardown find it
again; only what it created is ever deleted. A controller remembers the service account it had
before it was bound, so unbinding puts it back. An object that existed before (a ServiceAccount an
operator annotated by hand, a Deployment already labelled) is *adopted*: the first touch records the
values the fields this collection sets already had, and releasing it restores them, so pods made from
a template that was already right are never restarted by a teardown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._inventory import WorkloadSpec
from ._kube_adoption import CLIENT_ID, foreign_binding
from ._kube_client import KubeClient
from ._kube_namespaces import NamespaceContents
from ._kube_patch import combine, dig, merge_patch, nest
from ._kube_plan import Change, Plan, rollout_consequence
from ._ownership import (
    ADOPTED_ANNOTATION,
    PREVIOUS_ACCOUNT_ANNOTATION,
    adopted_record,
    adopted_values,
    kube_cluster_selector,
    kube_created_by_collection,
    kube_created_marks,
    kube_marks,
    kube_marks_removed,
    kube_workload,
)

# The webhook's contract: the annotations it reads from a ServiceAccount and the label it selects pods by.
TENANT_ID = "azure.workload.identity/tenant-id"
TOKEN_EXPIRATION = "azure.workload.identity/service-account-token-expiration"
USE_LABEL = "azure.workload.identity/use"
ACCOUNT_ANNOTATIONS = (CLIENT_ID, TENANT_ID, TOKEN_EXPIRATION)
# Where an adoption record keeps each kind of field.
RECORDED_ANNOTATIONS = "annotations"
RECORDED_TEMPLATE_LABELS = "pod-template-labels"
UNKNOWN_CLIENT_ID = "(known once the identity exists)"  # check mode, before the identity is created

# kind -> (API group path, plural, path from the object to its pod template)
CONTROLLERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Deployment": ("/apis/apps/v1", "deployments", ("spec", "template")),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", ("spec", "template")),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", ("spec", "template")),
    "Job": ("/apis/batch/v1", "jobs", ("spec", "template")),
    "CronJob": ("/apis/batch/v1", "cronjobs", ("spec", "jobTemplate", "spec", "template")),
}


class Paths:
    """Where each kind lives on this API server; CronJob's group version is asked once."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._cronjobs: str | None = None

    def group(self, kind: str) -> str:
        """CronJob is batch/v1 from Kubernetes 1.21 and batch/v1beta1 before."""
        if kind != "CronJob":
            return CONTROLLERS[kind][0]
        if self._cronjobs is None:
            served = self.client.get("/apis/batch/v1", "discover batch/v1") or {}
            names = {r.get("name") for r in served.get("resources") or []}
            self._cronjobs = "/apis/batch/v1" if "cronjobs" in names else "/apis/batch/v1beta1"
        return self._cronjobs

    def controller(self, kind: str, namespace: str | None, name: str | None = None) -> str:
        base, plural = self.group(kind), CONTROLLERS[kind][1]
        where = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        return f"{where}/{name}" if name else where

    @staticmethod
    def service_account(namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        return f"{base}/{name}" if name else base


def _sa_view(sa: dict[str, Any] | None) -> dict[str, Any] | None:
    if sa is None:
        return None
    meta = sa.get("metadata") or {}
    return {"annotations": meta.get("annotations") or {}, "labels": meta.get("labels") or {}}


def _template_view(kind: str, obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    template = dig(obj, *CONTROLLERS[kind][2]) or {}
    return {
        "serviceAccountName": dig(template, "spec", "serviceAccountName"),
        "labels": dig(template, "metadata", "labels") or {},
    }


class Bindings:
    """Plans and applies the Kubernetes side for one cluster."""

    def __init__(self, client: KubeClient, cluster: str, tenant_id: str | None) -> None:
        self.api = client
        self.paths = Paths(client)
        self.contents = NamespaceContents(client)
        self.cluster = cluster
        self.tenant_id = tenant_id

    # -- service accounts ---------------------------------------------------------------------------

    def _bind_account(self, spec: WorkloadSpec, client_id: str | None, current: dict[str, Any] | None) -> Change:
        annotations: dict[str, Any] = {CLIENT_ID: client_id or UNKNOWN_CLIENT_ID, TENANT_ID: self.tenant_id}
        labels = kube_marks(self.cluster, spec.name)
        path = Paths.service_account(spec.namespace, spec.service_account)
        change = Change("ServiceAccount", spec.namespace, spec.service_account, "unchanged", path, workload=spec.name)
        if spec.token_expiration is not None:
            annotations[TOKEN_EXPIRATION] = str(spec.token_expiration)
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": spec.service_account,
                    "namespace": spec.namespace,
                    "labels": kube_created_marks(self.cluster, spec.name),
                    "annotations": annotations,
                },
            }
            change.action, change.path, change.body = "created", Paths.service_account(spec.namespace), body
            change.after = _sa_view(body)
            return change
        old_annotations = dig(current, "metadata", "annotations") or {}
        ours_before = kube_workload(dig(current, "metadata", "labels")) is not None
        if spec.token_expiration is None and TOKEN_EXPIRATION in old_annotations and ours_before:
            # Set by this collection before (the account carries our label): the inventory no longer asks for it.
            annotations[TOKEN_EXPIRATION] = None
        adopting = not ours_before and not kube_created_by_collection(dig(current, "metadata", "labels"))
        if adopting:
            record = adopted_record(RECORDED_ANNOTATIONS, {k: old_annotations.get(k) for k in ACCOUNT_ANNOTATIONS})
            if record:
                annotations[ADOPTED_ANNOTATION] = record
        change = self._patch(change, current, {"metadata": {"labels": labels, "annotations": annotations}}, _sa_view)
        if adopting and change.action == "updated":
            change.action = "adopted"
        return change

    def _release_account(self, sa: dict[str, Any], workload: str | None) -> Change:
        meta = sa["metadata"]
        path = Paths.service_account(meta["namespace"], meta["name"])
        change = Change("ServiceAccount", meta["namespace"], meta["name"], "deleted", path, workload=workload)
        change.before = _sa_view(sa)
        if kube_created_by_collection(meta.get("labels")):
            return change
        # Someone else's account that this collection only annotated: take back what it added, and put back
        # what was there before it came (recorded when it adopted the account).
        before = adopted_values(meta.get("annotations"), RECORDED_ANNOTATIONS)
        annotations: dict[str, Any] = {key: before.get(key) for key in ACCOUNT_ANNOTATIONS}
        annotations[ADOPTED_ANNOTATION] = None
        patch = {"metadata": {"labels": kube_marks_removed(), "annotations": annotations}}
        change = self._patch(change, sa, patch, _sa_view)
        if change.action == "updated":
            change.action = "released"
        return change

    # -- controllers --------------------------------------------------------------------------------
    def _bind_controller(self, spec: WorkloadSpec, kind: str, current: dict[str, Any]) -> Change:
        meta = current["metadata"]
        path = self.paths.controller(kind, meta["namespace"], meta["name"])
        change = Change(kind, meta["namespace"], meta["name"], "unchanged", path, workload=spec.name)
        template_path = CONTROLLERS[kind][2]
        template_spec: dict[str, Any] = {"serviceAccountName": spec.service_account}
        if dig(current, *template_path, "spec", "serviceAccount"):
            template_spec["serviceAccount"] = spec.service_account  # the deprecated alias must agree
        annotations = {}
        if PREVIOUS_ACCOUNT_ANNOTATION not in (meta.get("annotations") or {}):
            annotations[PREVIOUS_ACCOUNT_ANNOTATION] = dig(current, *template_path, "spec", "serviceAccountName") or ""
        adopting = kube_workload(meta.get("labels")) is None
        if adopting:
            label = dig(current, *template_path, "metadata", "labels", USE_LABEL)
            record = adopted_record(RECORDED_TEMPLATE_LABELS, {USE_LABEL: label})
            if record:
                annotations[ADOPTED_ANNOTATION] = record
        patch = combine(
            {"metadata": {"labels": kube_marks(self.cluster, spec.name)}},
            nest(template_path, {"metadata": {"labels": {USE_LABEL: "true"}}, "spec": template_spec}),
        )
        if annotations:
            patch["metadata"]["annotations"] = annotations
        change = self._patch(change, current, patch, lambda obj: _template_view(kind, obj))
        if change.action == "updated":
            # Adopted: already bound by hand, only this collection's marks are added (its pods are not restarted).
            change.action = "adopted" if adopting and change.before == change.after else "bound"
            if kind == "Job" and change.before != change.after:
                # A Job's pod template is immutable once created; the API server would refuse the patch.
                change.note = "immutable"
            elif change.before != change.after:
                change.note = rollout_consequence(kind, current)
                # Bound to another account before (by its team, or another tool): the plan says whose place it takes.
                previous = dig(current, *template_path, "spec", "serviceAccountName")
                if previous and previous not in ("default", spec.service_account):
                    change.note = f"replaces ServiceAccount {previous}; {change.note}"
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
            patch = combine(
                patch, nest(template_path, {"metadata": {"labels": {USE_LABEL: label_before}}, "spec": template_spec})
            )
        change = self._patch(change, current, patch, lambda obj: _template_view(kind, obj))
        if change.action == "updated":
            change.action = "unbound"
            if kind != "Job" and change.before != change.after:
                change.note = rollout_consequence(kind, current)
        return change

    @staticmethod
    def _patch(change: Change, current: dict[str, Any], patch: dict[str, Any], view: Any) -> Change:
        """Plan a merge patch: the prediction is the patch applied to what was read."""
        predicted = merge_patch(current, patch)
        change.before, change.after = view(current), view(predicted)
        change.action = "updated" if predicted != current else "unchanged"
        change.body = patch if predicted != current else None
        return change

    # -- planning -----------------------------------------------------------------------------------
    def plan_present(
        self, specs: list[WorkloadSpec], client_ids: dict[str, str | None], prune: bool, missing: str
    ) -> Plan:
        plan = Plan()
        namespaces = sorted({s.namespace for s in specs})
        for namespace in namespaces:
            current = self.api.get(f"/api/v1/namespaces/{namespace}", f"read namespace {namespace}")
            if current is None:
                labels = kube_created_marks(self.cluster)
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
                change = Change("Namespace", None, namespace, "created", "/api/v1/namespaces", body)
                change.after = {"labels": labels}
                plan.namespaces.append(change)
            else:
                plan.namespaces.append(Change("Namespace", None, namespace, "unchanged", ""))
                if current["metadata"].get("deletionTimestamp"):
                    # The API server refuses anything new in it (403), after Azure would have been changed.
                    plan.problems.extend(
                        f"cluster {self.cluster}: workload '{s.name}': namespace: {namespace} is being deleted "
                        "(Terminating); wait until it is gone (the next run creates it again) or move the workload "
                        "to another namespace"
                        for s in specs
                        if s.namespace == namespace
                    )
        created = {c.name for c in plan.namespaces if c.action == "created"}
        accounts: dict[str, dict[str, dict[str, Any]]] = {}
        for namespace in namespaces:
            listed = (
                [] if namespace in created else self.api.list(Paths.service_account(namespace), "list service accounts")
            )
            accounts[namespace] = {sa["metadata"]["name"]: sa for sa in listed}
        bound: set[tuple[str, str, str]] = set()
        for spec in specs:
            current_sa = accounts[spec.namespace].get(spec.service_account)
            conflict = foreign_binding(self.cluster, spec, client_ids.get(spec.name), current_sa)
            if conflict:
                plan.problems.append(conflict)
            plan.service_accounts.append(self._bind_account(spec, client_ids.get(spec.name), current_sa))
            for ref in spec.controllers:
                kind, name = ref.kind, ref.name
                bound.add((kind, spec.namespace, name))
                path = self.paths.controller(kind, spec.namespace, name)
                current = None if spec.namespace in created else self.api.get(path, f"read {kind} {name}")
                if current is None:
                    message = (
                        f"cluster {self.cluster}: workload '{spec.name}': controllers: {kind} "
                        f"{spec.namespace}/{name} does not exist"
                    )
                    (plan.warnings if missing == "warn" else plan.problems).append(message)
                    plan.controllers.append(Change(kind, spec.namespace, name, "missing", path, workload=spec.name))
                    continue
                change = self._bind_controller(spec, kind, current)
                if change.note == "immutable":
                    plan.problems.append(
                        f"cluster {self.cluster}: workload '{spec.name}': controllers: Job {spec.namespace}/{name} "
                        "has an immutable pod template; set serviceAccountName "
                        f"'{spec.service_account}' and the label {USE_LABEL}: \"true\" in its manifest, or delete it "
                        "so it is recreated from one that has them"
                    )
                plan.controllers.append(change)
        if prune:
            declared = {(s.namespace, s.service_account) for s in specs}

            def account_released(namespace: str, name: str) -> bool:
                return (namespace, name) not in declared

            def controller_released(key: tuple[str, str, str], _workload: str | None) -> bool:
                return key not in bound

            self._plan_release(plan, account_released, controller_released)
        return plan

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

    # -- applying -----------------------------------------------------------------------------------
    def apply(self, plan: Plan, state: str) -> None:
        for change in plan.ordered(state):
            if not change.changed:
                continue
            what = f"{change.action} {change.label}"
            if change.action == "deleted":
                self.api.delete(change.path, what)
            elif change.action == "created":
                self.api.create(change.path, change.body or {}, what)
            else:
                self.api.patch(change.path, change.body or {}, what)
