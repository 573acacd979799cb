"""AKS's Entra ID integration for the sandbox's API servers: the two webhooks AKS's guard serves.

Every kube-backed cluster's kube-apiserver is started with webhook token authentication and webhook
authorization pointing here (``/_guard/<issuer guid>/authenticate`` and ``/authorize``):

- **authenticate** (TokenReview): an Entra access token for the AKS server application
  (``6dae42f8-...``), signed by the sandbox's Entra key, unexpired, from this tenant, is the principal
  named by its ``oid``, with ``extra.oid``, as AKS's guard answers. Tokens are honoured only on clusters
  with managed Entra integration (``aadProfile``); elsewhere the answer is "not authenticated".
- **authorize** (SubjectAccessReview): on clusters with Azure RBAC for Kubernetes
  (``aadProfile.enableAzureRBAC``), an Entra principal's request is allowed when one of its role
  assignments at the cluster (or above), or at ``<cluster>/namespaces/<namespace>`` for a namespaced
  request, grants the request's data action (``Microsoft.ContainerService/managedClusters/<group>/
  <resource>/<read|write|delete>``), as guard maps it. Otherwise there is no opinion and Kubernetes RBAC
  decides (the API server runs RBAC first; a request neither allows is refused with guard's reason).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import jwt, rbac
from .core import ApiError, Context, Request, Response, Route

if TYPE_CHECKING:
    from .app import Sandbox

# The AKS AAD server application: the audience of the tokens kubelogin gets (the same in every cloud).
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# The Azure CLI's public client, which AKS names in the kubeconfig's kubelogin arguments.
AKS_CLIENT_APP_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
DATA_ACTION_PREFIX = "Microsoft.ContainerService/managedClusters"
# guard's verdicts, word for word: kube-apiserver appends the reason to its Forbidden message.
ACCESS_NOT_ALLOWED = "User does not have access to the resource in Azure. Update role assignment to allow access."
ACCESS_ALLOWED = "Access allowed by Azure RBAC"

_VERBS = {
    "get": "read",
    "list": "read",
    "watch": "read",
    "create": "write",
    "update": "write",
    "patch": "write",
    "delete": "delete",
    "deletecollection": "delete",
    "bind": "bind/action",
    "escalate": "escalate/action",
    "use": "use/action",
    "impersonate": "impersonate/action",
    "*": "*",
}


def data_action(spec: dict[str, Any]) -> str:
    """The Azure RBAC data action of a SubjectAccessReview spec, as guard names it."""
    resource = spec.get("resourceAttributes")
    if resource:
        name = str(resource.get("resource") or "")
        if name == "pods" and resource.get("subresource") == "exec":
            action = "pods/exec/action"
        else:
            action = f"{name}/{_VERBS.get(str(resource.get('verb') or ''), '')}"
        group = str(resource.get("group") or "")
        return "/".join(p for p in (DATA_ACTION_PREFIX, group, action) if p)
    other = spec.get("nonResourceAttributes") or {}
    path = str(other.get("path") or "").strip("/")
    return "/".join(p for p in (DATA_ACTION_PREFIX, path, _VERBS.get(str(other.get("verb") or ""), "")) if p)


class GuardApi:
    def __init__(self, app: Sandbox) -> None:
        self.app = app

    def route(self, request: Request, segs: list[str], low: list[str]) -> Route | None:
        if len(low) != 3 or low[0] != "_guard" or request.method != "POST":
            return None
        if low[2] == "authenticate":
            return Route("guard.authenticate", "guard", lambda c: self.authenticate(c, segs[1]))
        if low[2] == "authorize":
            return Route("guard.authorize", "guard", lambda c: self.authorize(c, segs[1]))
        return None

    def _cluster(self, issuer_guid: str) -> dict[str, Any]:
        for record in self.app.store.all("cluster").values():
            if record.get("issuer_guid") == issuer_guid:
                return record
        raise ApiError(404, "NotFound", f"No sandbox cluster with issuer {issuer_guid}.")

    def authenticate(self, ctx: Context, issuer_guid: str) -> Response:
        review = ctx.request.json_object()
        token = str((review.get("spec") or {}).get("token") or "")
        aad = self._cluster(issuer_guid)["body"]["properties"].get("aadProfile") or {}

        def answer(status: dict[str, Any]) -> Response:
            return Response(200, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})

        if not aad.get("managed"):
            return answer({"authenticated": False, "error": "the cluster has no Entra ID integration"})
        try:
            claims = jwt.verify(token, self.app._entra_key.public_key())
        except jwt.InvalidToken as exc:
            return answer({"authenticated": False, "error": f"invalid token: {exc}"})
        problem = None
        if float(claims.get("exp", 0)) < time.time():
            problem = "the token has expired"
        elif str(claims.get("aud", "")).lower() not in (AKS_SERVER_APP_ID, f"spn:{AKS_SERVER_APP_ID}"):
            problem = f"the token's audience {claims.get('aud')} is not the AKS server application {AKS_SERVER_APP_ID}"
        elif str(claims.get("tid")) != (aad.get("tenantID") or self.app.tenant_id):
            problem = f"the token is from tenant {claims.get('tid')}, not the cluster's"
        if problem:
            return answer({"authenticated": False, "error": problem})
        oid = str(claims.get("oid"))
        groups = [str(g) for g in claims.get("groups") or []]
        user = {"username": str(claims.get("upn") or oid), "uid": oid, "groups": [*groups], "extra": {"oid": [oid]}}
        return answer({"authenticated": True, "user": user, "audiences": (review.get("spec") or {}).get("audiences")})

    def authorize(self, ctx: Context, issuer_guid: str) -> Response:
        review = ctx.request.json_object()
        spec = review.get("spec") or {}
        record = self._cluster(issuer_guid)
        aad = record["body"]["properties"].get("aadProfile") or {}

        def answer(allowed: bool, reason: str) -> Response:
            status = {"allowed": allowed, **({"reason": reason} if reason else {})}
            return Response(
                200, {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": status}
            )

        oids = (spec.get("extra") or {}).get("oid") or []
        if not aad.get("enableAzureRBAC") or not oids:
            return answer(False, "")  # no opinion: Kubernetes RBAC decides (local accounts, service accounts)
        from . import ids

        cluster_id = record["body"]["id"]
        namespace = (spec.get("resourceAttributes") or {}).get("namespace")
        scope = ids.parse_scope(f"{cluster_id}/namespaces/{namespace}" if namespace else cluster_id)
        action = data_action(spec)
        principals = {str(oids[0]), *(str(g) for g in spec.get("groups") or [])}
        for assignment in self.app.assignments_applying(scope):
            if assignment["principal_id"] not in principals:
                continue
            role = self.app.role_definition(assignment["role_guid"])
            if role and rbac.permits(role["permissions"], action, data_action=True):
                return answer(True, ACCESS_ALLOWED)
        return answer(False, ACCESS_NOT_ALLOWED)
