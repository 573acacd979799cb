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

import hashlib
from typing import Any

from ._errors import KubeApiError
from ._inventory import WorkloadSpec
from ._kube_adoption import foreign_binding
from ._kube_client import KubeClient
from ._kube_namespaces import NamespaceContents
from ._kube_patch import combine, dig, merge_patch, nest
from ._kube_paths import (
    ACCOUNT_ANNOTATIONS,
    CLIENT_ID,
    CONTROLLERS,
    RECORDED_ANNOTATIONS,
    RECORDED_TEMPLATE_LABELS,
    TENANT_ID,
    TOKEN_EXPIRATION,
    UNKNOWN_CLIENT_ID,
    USE_LABEL,
    Paths,
    patch_change,
    pod_client_id,
    sa_view,
    template_view,
)
from ._kube_plan import Change, Plan, rollout_consequence
from ._kube_release import Releases
from ._ownership_kube import (
    ADOPTED_ANNOTATION,
    PREVIOUS_ACCOUNT_ANNOTATION,
    RESTARTED_FOR_ANNOTATION,
    TEMPLATE_CLIENT_ID_ANNOTATION,
    adopted_record,
    kube_created_by_collection,
    kube_created_marks,
    kube_marks,
    kube_workload,
)


class Bindings(Releases):
    """Plans and applies the Kubernetes side for one cluster."""

    def __init__(self, client: KubeClient, cluster: str, tenant_id: str | None) -> None:
        self.api = client
        self.paths = Paths(client)
        self.contents = NamespaceContents(client)
        self.cluster = cluster
        self.tenant_id = tenant_id

    # -- service accounts ---------------------------------------------------------------------------

    def _bind_account(self, spec: WorkloadSpec, client_id: str | None, current: dict[str, Any] | None) -> Change:
        annotations: dict[str, Any] = {CLIENT_ID: client_id or UNKNOWN_CLIENT_ID}
        if self.tenant_id:  # unknown only in a plan with no identity yet: what the account has is not taken away
            annotations[TENANT_ID] = self.tenant_id
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
            change.after = sa_view(body)
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
        change = patch_change(change, current, {"metadata": {"labels": labels, "annotations": annotations}}, sa_view)
        if adopting and change.action == "updated":
            change.action = "adopted"
        return change

    # -- controllers --------------------------------------------------------------------------------
    def _bind_controller(
        self,
        spec: WorkloadSpec,
        kind: str,
        current: dict[str, Any],
        client_id: str | None,
        new_identity: bool,
        drifted: list[dict[str, Any]],
    ) -> Change:
        """``new_identity``: its ServiceAccount's client id changes in this run, so its pods must restart to sign in
        as the new one (the webhook injects the client id when a pod is created, never after). ``drifted``: the pods
        on its ServiceAccount made with another client id than ``client_id`` (while the account named a wrong one):
        restarted too, when its template records the right client id already."""
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
        template_meta: dict[str, Any] = {"labels": {USE_LABEL: "true"}}
        stamped = TEMPLATE_CLIENT_ID_ANNOTATION in (dig(current, *template_path, "metadata", "annotations") or {})
        binding = (
            dig(current, *template_path, "spec", "serviceAccountName") != spec.service_account
            or dig(current, *template_path, "metadata", "labels", USE_LABEL) != "true"
        )
        # The template records the client id its pods were made for: a new one changes the template, so they restart.
        # Not on a template already bound by hand (adopting it must not restart its pods), nor on a Job's (immutable).
        if kind != "Job" and (binding or stamped or new_identity):
            template_meta["annotations"] = {TEMPLATE_CLIENT_ID_ANNOTATION: client_id or UNKNOWN_CLIENT_ID}
        recorded = dig(current, *template_path, "metadata", "annotations", TEMPLATE_CLIENT_ID_ANNOTATION)
        if kind != "Job" and drifted and client_id and recorded == client_id:
            # The template is right already, so it would not change: its drifted pods are named on it instead.
            template_meta.setdefault("annotations", {})[RESTARTED_FOR_ANNOTATION] = pods_digest(drifted)
        patch = combine(
            {"metadata": {"labels": kube_marks(self.cluster, spec.name)}},
            nest(template_path, {"metadata": template_meta, "spec": template_spec}),
        )
        if annotations:
            patch["metadata"]["annotations"] = annotations
        change = patch_change(change, current, patch, lambda obj: template_view(kind, obj))
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
                elif new_identity and drifted and recorded == client_id:
                    change.note = f"{len(drifted)} pod(s) made with a wrong client id; {change.note}"
                elif new_identity:
                    change.note = f"client id changes; {change.note}"
            elif kind == "Job" and new_identity:
                change.note = "client id changes; a Job's pods keep the old one (recreate it)"
        return change

    def _read_controllers(
        self, specs: list[WorkloadSpec], created: set[str]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The listed controllers that exist, by (kind, namespace, name): one GET for a kind named once in a namespace,
        one list for a kind named more than once there (a request per controller would grow with the workloads)."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for spec in specs:
            for ref in spec.controllers:
                if spec.namespace not in created:  # a namespace this run makes holds nothing yet
                    wanted.setdefault((ref.kind, spec.namespace), set()).add(ref.name)
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (kind, namespace), names in sorted(wanted.items()):
            if len(names) == 1:
                (name,) = names
                one = self.api.get(self.paths.controller(kind, namespace, name), f"read {kind} {name}")
                items = [one] if one is not None else []
            else:
                items = self.api.list(self.paths.controller(kind, namespace), f"list {kind}s of {namespace}")
            for item in items:
                if item["metadata"]["name"] in names:
                    found[(kind, namespace, item["metadata"]["name"])] = item
        return found

    def _pods_not_signing_in_as(
        self, spec: WorkloadSpec, client_id: str, pods: dict[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """The pods on the workload's ServiceAccount that the webhook gave another client id (one list per
        namespace, of the pods that use workload identity)."""
        if spec.namespace not in pods:
            path = f"/api/v1/namespaces/{spec.namespace}/pods"
            pods[spec.namespace] = self.api.list(path, f"list pods of {spec.namespace}", f"{USE_LABEL}=true")
        return [
            pod
            for pod in pods[spec.namespace]
            if dig(pod, "spec", "serviceAccountName") == spec.service_account
            and pod_client_id(pod) not in (None, client_id)
            and not dig(pod, "metadata", "deletionTimestamp")
        ]

    # -- planning -----------------------------------------------------------------------------------
    def plan_present(
        self,
        specs: list[WorkloadSpec],
        client_ids: dict[str, str | None],
        prune: bool,
        missing: str,
        rebind: str = "refuse",
    ) -> Plan:
        """``missing``: fail or warn on a listed controller that does not exist; ``rebind``: refuse or warn on an
        account bound by hand to another client id (a workload's own ``rebind: true`` moves it either way)."""
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
        controllers = self._read_controllers(specs, created)
        bound: set[tuple[str, str, str]] = set()
        pods: dict[str, list[dict[str, Any]]] = {}  # namespace -> its workload-identity pods, listed once
        for spec in specs:
            current_sa = accounts[spec.namespace].get(spec.service_account)
            conflict = foreign_binding(self.cluster, spec, client_ids.get(spec.name), current_sa)
            if conflict and rebind == "warn":
                found = (dig(current_sa, "metadata", "annotations") or {}).get(CLIENT_ID)
                plan.warnings.append(
                    f"cluster {self.cluster}: workload '{spec.name}': service_account: {spec.namespace}/"
                    f"{spec.service_account} was bound by hand to client id {found}; moved to this workload's identity "
                    "(workload_identity_rebind is warn): its pods sign in as the new one once restarted, and teardown "
                    f"puts {found} back"
                )
            elif conflict:
                plan.problems.append(conflict)
            client_id = client_ids.get(spec.name)
            account = self._bind_account(spec, client_id, current_sa)
            was = (dig(current_sa, "metadata", "annotations") or {}).get(CLIENT_ID) if current_sa else None
            new_identity = bool(was) and was != client_id
            # Pods made while the account named another client id carry it: listed only when it changes here.
            drifted = self._pods_not_signing_in_as(spec, client_id, pods) if new_identity and client_id else []
            plan.service_accounts.append(account)
            planned = len(plan.controllers)
            for ref in spec.controllers:
                kind, name = ref.kind, ref.name
                bound.add((kind, spec.namespace, name))
                path = self.paths.controller(kind, spec.namespace, name)
                current = controllers.get((kind, spec.namespace, name))
                if current is None:
                    message = (
                        f"cluster {self.cluster}: workload '{spec.name}': controllers: {kind} "
                        f"{spec.namespace}/{name} does not exist"
                    )
                    if missing == "warn":
                        plan.warnings.append(f"{message} (skipped: missing_workloads is warn)")
                    else:
                        plan.problems.append(message)
                    plan.controllers.append(Change(kind, spec.namespace, name, "missing", path, workload=spec.name))
                    continue
                change = self._bind_controller(spec, kind, current, client_id, new_identity, drifted)
                if change.note == "immutable":
                    plan.problems.append(
                        f"cluster {self.cluster}: workload '{spec.name}': controllers: Job {spec.namespace}/{name} "
                        "has an immutable pod template; set serviceAccountName "
                        f"'{spec.service_account}' and the label {USE_LABEL}: \"true\" in its manifest, or delete it "
                        "so it is recreated from one that has them"
                    )
                plan.controllers.append(change)
            if new_identity:
                whose = " (set by hand; teardown puts it back)" if account.action == "adopted" else ""
                account.note = f"client id changes from {was}{whose} to {client_id or 'the new identity'}: " + (
                    restart_note(plan.controllers[planned:], drifted)
                )
        if prune:
            declared = {(s.namespace, s.service_account) for s in specs}

            def account_released(namespace: str, name: str) -> bool:
                return (namespace, name) not in declared

            def controller_released(key: tuple[str, str, str], _workload: str | None) -> bool:
                return key not in bound

            self._plan_release(plan, account_released, controller_released)
        return plan

    # -- applying -----------------------------------------------------------------------------------
    def _created_meanwhile(
        self, change: Change, what: str, conflict: KubeApiError
    ) -> tuple[str, dict[str, Any]] | None:
        """Created between this run's read and its write: by another run of this collection (two jobs at once) if it
        carries the same marks; then this run's values are to be merged onto it (the path and patch; None when they
        are the same already). Anything else is someone else's object: this run stops on the conflict rather than
        take it over."""
        body = change.body or {}
        labels = dig(body, "metadata", "labels") or {}
        path = f"{change.path}/{dig(body, 'metadata', 'name')}"
        existing = self.api.get(path, what)
        if existing is None or any((dig(existing, "metadata", "labels") or {}).get(k) != v for k, v in labels.items()):
            raise conflict
        values = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        values["metadata"] = {k: v for k, v in body["metadata"].items() if k in ("labels", "annotations")}
        return (path, values) if merge_patch(existing, values) != existing else None

    def apply(self, plan: Plan, state: str) -> None:
        for change in plan.ordered(state):
            if not change.changed:
                continue
            what = f"{change.action} {change.label}"
            if change.action == "deleted":
                self.api.delete(change.path, what)
            elif change.action == "created":
                try:
                    self.api.create(change.path, change.body or {}, what)
                except KubeApiError as exc:
                    if exc.status != 409:
                        raise
                    merged = self._created_meanwhile(change, what, exc)
                    if merged is not None:
                        self.api.patch(merged[0], merged[1], what)
            else:
                self.api.patch(change.path, change.body or {}, what)


def pods_digest(pods: list[dict[str, Any]]) -> str:
    """Which pods a restart was for: the same pods give the same value (never restarted twice), new ones another."""
    uids = sorted(str(dig(pod, "metadata", "uid") or dig(pod, "metadata", "name")) for pod in pods)
    return hashlib.sha256("\n".join(uids).encode()).hexdigest()[:16]


def restart_note(controllers: list[Change], drifted: list[dict[str, Any]]) -> str:
    """What happens to the pods of a ServiceAccount whose client id changes, from what the plan does (never a restart
    that does not happen)."""
    restarting = [c for c in controllers if c.changed and c.before != c.after and c.kind != "Job"]
    if restarting:
        # Each controller's note says what its pods do (a rolling restart, a CronJob's next run, OnDelete).
        how = [f"{c.kind} {c.name} ({(c.note or '').split('; ', 1)[-1]})" for c in restarting]
        return "its controllers' pods get it: " + ", ".join(how)
    if drifted:
        names = ", ".join(sorted(str(dig(p, "metadata", "name")) for p in drifted))
        return f"pods {names} carry another client id and no listed controller restarts them: restart them"
    return "no pod was made with the old one"
