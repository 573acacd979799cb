# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the marks that say what this collection owns on Kubernetes
(``_ownership`` has Azure's).

Kubernetes objects it touches: the labels ``workload-identity.aks/cluster`` and ``workload-identity.aks/workload``;
those it creates also ``app.kubernetes.io/managed-by``; a bound controller keeps its previous service account in
``workload-identity.aks/previous-service-account``, and its pod template the client id its pods were made for in
``workload-identity.aks/client-id``. An object it adopts (one it did not create) records, the first time it touches
it, the values the fields it sets already had, in ``workload-identity.aks/adopted`` (JSON), so that unbinding puts
them back instead of removing them. An object it creates carries the format of these marks
(``workload-identity.aks/format``, ``_ownership.FORMAT_VERSION``; none on what 0.1.0 created: format 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ._ownership import COLLECTION, FORMAT_VERSION, written_format

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLUSTER_LABEL = "workload-identity.aks/cluster"
WORKLOAD_LABEL = "workload-identity.aks/workload"
PREVIOUS_ACCOUNT_ANNOTATION = "workload-identity.aks/previous-service-account"
# On a bound controller's pod template: the client id its pods were made for. A new client id changes the template, so
# the pods restart and sign in as the new identity (the webhook injects the client id only when a pod is created).
TEMPLATE_CLIENT_ID_ANNOTATION = "workload-identity.aks/client-id"
# On a bound controller's pod template, after its ServiceAccount's client id was repaired: which pods (a digest of their
# uids) were made with a wrong one while it was wrong. Changing it restarts them; the same pods never twice.
RESTARTED_FOR_ANNOTATION = "workload-identity.aks/restarted-for"
ADOPTED_ANNOTATION = "workload-identity.aks/adopted"
FORMAT_LABEL = "workload-identity.aks/format"


def adopted_record(place: str, before: Mapping[str, str | None]) -> str | None:
    """The annotation value recording the values that were there before (None: nothing to record)."""
    kept = {key: value for key, value in before.items() if value is not None}
    return json.dumps({place: kept}, sort_keys=True, separators=(",", ":")) if kept else None


def adopted_values(annotations: Mapping[str, str] | None, place: str) -> dict[str, str]:
    """What an adopted object's fields held before this collection touched them (empty if nothing)."""
    raw = (annotations or {}).get(ADOPTED_ANNOTATION)
    try:
        recorded = json.loads(raw) if raw else {}
    except ValueError:
        return {}  # edited by hand into something else: restore nothing rather than guess
    values = recorded.get(place) if isinstance(recorded, dict) else None
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def kube_marks(cluster: str, workload: str | None = None) -> dict[str, str]:
    """The labels of an object this collection touched (for a workload, when given)."""
    return {CLUSTER_LABEL: cluster, **({WORKLOAD_LABEL: workload} if workload else {})}


def kube_created_marks(cluster: str, workload: str | None = None) -> dict[str, str]:
    """The labels of an object this collection creates (and so may delete), the format of its marks included."""
    return {**kube_marks(cluster, workload), MANAGED_BY_LABEL: COLLECTION, FORMAT_LABEL: str(FORMAT_VERSION)}


def kube_format(labels: Mapping[str, str] | None) -> int | None:
    """The format of the marks of an object this collection created (None: it did not create it)."""
    return written_format((labels or {}).get(FORMAT_LABEL)) if kube_created_by_collection(labels) else None


def kube_marks_removed() -> dict[str, None]:
    """A merge patch's labels that take this collection's marks off an object it only touched."""
    return {CLUSTER_LABEL: None, WORKLOAD_LABEL: None}


def kube_created_by_collection(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED_BY_LABEL) == COLLECTION


def kube_workload(labels: Mapping[str, str] | None) -> str | None:
    """The workload this collection bound the object for, if it did."""
    return (labels or {}).get(WORKLOAD_LABEL)


def kube_cluster_selector(cluster: str, created_only: bool = False) -> str:
    """A label selector for what this collection touched (or created) on a cluster."""
    selector = f"{CLUSTER_LABEL}={cluster}"
    return f"{MANAGED_BY_LABEL}={COLLECTION},{selector}" if created_only else selector
