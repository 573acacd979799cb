# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what a cluster already has, read for discovery.

Read only, and a fixed number of requests whatever the cluster holds: every ServiceAccount (one list), every pod
controller of each kind (one list per kind), and AAD Pod Identity's ``AzureIdentity`` and ``AzureIdentityBinding``
objects (one list each; a cluster without their CRDs answers 404 and has none).

- A ServiceAccount annotated with ``azure.workload.identity/client-id`` is bound, whoever bound it; the controllers
  whose pod templates run as it are its controllers.
- An ``AzureIdentityBinding`` gives pods labelled ``aadpodidbinding: <selector>`` the ``AzureIdentity`` it names (in
  the binding's namespace); the controllers whose pod templates carry that label are the ones to migrate.
Controllers owned by another (a CronJob's Jobs) are left out: their owner is the one to bind.
"""

from __future__ import annotations

from typing import Any

from ._errors import KubeApiError
from ._kube_client import KubeClient
from ._kube_patch import dig
from ._kube_paths import CLIENT_ID, CONTROLLERS, TENANT_ID, TOKEN_EXPIRATION, USE_LABEL, Paths
from ._ownership_kube import CLUSTER_LABEL, kube_workload
from ._results import BoundAccount, KubeEstate, PodIdentityBinding, SeenController

POD_IDENTITY_API = "/apis/aadpodidentity.k8s.io/v1"
POD_IDENTITY_LABEL = "aadpodidbinding"
# AzureIdentity.spec.type: what kind of Azure identity it names.
POD_IDENTITY_TYPES = {0: "user_assigned", 1: "service_principal", 2: "service_principal_certificate"}


def discover(client: KubeClient) -> KubeEstate:
    controllers = _controllers(client)
    by_account: dict[tuple[str, str], list[SeenController]] = {}
    for seen, _labels in controllers:
        by_account.setdefault((seen["namespace"], seen["service_account"]), []).append(seen)
    accounts: list[BoundAccount] = []
    for sa in client.list("/api/v1/serviceaccounts", "list service accounts"):
        meta = sa.get("metadata") or {}
        annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        if not annotations.get(CLIENT_ID):
            continue
        namespace, name = meta["namespace"], meta["name"]
        accounts.append(
            {
                "namespace": namespace,
                "service_account": name,
                "client_id": str(annotations[CLIENT_ID]),
                "tenant_id": annotations.get(TENANT_ID),
                "token_expiration": annotations.get(TOKEN_EXPIRATION),
                "workload": kube_workload(labels),
                "cluster": labels.get(CLUSTER_LABEL),
                "controllers": by_account.get((namespace, name), []),
            }
        )
    bindings, unbound = _pod_identity(client, controllers)
    accounts.sort(key=lambda a: (a["namespace"], a["service_account"]))
    return {
        "service_accounts": accounts,
        "pod_identity": bindings,
        "unbound_pod_identity_controllers": unbound,
        "requests": client.requests,
    }


def _controllers(client: KubeClient) -> list[tuple[SeenController, dict[str, str]]]:
    """Every top-level pod controller, with its pod template's labels."""
    paths = Paths(client)
    found: list[tuple[SeenController, dict[str, str]]] = []
    for kind, (_group, _plural, template_path) in CONTROLLERS.items():
        for obj in client.list(paths.controller(kind, None), f"list {kind}s"):
            meta = obj.get("metadata") or {}
            if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
                continue
            template = dig(obj, *template_path) or {}
            labels = dig(template, "metadata", "labels") or {}
            seen: SeenController = {
                "namespace": meta["namespace"],
                "kind": kind,
                "name": meta["name"],
                "service_account": dig(template, "spec", "serviceAccountName") or "default",
                "use_label": labels.get(USE_LABEL) == "true",
            }
            found.append((seen, labels))
    found.sort(key=lambda item: (item[0]["namespace"], item[0]["kind"], item[0]["name"]))
    return found


def _list_if_served(client: KubeClient, path: str, operation: str) -> list[dict[str, Any]]:
    """A list of objects whose CRD may not be installed (then there are none)."""
    try:
        return client.list(path, operation)
    except KubeApiError as exc:
        if exc.status == 404:
            return []
        raise


def _pod_identity(
    client: KubeClient, controllers: list[tuple[SeenController, dict[str, str]]]
) -> tuple[list[PodIdentityBinding], list[SeenController]]:
    identities = {
        (obj["metadata"]["namespace"], obj["metadata"]["name"]): obj.get("spec") or {}
        for obj in _list_if_served(client, f"{POD_IDENTITY_API}/azureidentities", "list AzureIdentities")
    }
    raw_bindings = _list_if_served(client, f"{POD_IDENTITY_API}/azureidentitybindings", "list AzureIdentityBindings")
    labelled = [(seen, labels[POD_IDENTITY_LABEL]) for seen, labels in controllers if labels.get(POD_IDENTITY_LABEL)]
    bindings: list[PodIdentityBinding] = []
    selectors: set[str] = set()
    for obj in raw_bindings:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        selector, identity_name = str(spec.get("selector") or ""), str(spec.get("azureIdentity") or "")
        selectors.add(selector)
        identity = identities.get((meta["namespace"], identity_name))
        kind = (identity or {}).get("type")
        bindings.append(
            {
                "namespace": meta["namespace"],
                "name": meta["name"],
                "selector": selector,
                "identity": identity_name,
                "identity_type": POD_IDENTITY_TYPES.get(int(kind), str(kind))
                if identity and kind is not None
                else None,
                "resource_id": identity.get("resourceID") if identity else None,
                "client_id": identity.get("clientID") if identity else None,
                # Without --forceNamespaced (the default), a binding serves matching pods in every namespace.
                "controllers": [seen for seen, label in labelled if label == selector],
            }
        )
    bindings.sort(key=lambda b: (b["namespace"], b["name"]))
    unbound = [seen for seen, label in labelled if label not in selectors]
    return bindings, unbound
