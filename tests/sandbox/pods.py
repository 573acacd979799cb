"""Pods as a workload sees them: what the workload-identity webhook injected, and the kubelet's token.

No kubelet runs in the sandbox, so nothing writes the projected token file into a container. What the
kubelet would do is one TokenRequest for the pod's service account, with the audience and lifetime of
the projected volume the webhook added, bound to the pod; ``projected_token`` makes exactly that
request, so a test or the demo can sign in with what the pod would hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# Where webhook 1.6.0 mounts the token (pkg/webhook/consts.go of azure-workload-identity; releases before
# 1.6 used /var/run/secrets/azure/tokens/azure-identity-token: read pods by the injected variable, not this).
TOKEN_MOUNT = "/var/run/secrets/azure/wi"
TOKEN_FILE = f"{TOKEN_MOUNT}/token/azure-identity-token"
INJECTED_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")


@dataclass(frozen=True)
class Injected:
    """The webhook's mark on one pod (empty fields where it left the pod alone)."""

    env: dict[str, str]  # of the first container
    audience: str | None
    expiration_seconds: int | None
    mounted_at: str | None

    @property
    def mutated(self) -> bool:
        return self.audience is not None


def injected(pod: Any) -> Injected:
    """Read a pod (kubernetes client model) for what the webhook added."""
    container = pod.spec.containers[0]
    env = {e.name: e.value for e in container.env or [] if e.name in INJECTED_ENV}
    token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
    volumes = {v.name: v for v in pod.spec.volumes or [] if v.projected is not None}
    for mount in container.volume_mounts or []:
        volume = volumes.get(mount.name)
        if volume is None or not token_file or not token_file.startswith(mount.mount_path.rstrip("/") + "/"):
            continue
        relative = token_file[len(mount.mount_path.rstrip("/")) + 1 :]
        for source in volume.projected.sources:
            token = source.service_account_token
            if token is not None and token.path == relative:
                return Injected(env, token.audience, token.expiration_seconds, mount.mount_path)
    return Injected(env, None, None, None)


def projected_token(core: Any, pod: Any) -> str:
    """The token the kubelet would write to the pod's AZURE_FEDERATED_TOKEN_FILE (a pod-bound TokenRequest)."""
    from kubernetes import client as k8s

    mark = injected(pod)
    if not mark.mutated:
        raise ValueError(f"pod {pod.metadata.namespace}/{pod.metadata.name} has no projected Azure token")
    spec = k8s.V1TokenRequestSpec(
        audiences=[mark.audience],
        expiration_seconds=mark.expiration_seconds,
        bound_object_ref=k8s.V1BoundObjectReference(
            api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
        ),
    )
    issued = core.create_namespaced_service_account_token(
        pod.spec.service_account_name, pod.metadata.namespace, k8s.AuthenticationV1TokenRequest(spec=spec)
    )
    return str(issued.status.token)


def newest_pods(core: Any, apps: Any, namespace: str, deployment: str, timeout: float = 60) -> list[Any]:
    """The pods of the Deployment's newest ReplicaSet, once its controller has made them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        selector = apps.read_namespaced_deployment(deployment, namespace).spec.selector.match_labels
        sets = apps.list_namespaced_replica_set(namespace, label_selector=_selector(selector)).items
        owned = [s for s in sets if any(o.name == deployment for o in s.metadata.owner_references or [])]
        if owned:
            newest = max(owned, key=lambda s: int(s.metadata.annotations["deployment.kubernetes.io/revision"]))
            pods = [
                p
                for p in core.list_namespaced_pod(namespace, label_selector=_selector(selector)).items
                if any(o.uid == newest.metadata.uid for o in p.metadata.owner_references or [])
            ]
            if pods and len(pods) >= (newest.spec.replicas or 0):
                return pods
        time.sleep(0.25)
    raise TimeoutError(f"no pods for the newest ReplicaSet of {namespace}/{deployment} after {timeout:.0f} s")


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
