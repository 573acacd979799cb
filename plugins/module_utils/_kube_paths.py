# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): where the Kubernetes side's objects live, what of them it
owns (the webhook's annotations and label), and how a planned merge patch is predicted."""

from __future__ import annotations

from typing import Any

from ._kube_client import KubeClient
from ._kube_patch import dig, merge_patch
from ._kube_plan import Change
from ._ownership_kube import RESTARTED_FOR_ANNOTATION, TEMPLATE_CLIENT_ID_ANNOTATION

# The webhook's contract: the annotations it reads from a ServiceAccount and the label it selects pods by.
CLIENT_ID = "azure.workload.identity/client-id"
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


def sa_view(sa: dict[str, Any] | None) -> dict[str, Any] | None:
    if sa is None:
        return None
    meta = sa.get("metadata") or {}
    return {"annotations": meta.get("annotations") or {}, "labels": meta.get("labels") or {}}


def template_view(kind: str, obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    template = dig(obj, *CONTROLLERS[kind][2]) or {}
    annotations = dig(template, "metadata", "annotations") or {}
    client_id = annotations.get(TEMPLATE_CLIENT_ID_ANNOTATION)
    restarted_for = annotations.get(RESTARTED_FOR_ANNOTATION)
    return {
        "serviceAccountName": dig(template, "spec", "serviceAccountName"),
        "labels": dig(template, "metadata", "labels") or {},
        # What its pods were made for, once this collection recorded it; which drifted pods it restarted.
        **({"client_id": client_id} if client_id else {}),
        **({"restarted_for": restarted_for} if restarted_for else {}),
    }


def pod_client_id(pod: dict[str, Any]) -> str | None:
    """The client id the webhook injected into a pod (``AZURE_CLIENT_ID`` of its first container that has one)."""
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for env in container.get("env") or []:
            if env.get("name") == "AZURE_CLIENT_ID" and env.get("value"):
                return str(env["value"])
    return None


def patch_change(change: Change, current: dict[str, Any], patch: dict[str, Any], view: Any) -> Change:
    """Plan a merge patch: the prediction is the patch applied to what was read."""
    predicted = merge_patch(current, patch)
    change.before, change.after = view(current), view(predicted)
    change.action = "updated" if predicted != current else "unchanged"
    change.body = patch if predicted != current else None
    return change
