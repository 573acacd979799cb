"""_kube_bindings: the Kubernetes side's plan and its application, on a fake client (no API server).

The fake keeps objects by path and applies merge patches as the API server does, so what check mode
predicts and what a real run leaves can be compared; the real API server is the integration tests'.
"""

from __future__ import annotations

import copy
import fnmatch
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import KubeApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_bindings import Bindings
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_client import KubeClient
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_patch import merge_patch
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_paths import CLIENT_ID, TENANT_ID, USE_LABEL
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_plan import report
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership_kube import (
    ADOPTED_ANNOTATION,
    MANAGED_BY_LABEL,
    PREVIOUS_ACCOUNT_ANNOTATION,
    WORKLOAD_LABEL,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership_kube import (
    RESTARTED_FOR_ANNOTATION as RESTARTED_FOR,
)

CLUSTER = "aks-dev"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def served(*resources: tuple[str, str, bool]) -> dict[str, Any]:
    """A discovery document: (plural, kind, namespaced) each, with the verbs a built-in kind has."""
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return {
        "resources": [
            {"name": n, "kind": k, "namespaced": ns, "verbs": ["get", "patch"] if "/" in n else verbs}
            for n, k, ns in resources
        ]
    }


def without_empty_maps(obj: Any) -> Any:
    """As the API server answers: an object's labels and annotations emptied by a patch are left out (omitempty)."""
    if not isinstance(obj, dict):
        return obj
    return {
        k: without_empty_maps(v)
        for k, v in obj.items()
        if not (k in ("labels", "annotations") and isinstance(v, dict) and not v)
    }


class FakeCluster(KubeClient):
    def __init__(self) -> None:
        super().__init__(api_client=None)
        self.objects: dict[str, dict[str, Any]] = {
            # Discovery, as an API server serves it (subresources and cluster-scoped kinds included).
            "/api/v1": served(
                ("namespaces", "Namespace", False),
                ("serviceaccounts", "ServiceAccount", True),
                ("serviceaccounts/token", "TokenRequest", True),
                ("configmaps", "ConfigMap", True),
                ("secrets", "Secret", True),
                ("persistentvolumeclaims", "PersistentVolumeClaim", True),
                ("pods", "Pod", True),
                ("events", "Event", True),
            ),
            "/apis": {
                "groups": [
                    {"name": "apps", "preferredVersion": {"groupVersion": "apps/v1"}},
                    {"name": "batch", "preferredVersion": {"groupVersion": "batch/v1"}},
                ]
            },
            "/apis/apps/v1": served(
                ("deployments", "Deployment", True),
                ("deployments/scale", "Scale", True),
                ("statefulsets", "StatefulSet", True),
                ("daemonsets", "DaemonSet", True),
            ),
            "/apis/batch/v1": served(("jobs", "Job", True), ("cronjobs", "CronJob", True)),
        }
        self.writes: list[tuple[str, str]] = []
        self.limits: list[int | None] = []

    def get(self, path: str, operation: str) -> dict[str, Any] | None:
        self.requests += 1
        found = self.objects.get(path)
        return copy.deepcopy(found) if found is not None else None

    def list(
        self, path: str, operation: str, selector: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        self.requests += 1
        self.limits.append(limit)
        wanted = dict(pair.split("=", 1) for pair in selector.split(",")) if selector else {}
        if "/namespaces/" not in path and not path.endswith("/namespaces"):  # all namespaces: /apis/apps/v1/deployments
            prefix, plural = path.rsplit("/", 1)
            pattern = f"{prefix}/namespaces/*/{plural}/*"
        else:
            pattern = f"{path}/*"
        items = [
            o for p, o in self.objects.items() if fnmatch.fnmatch(p, pattern) and p.count("/") == pattern.count("/")
        ]

        def labels(obj: dict[str, Any]) -> dict[str, str]:
            return obj["metadata"].get("labels") or {}

        found = sorted(
            (copy.deepcopy(o) for o in items if all(labels(o).get(k) == v for k, v in wanted.items())),
            key=lambda o: str(o["metadata"]["name"]),
        )
        return found[:limit] if limit else found

    def create(self, path: str, body: dict[str, Any], operation: str) -> None:
        self.writes.append(("create", operation))
        self.objects[f"{path}/{body['metadata']['name']}"] = copy.deepcopy(body)

    def patch(self, path: str, body: dict[str, Any], operation: str) -> None:
        self.writes.append(("patch", operation))
        self.objects[path] = without_empty_maps(merge_patch(self.objects[path], body))

    def delete(self, path: str, operation: str) -> None:
        self.writes.append(("delete", operation))
        self.objects.pop(path, None)

    def add(self, path: str, obj: dict[str, Any]) -> None:
        self.objects[path] = obj


def deployment(namespace: str, name: str, account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app:1"}]}
    if account:
        spec["serviceAccountName"] = account
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


def cluster_with_shop() -> FakeCluster:
    cluster = FakeCluster()
    cluster.add("/api/v1/namespaces/shop", {"metadata": {"name": "shop"}})
    cluster.add("/apis/apps/v1/namespaces/shop/deployments/orders", deployment("shop", "orders", "legacy"))
    cluster.add(
        "/api/v1/namespaces/shop/serviceaccounts/orders",
        {"metadata": {"name": "orders", "namespace": "shop", "annotations": {"team": "shop"}}},
    )
    return cluster


def specs(*workloads: dict[str, Any]) -> Any:
    validated = validate_workloads(
        CLUSTER,
        list(workloads),
        identity_resource_group=None,
        allow_privileged_roles=True,
        identity_group_required=False,
    )
    assert validated.problems == []
    return validated.specs


ORDERS = {
    "name": "orders",
    "namespace": "shop",
    "service_account": "orders",
    "controllers": [{"kind": "Deployment", "name": "orders"}],
}
CART = {"name": "cart", "namespace": "cart", "service_account": "cart"}


def test_plan_is_exactly_what_the_apply_leaves_and_only_owned_fields_change() -> None:
    cluster = cluster_with_shop()
    engine = Bindings(cluster, CLUSTER, TENANT)
    before = copy.deepcopy(cluster.objects)
    plan = engine.plan_present(
        specs(ORDERS, CART), {"orders": "c-orders", "cart": "c-cart"}, prune=False, missing="fail"
    )
    assert cluster.writes == [] and plan.problems == []
    engine.apply(plan, "present")
    # Namespace first, then accounts, then controllers.
    assert [w[1] for w in cluster.writes] == [
        "created Namespace cart",
        "adopted ServiceAccount shop/orders",  # it existed: adopted (nothing of ours on it to record)
        "created ServiceAccount cart/cart",
        "bound Deployment shop/orders",
    ]
    bound = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]
    for change in plan.controllers:
        assert change.after == {
            "serviceAccountName": "orders",
            "labels": {"app": "orders", USE_LABEL: "true"},
            "client_id": "c-orders",  # what its pods are made for: a new one restarts them
        }
    assert (
        bound["spec"]["replicas"] == 2
        and bound["spec"]["template"]["spec"]["containers"]
        == before["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]["spec"]["containers"]
    )
    assert bound["metadata"]["annotations"][PREVIOUS_ACCOUNT_ANNOTATION] == "legacy"
    account = cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"]
    assert account["annotations"] == {
        "team": "shop",
        CLIENT_ID: "c-orders",
        "azure.workload.identity/tenant-id": TENANT,
    }
    assert MANAGED_BY_LABEL not in account["labels"]  # annotated, not created: never ours to delete
    again = engine.plan_present(
        specs(ORDERS, CART), {"orders": "c-orders", "cart": "c-cart"}, prune=False, missing="fail"
    )
    assert not report(again)["changed"]


def test_every_missing_controller_is_found_before_any_write() -> None:
    cluster = cluster_with_shop()
    ghost = {**CART, "controllers": [{"kind": "Deployment", "name": "ghost"}, {"kind": "CronJob", "name": "nightly"}]}
    plan = Bindings(cluster, CLUSTER, TENANT).plan_present(specs(ORDERS, ghost), {}, prune=False, missing="fail")
    assert plan.problems == [
        "cluster aks-dev: workload 'cart': controllers: Deployment cart/ghost does not exist",
        "cluster aks-dev: workload 'cart': controllers: CronJob cart/nightly does not exist",
    ]
    assert cluster.writes == []
    warned = Bindings(cluster, CLUSTER, TENANT).plan_present(specs(ORDERS, ghost), {}, prune=False, missing="warn")
    assert warned.problems == [] and len(warned.warnings) == 2


def test_release_restores_what_was_there_and_deletes_only_what_it_created() -> None:
    cluster = cluster_with_shop()
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(ORDERS, CART), {"orders": "c1", "cart": "c2"}, False, "fail"), "present")
    cluster.writes.clear()
    plan = engine.plan_absent(specs(ORDERS, CART), everything=False)
    engine.apply(plan, "absent")
    deployment_now = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]
    # Exactly as its team wrote it.
    assert deployment_now == deployment("shop", "orders", "legacy")
    assert cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"] == {
        "name": "orders",
        "namespace": "shop",
        "annotations": {"team": "shop"},
    }
    assert "/api/v1/namespaces/cart/serviceaccounts/cart" not in cluster.objects  # created by us: deleted
    assert "/api/v1/namespaces/cart" not in cluster.objects  # created by us and now empty
    assert [w[1] for w in cluster.writes][0] == "unbound Deployment shop/orders"  # controllers first


def test_prune_releases_workloads_no_longer_listed() -> None:
    cluster = cluster_with_shop()
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(ORDERS, CART), {"orders": "c1", "cart": "c2"}, False, "fail"), "present")
    plan = engine.plan_present(specs(CART), {"cart": "c2"}, prune=True, missing="fail")
    released = {
        (c.kind, c.name, c.action) for c in [*plan.service_accounts, *plan.controllers] if c.workload == "orders"
    }
    # The ServiceAccount existed before (it was only annotated): it loses our marks instead of being deleted.
    assert released == {("Deployment", "orders", "unbound"), ("ServiceAccount", "orders", "released")}
    engine.apply(plan, "present")
    labels = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]["metadata"]["labels"]
    assert WORKLOAD_LABEL not in labels


def walkthrough_cluster() -> FakeCluster:
    """What the managed-identity walkthrough leaves: an annotated account, a Deployment already bound to it."""
    cluster = FakeCluster()
    cluster.add("/api/v1/namespaces/shop", {"metadata": {"name": "shop"}})
    bound = deployment("shop", "orders", "orders")
    bound["spec"]["template"]["metadata"]["labels"][USE_LABEL] = "true"
    cluster.add("/apis/apps/v1/namespaces/shop/deployments/orders", bound)
    annotations = {"team": "shop", CLIENT_ID: "c-by-hand"}
    cluster.add(
        "/api/v1/namespaces/shop/serviceaccounts/orders",
        {"metadata": {"name": "orders", "namespace": "shop", "annotations": annotations}},
    )
    return cluster


def test_what_an_operator_bound_by_hand_is_adopted_recorded_and_given_back_as_it_was() -> None:
    cluster = walkthrough_cluster()
    before = copy.deepcopy(cluster.objects)
    engine = Bindings(cluster, CLUSTER, TENANT)
    plan = engine.plan_present(specs(ORDERS), {"orders": "c-by-hand"}, prune=False, missing="fail")
    assert [(c.kind, c.action) for c in [*plan.service_accounts, *plan.controllers]] == [
        ("ServiceAccount", "adopted"),
        ("Deployment", "adopted"),  # already bound: only our marks are added, its pods are not restarted
    ]
    engine.apply(plan, "present")
    template = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]
    assert template == before["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]
    account = cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"]["annotations"]
    assert account[ADOPTED_ANNOTATION] == '{"annotations":{"azure.workload.identity/client-id":"c-by-hand"}}'
    controller = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]["metadata"]["annotations"]
    assert controller[ADOPTED_ANNOTATION] == '{"pod-template-labels":{"azure.workload.identity/use":"true"}}'
    # The record is written once: the next run changes nothing.
    again = engine.plan_present(specs(ORDERS), {"orders": "c-by-hand"}, prune=False, missing="fail")
    assert not report(again)["changed"]
    # Teardown gives back exactly what was there: the client id and the label stay, the pod template is untouched.
    engine.apply(engine.plan_absent(specs(ORDERS), everything=False), "absent")
    now = cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"]
    assert now["annotations"] == {"team": "shop", CLIENT_ID: "c-by-hand"} and TENANT_ID not in now["annotations"]
    assert "labels" not in now
    controller_now = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]
    assert (
        controller_now["spec"]["template"]
        == before["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]
    )
    assert "annotations" not in controller_now["metadata"]


def test_an_adoption_record_edited_into_nonsense_restores_nothing_rather_than_guessing() -> None:
    cluster = walkthrough_cluster()
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(ORDERS), {"orders": "c-new"}, False, "fail"), "present")
    path = "/api/v1/namespaces/shop/serviceaccounts/orders"
    cluster.objects[path]["metadata"]["annotations"][ADOPTED_ANNOTATION] = "not json"
    engine.apply(engine.plan_absent(specs(ORDERS), everything=False), "absent")
    assert cluster.objects[path]["metadata"]["annotations"] == {"team": "shop"}


def test_an_account_bound_by_hand_to_another_client_id_is_refused_unless_rebind() -> None:
    cluster = walkthrough_cluster()  # the account names c-by-hand
    engine = Bindings(cluster, CLUSTER, TENANT)
    refused = engine.plan_present(specs(ORDERS), {"orders": "c-new"}, prune=False, missing="fail")
    assert refused.problems == [
        "cluster aks-dev: workload 'orders': service_account: shop/orders is bound to client id c-by-hand, not client "
        "id c-new; to keep that identity, set identity_name (and identity_resource_group) to it and it is adopted; to "
        "move the account to this workload's identity, set rebind: true"
    ]
    # Before the identity exists (a plan in check mode) the same account is refused too.
    assert (
        "not the new identity id-aks-dev-shop-orders"
        in engine.plan_present(specs(ORDERS), {}, False, "fail").problems[0]
    )
    moved = engine.plan_present(specs({**ORDERS, "rebind": True}), {"orders": "c-new"}, prune=False, missing="fail")
    assert moved.problems == []
    engine.apply(moved, "present")
    path = "/api/v1/namespaces/shop/serviceaccounts/orders"
    assert cluster.objects[path]["metadata"]["annotations"][CLIENT_ID] == "c-new"
    # Once it is this collection's, later runs may change it without rebind (e.g. a new identity).
    assert engine.plan_present(specs(ORDERS), {"orders": "c-newer"}, False, "fail").problems == []
    engine.apply(engine.plan_absent(specs(ORDERS), everything=False), "absent")
    assert cluster.objects[path]["metadata"]["annotations"][CLIENT_ID] == "c-by-hand"  # given back


def test_a_namespace_it_created_goes_only_when_nothing_but_its_own_is_left_in_it() -> None:
    """Every namespaced kind discovery serves is looked at: a team's PVC, Secret or a Deployment scaled to 0 (only
    unbound by teardown, never deleted) keeps the namespace; what Kubernetes puts in every namespace does not."""
    cluster = FakeCluster()
    engine = Bindings(cluster, CLUSTER, TENANT)
    billing = {
        "name": "billing",
        "namespace": "billing",
        "service_account": "billing",
        "controllers": [{"kind": "Deployment", "name": "billing"}],
    }
    engine.apply(engine.plan_present(specs(CART, billing), {"cart": "c1", "billing": "c2"}, False, "warn"), "present")
    for namespace in ("cart", "billing"):  # what the API server makes in every namespace
        cluster.add(f"/api/v1/namespaces/{namespace}/serviceaccounts/default", {"metadata": {"name": "default"}})
        cluster.add(
            f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt", {"metadata": {"name": "kube-root-ca.crt"}}
        )
        cluster.add(f"/api/v1/namespaces/{namespace}/events/e1", {"metadata": {"name": "e1"}})
    scaled_to_zero = {**deployment("billing", "billing", "billing"), "spec": {"replicas": 0, "template": {"spec": {}}}}
    cluster.add("/apis/apps/v1/namespaces/billing/deployments/billing", scaled_to_zero)
    cluster.add("/api/v1/namespaces/billing/persistentvolumeclaims/ledger", {"metadata": {"name": "ledger"}})
    cluster.add("/api/v1/namespaces/billing/secrets/db", {"metadata": {"name": "db"}})
    plan = engine.plan_absent(specs(CART, billing), everything=False)
    by_name = {c.name: c for c in plan.namespaces}
    assert by_name["cart"].action == "deleted"
    assert by_name["billing"].action == "kept"
    assert by_name["billing"].note == "still holds Secret db, PersistentVolumeClaim ledger, Deployment billing"
    # Each kind listed with a limit: one more than the names it may skip (the automatic ones, the deleted account).
    assert max(limit or 0 for limit in cluster.limits) == 3


def test_a_namespace_being_deleted_is_a_problem_found_by_the_plan() -> None:
    cluster = FakeCluster()
    cluster.add("/api/v1/namespaces/cart", {"metadata": {"name": "cart", "deletionTimestamp": "2026-12-01T10:00:00Z"}})
    plan = Bindings(cluster, CLUSTER, TENANT).plan_present(specs(CART), {"cart": "c1"}, False, "fail")
    assert plan.problems == [
        f"cluster {CLUSTER}: workload 'cart': namespace: cart is being deleted (Terminating); wait until it is gone "
        "(the next run creates it again) or move the workload to another namespace"
    ]
    assert cluster.writes == []


def test_the_plan_says_what_binding_does_to_the_pods() -> None:
    cluster = cluster_with_shop()
    on_delete = {
        "metadata": {"name": "ledger", "namespace": "shop", "labels": {"app": "ledger"}},
        "spec": {"updateStrategy": {"type": "OnDelete"}, "template": {"metadata": {}, "spec": {"containers": []}}},
    }
    cluster.add("/apis/apps/v1/namespaces/shop/statefulsets/ledger", on_delete)
    ledger = {
        "name": "ledger",
        "namespace": "shop",
        "service_account": "ledger",
        "controllers": [{"kind": "StatefulSet", "name": "ledger"}],
    }
    plan = Bindings(cluster, CLUSTER, TENANT).plan_present(specs(ORDERS, ledger), {}, False, "fail")
    notes = {c.name: (c.action, c.note) for c in plan.controllers}
    assert notes == {
        # Its team had it run as "legacy": the plan says whose place the workload's account takes.
        "orders": ("bound", "replaces ServiceAccount legacy; its pods restart (rolling update)"),
        "ledger": ("bound", "updateStrategy OnDelete: its pods keep the old template until deleted; restart them"),
    }


def test_a_new_client_id_restarts_the_bound_pods_and_the_plan_says_so() -> None:
    cluster = cluster_with_shop()
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail"), "present")
    assert not report(engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail"))["changed"]
    plan = engine.plan_present(specs(ORDERS), {"orders": "c2"}, False, "fail")
    (account,) = plan.service_accounts
    assert account.note == (
        "client id changes from c1 to c2: its controllers' pods get it: Deployment orders (its pods restart (rolling "
        "update))"
    )
    (controller,) = plan.controllers
    assert controller.action == "bound" and controller.note == "client id changes; its pods restart (rolling update)"
    assert (controller.before["client_id"], controller.after["client_id"]) == ("c1", "c2")
    engine.apply(plan, "present")
    template = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]
    assert template["metadata"]["annotations"]["workload-identity.aks/client-id"] == "c2"
    assert not report(engine.plan_present(specs(ORDERS), {"orders": "c2"}, False, "fail"))["changed"]


def _pod(name: str, client_id: str, account: str = "orders") -> dict[str, Any]:
    """A pod as the webhook left it: on the account, with the client id it injected."""
    return {
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": {USE_LABEL: "true"}},
        "spec": {
            "serviceAccountName": account,
            "containers": [{"env": [{"name": "AZURE_CLIENT_ID", "value": client_id}]}],
        },
    }


def test_a_repaired_client_id_restarts_the_pods_made_while_it_was_wrong_once() -> None:
    cluster = cluster_with_shop()
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail"), "present")
    account_path = "/api/v1/namespaces/shop/serviceaccounts/orders"
    # An operator sets a wrong client id by hand; a pod restarts meanwhile and is given it.
    cluster.objects[account_path]["metadata"]["annotations"][CLIENT_ID] = "c-wrong"
    cluster.add("/api/v1/namespaces/shop/pods/orders-1", _pod("orders-1", "c1"))
    cluster.add("/api/v1/namespaces/shop/pods/orders-2", _pod("orders-2", "c-wrong"))
    cluster.add("/api/v1/namespaces/shop/pods/other-1", _pod("other-1", "c-wrong", account="other"))
    plan = engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail")
    (account,) = plan.service_accounts
    (controller,) = plan.controllers
    assert controller.action == "bound"
    assert controller.note == "1 pod(s) made with a wrong client id; its pods restart (rolling update)"
    assert account.note == (
        "client id changes from c-wrong to c1: its controllers' pods get it: Deployment orders (its pods restart "
        "(rolling update))"
    )
    engine.apply(plan, "present")
    template = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]
    assert set(template["metadata"]["annotations"]) == {"workload-identity.aks/client-id", RESTARTED_FOR}
    # The same pods are never restarted for twice (a pod still there, say while its rollout goes on).
    assert not report(engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail"))["changed"]
    # Teardown takes the mark with the binding.
    engine.apply(engine.plan_absent(specs(ORDERS), everything=False), "absent")
    template = cluster.objects["/apis/apps/v1/namespaces/shop/deployments/orders"]["spec"]["template"]
    assert RESTARTED_FOR not in (template["metadata"].get("annotations") or {})


def test_a_repaired_client_id_with_no_pod_made_meanwhile_restarts_nothing_and_says_so() -> None:
    cluster = cluster_with_shop()
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail"), "present")
    cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"]["annotations"][CLIENT_ID] = "c-x"
    cluster.add("/api/v1/namespaces/shop/pods/orders-1", _pod("orders-1", "c1"))
    plan = engine.plan_present(specs(ORDERS), {"orders": "c1"}, False, "fail")
    assert [c.action for c in plan.controllers] == ["unchanged"]
    assert plan.service_accounts[0].note == "client id changes from c-x to c1: no pod was made with the old one"
    # Without a listed controller, the pods made with the wrong one are named.
    cluster.add("/api/v1/namespaces/shop/pods/orders-2", _pod("orders-2", "c-x"))
    bare = engine.plan_present(specs({**ORDERS, "controllers": []}), {"orders": "c1"}, False, "fail")
    assert bare.service_accounts[0].note == (
        "client id changes from c-x to c1: pods orders-2 carry another client id and no listed controller restarts "
        "them: restart them"
    )


def test_a_hand_bound_account_moved_to_this_identity_says_whose_it_was_and_restarts_its_pods() -> None:
    cluster = walkthrough_cluster()
    engine = Bindings(cluster, CLUSTER, TENANT)
    plan = engine.plan_present(specs({**ORDERS, "rebind": True}), {"orders": "c-new"}, prune=False, missing="fail")
    (account,) = plan.service_accounts
    assert account.action == "adopted" and account.note == (
        "client id changes from c-by-hand (set by hand; teardown puts it back) to c-new: its controllers' pods get "
        "it: Deployment orders (its pods restart (rolling update))"
    )
    (controller,) = plan.controllers
    # Already bound by hand, but its pods were made for the old client id: they must restart.
    assert controller.action == "bound" and controller.note.startswith("client id changes; ")
    engine.apply(plan, "present")
    engine.apply(engine.plan_absent(specs(ORDERS), everything=False), "absent")
    annotations = cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"]["annotations"]
    assert annotations == {"team": "shop", CLIENT_ID: "c-by-hand"}


def test_with_rebind_warn_a_hand_bound_account_is_moved_with_a_warning_naming_the_client_id_it_had() -> None:
    cluster = walkthrough_cluster()
    engine = Bindings(cluster, CLUSTER, TENANT)
    refused = engine.plan_present(specs(ORDERS), {"orders": "c-new"}, prune=False, missing="fail")
    assert refused.problems and not refused.warnings
    plan = engine.plan_present(specs(ORDERS), {"orders": "c-new"}, prune=False, missing="fail", rebind="warn")
    assert plan.problems == []
    assert plan.warnings == [
        "cluster aks-dev: workload 'orders': service_account: shop/orders was bound by hand to client id c-by-hand; "
        "moved to this workload's identity (workload_identity_rebind is warn): its pods sign in as the new one once "
        "restarted, and teardown puts c-by-hand back"
    ]
    engine.apply(plan, "present")
    engine.apply(engine.plan_absent(specs(ORDERS), everything=False), "absent")
    annotations = cluster.objects["/api/v1/namespaces/shop/serviceaccounts/orders"]["metadata"]["annotations"]
    assert annotations == {"team": "shop", CLIENT_ID: "c-by-hand"}


class RacedCluster(FakeCluster):
    """Another writer creates each object between this run's plan and its create (two runs at once, or a person)."""

    def __init__(self, made_by: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.made_by = made_by

    def create(self, path: str, body: dict[str, Any], operation: str) -> None:
        name = f"{path}/{body['metadata']['name']}"
        if name in self.made_by:
            self.objects[name] = self.made_by.pop(name)
            raise KubeApiError("already exists", status=409, code="AlreadyExists", operation=operation)
        super().create(path, body, operation)


def test_an_object_another_run_created_meanwhile_is_merged_and_a_strangers_is_a_conflict() -> None:
    engine_plan = Bindings(FakeCluster(), CLUSTER, TENANT).plan_present(specs(CART), {"cart": "c-cart"}, False, "fail")
    created = {c.path + "/" + c.body["metadata"]["name"]: c.body for c in engine_plan.ordered("present") if c.body}
    # The other run of this collection made the same objects, the account without the tenant yet.
    theirs = copy.deepcopy(created)
    del theirs["/api/v1/namespaces/cart/serviceaccounts/cart"]["metadata"]["annotations"][TENANT_ID]
    cluster = RacedCluster(theirs)
    engine = Bindings(cluster, CLUSTER, TENANT)
    engine.apply(engine.plan_present(specs(CART), {"cart": "c-cart"}, False, "fail"), "present")
    assert cluster.writes == [("patch", "created ServiceAccount cart/cart")]  # the namespace was already the same
    account = cluster.objects["/api/v1/namespaces/cart/serviceaccounts/cart"]["metadata"]
    assert account["annotations"][TENANT_ID] == TENANT and account["annotations"][CLIENT_ID] == "c-cart"
    # Made by someone else (without this collection's marks): not taken over; the conflict stops the run.
    stranger = {"/api/v1/namespaces/cart": {"metadata": {"name": "cart", "labels": {"team": "cart"}}}}
    cluster = RacedCluster(stranger)
    engine = Bindings(cluster, CLUSTER, TENANT)
    with pytest.raises(KubeApiError, match="already exists"):
        engine.apply(engine.plan_present(specs(CART), {"cart": "c-cart"}, False, "fail"), "present")


def test_the_plan_reads_a_namespaces_controllers_with_one_request_however_many_workloads_it_holds() -> None:
    def planned(count: int) -> tuple[int, list[str]]:
        cluster = cluster_with_shop()
        workloads = []
        for n in range(count):
            name = f"app-{n}"
            cluster.add(f"/apis/apps/v1/namespaces/shop/deployments/{name}", deployment("shop", name, "default"))
            workloads.append(
                {
                    "name": name,
                    "namespace": "shop",
                    "service_account": name,
                    "controllers": [{"kind": "Deployment", "name": name}],
                }
            )
        workloads.append({**ORDERS, "controllers": [*ORDERS["controllers"], {"kind": "Deployment", "name": "gone"}]})
        cluster.requests = 0
        plan = Bindings(cluster, CLUSTER, TENANT).plan_present(
            specs(*workloads), {w["name"]: f"c-{w['name']}" for w in workloads}, False, "warn"
        )
        missing = [c.name for c in plan.controllers if c.action == "missing"]
        return cluster.requests, missing

    # The namespace, its ServiceAccounts, its Deployments: three requests for 3 workloads or 30.
    assert planned(3) == planned(30) == (3, ["gone"])
