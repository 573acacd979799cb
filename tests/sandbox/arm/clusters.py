"""ARM: AKS managed clusters (Microsoft.ContainerService) and their long-running operations."""

from __future__ import annotations

import copy
import hashlib
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

from .. import ids, jwt
from ..core import ApiError, Context, Response, utc_now_iso
from ..kube import KUBE_VERSION
from .common import (
    IDENTITY_TYPE,
    ArmBase,
    _scope,
)

if TYPE_CHECKING:
    pass


class ClustersProvider(ArmBase):
    # -- AKS managed clusters -----------------------------------------------------------------------------
    def list_clusters(self, ctx: Context, sub: str, rg: str | None) -> Response:
        if rg is None:
            self._require_subscription(sub)
            scope = ids.parse_scope(f"/subscriptions/{sub}")
        else:
            self._require_rg(sub, rg)
            scope = ids.parse_scope(f"/subscriptions/{sub}/resourceGroups/{rg}")
        self.app.authorize(ctx, "Microsoft.ContainerService/managedClusters/read", scope)
        prefix = scope.key + "/"
        items = []
        for key in sorted(self.store.all("cluster")):
            if key.startswith(prefix):
                record = self._settle(key)
                if record is not None:
                    items.append(record["body"])
        return self._page(ctx, items)

    def _settle(self, key: str) -> dict[str, Any] | None:
        """Apply a finished long-running operation to the cluster (lazily, when next looked at)."""
        with self.store.lock:
            record = self.store.get("cluster", key)
            if record is None or not record.get("operation"):
                return record
            op = self.store.get("operation", record["operation"])
            if op is None or op["completes_at"] > time.time():
                return record
            failure = op.get("fails_with")
            with self.store.transaction():
                op = {**op, "status": "Failed" if failure else "Succeeded", "endTime": utc_now_iso()}
                if failure:
                    op["error"] = failure
                self.store.put("operation", op["name"], op)
                if op["action"] == "delete" and not failure:
                    self.app.release_kube(key, self.store.delete("cluster", key))
                    return None
                body = copy.deepcopy(record["body"])
                # A failed operation leaves the cluster Failed with the requested (goal) state recorded, as AKS
                # does, but nothing of it carried out: an issuer it was to enable is not served.
                body["properties"]["provisioningState"] = "Failed" if failure else "Succeeded"
                enabled = bool(body["properties"].get("oidcIssuerProfile", {}).get("enabled"))
                record = {
                    **record,
                    "body": body,
                    "operation": None,
                    "published": bool(record.get("published")) if failure else enabled,
                }
                self.store.put("cluster", key, record)
            # AKS deploys (or removes) the workload-identity add-on as part of the operation (a failed one: not).
            if not failure:
                self.app.sync_addon(key, record)
            return record

    def operation_status(self, ctx: Context, op_id: str, kind: str) -> Response:
        op = self.store.get("operation", op_id.lower())
        if op is None:
            raise ApiError(404, "NotFound", f"Operation '{op_id}' not found.")
        self._settle(op["cluster_key"])
        op = self.store.get("operation", op_id.lower()) or op
        if kind == "operationresults":
            return Response(202, None, {"Retry-After": "1"}) if op["status"] == "InProgress" else Response(204)
        body = {"name": op["name"], "status": op["status"], "startTime": op["startTime"]}
        if op.get("endTime"):
            body["endTime"] = op["endTime"]
        if op.get("error"):
            body["error"] = op["error"]
        return Response(200, body, {"Retry-After": "1"} if op["status"] == "InProgress" else {})

    def _start_operation(
        self, ctx: Context, sub: str, location: str, cluster_key: str, action: str
    ) -> tuple[str, dict[str, str]]:
        op_id = str(uuid.uuid4())
        # An injected fault on "managedClusters.operation" makes the operation fail server-side once accepted.
        fault = self.app.faults.pick("managedClusters.operation", ctx.request.method, ctx.request.path)
        failure = None
        if fault is not None:
            failure = {
                "code": fault.code or "InternalOperationError",
                "message": fault.message or "Reconcile managed cluster failed. Please retry the operation.",
            }
        self.store.put(
            "operation",
            op_id,
            {
                "name": op_id,
                "status": "InProgress",
                "startTime": utc_now_iso(),
                "action": action,
                "completes_at": time.time() + self.app.settings.lro_seconds,
                "cluster_key": cluster_key,
                "fails_with": failure,
            },
        )
        origin = self.app.origin(ctx.request)
        base = f"{origin}/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{location}"
        version = urllib.parse.quote(ctx.request.q("api-version") or "2016-03-30")
        headers = {"Azure-AsyncOperation": f"{base}/operations/{op_id}?api-version={version}", "Retry-After": "1"}
        if action == "delete":
            headers["Location"] = f"{base}/operationresults/{op_id}?api-version={version}"
        return op_id, headers

    def cluster(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = _scope(segs)
        sub, rg, name = scope.subscription or "", scope.resource_group or "", scope.names[0]
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.ContainerService/managedClusters/{action}", scope)
        self._require_rg(sub, rg)
        key = scope.key
        with self.store.lock:
            existing = self._settle(key)
            if method == "GET":
                if existing is None:
                    raise self._not_found("Microsoft.ContainerService/managedClusters", name, rg)
                return Response(200, existing["body"])
            if existing is not None and existing.get("operation"):
                state = existing["body"]["properties"]["provisioningState"]
                raise ApiError(
                    409,
                    "OperationNotAllowed",
                    f"Operation is not allowed: Another operation ({state}) is in progress, please wait "
                    "for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation "
                    "for more details",
                )
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                op_id, headers = self._start_operation(ctx, sub, existing["body"]["location"], key, "delete")
                body = copy.deepcopy(existing["body"])
                body["properties"]["provisioningState"] = "Deleting"
                self.store.put("cluster", key, {**existing, "body": body, "operation": op_id})
                return Response(202, None, headers)
            request_body = ctx.request.json_object()
            record = self.build_cluster(sub, rg, name, request_body, existing)
            op_id, headers = self._start_operation(ctx, sub, record["body"]["location"], key, "put")
            record["operation"] = op_id
            record["body"]["properties"]["provisioningState"] = "Updating" if existing else "Creating"
            self.store.put("cluster", key, record)
            return Response(200 if existing else 201, record["body"], headers)

    def build_cluster(
        self, sub: str, rg: str, name: str, request_body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Validate a cluster PUT and merge it with the server-owned fields; AKS's rules for the issuer."""
        location = request_body.get("location")
        if not location:
            raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
        location = str(location).lower().replace(" ", "")
        props = copy.deepcopy(request_body.get("properties") or {})
        if existing is None:
            if not props.get("dnsPrefix") and not props.get("fqdnSubdomain"):
                raise ApiError(400, "InvalidParameter", "DnsPrefix or FqdnSubdomain must be specified.")
            pools = props.get("agentPoolProfiles") or []
            if not any((p or {}).get("mode") == "System" for p in pools):
                raise ApiError(400, "InvalidParameter", "Must define at least one system pool.")
        else:
            old = existing["body"]
            if old["location"] != location:
                raise ApiError(
                    400,
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{old['location']}' in resource "
                    f"group '{rg}'. A resource with the same name cannot be created in location "
                    f"'{location}'. Please select a new resource name.",
                )
            merged = copy.deepcopy(old["properties"])
            merged.update(props)
            props = merged
        was_enabled = bool(existing and existing["body"]["properties"].get("oidcIssuerProfile", {}).get("enabled"))
        oidc = props.get("oidcIssuerProfile") or {}
        if was_enabled and oidc.get("enabled") is False:
            raise ApiError(
                400, "BadRequest", "OIDC issuer feature cannot be disabled once it has been enabled on a cluster."
            )
        enabled = bool(oidc.get("enabled")) or was_enabled
        workload_identity = ((props.get("securityProfile") or {}).get("workloadIdentity") or {}).get("enabled")
        if workload_identity and not enabled:
            raise ApiError(
                400,
                "BadRequest",
                "Enabling workload identity requires enabling OIDC issuer feature (oidcIssuerProfile).",
            )
        issuer_guid = existing["issuer_guid"] if existing else str(uuid.uuid4())
        signing_key = existing["signing_key"] if existing else jwt.private_pem(jwt.new_key())
        issuer_url = f"{self.app.base_url}/{self.app.tenant_id}/{issuer_guid}/"
        props["oidcIssuerProfile"] = {"enabled": enabled, **({"issuerURL": issuer_url} if enabled else {})}
        aad = props.get("aadProfile")
        if aad:
            if aad.get("enableAzureRBAC") and not aad.get("managed"):
                raise ApiError(
                    400,
                    "BadRequest",
                    "Azure RBAC for Kubernetes authorization requires managed AAD (aadProfile.managed).",
                )
            props["aadProfile"] = {
                "managed": bool(aad.get("managed")),
                "enableAzureRBAC": bool(aad.get("enableAzureRBAC")),
                "adminGroupObjectIDs": list(aad.get("adminGroupObjectIDs") or []),
                "tenantID": aad.get("tenantID") or self.app.tenant_id,
            }
        props["disableLocalAccounts"] = bool(props.get("disableLocalAccounts"))
        version = props.get("kubernetesVersion") or KUBE_VERSION
        dns_prefix = props.get("dnsPrefix") or props.get("fqdnSubdomain")
        digest = hashlib.sha256(f"{sub}/{rg}/{name}".encode()).hexdigest()[:8]
        server = existing["body"]["properties"] if existing else {}
        access = props.get("apiServerAccessProfile") or {}
        if access.get("enablePrivateCluster"):
            # A private cluster's API server has a private endpoint only: a name in a privatelink zone.
            private_fqdn = server.get("privateFQDN") or (
                f"{dns_prefix}-{digest}.{uuid.uuid4()}.privatelink.{location}.azmk8s.io"
            )
            props["privateFQDN"] = private_fqdn
        props.update(
            {
                "kubernetesVersion": version,
                "currentKubernetesVersion": version,
                "fqdn": server.get("fqdn") or f"{dns_prefix}-{digest}.hcp.{location}.azmk8s.io",
                "azurePortalFQDN": server.get("azurePortalFQDN")
                or f"{dns_prefix}-{digest}.portal.hcp.{location}.azmk8s.io",
                "maxAgentPools": 100,
                "powerState": {"code": "Running"},
                "nodeResourceGroup": props.get("nodeResourceGroup") or f"MC_{rg}_{name}_{location}",
                "identityProfile": server.get("identityProfile")
                or {
                    "kubeletidentity": {
                        "resourceId": f"/subscriptions/{sub}/resourcegroups/MC_{rg}_{name}_{location}/providers/"
                        f"{IDENTITY_TYPE}/{name}-agentpool",
                        "clientId": str(uuid.uuid4()),
                        "objectId": str(uuid.uuid4()),
                    }
                },
            }
        )
        for pool in props.get("agentPoolProfiles") or []:
            pool.setdefault("orchestratorVersion", version)
            pool.update(
                {
                    "currentOrchestratorVersion": pool["orchestratorVersion"],
                    "provisioningState": "Succeeded",
                    "powerState": {"code": "Running"},
                    "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202410.15.0",
                }
            )
        identity = (existing["body"].get("identity") if existing else None) or {
            "type": "SystemAssigned",
            "principalId": str(uuid.uuid4()),
            "tenantId": self.app.tenant_id,
        }
        body = {
            "id": f"/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/"
            f"managedClusters/{name}",
            "location": location,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": request_body.get("tags") or {},
            "sku": request_body.get("sku") or {"name": "Base", "tier": "Free"},
            "identity": identity,
            "properties": props,
        }
        return {
            "body": body,
            "issuer_guid": issuer_guid,
            "signing_key": signing_key,
            "published": bool(existing and existing.get("published")),
            "operation": None,
            **({"kube": existing["kube"]} if existing and existing.get("kube") else {}),
            # Its age: the env files name the oldest kube-backed cluster, whatever updates it since.
            **({"seeded_at": existing["seeded_at"]} if existing and "seeded_at" in existing else {}),
        }

    def cluster_action(self, ctx: Context, segs: list[str]) -> Response:
        scope = _scope(segs[:-1])
        action_name = segs[-1]
        self.app.authorize(ctx, f"Microsoft.ContainerService/managedClusters/{action_name}/action", scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        record = self._settle(scope.key)
        if record is None:
            raise self._not_found(
                "Microsoft.ContainerService/managedClusters", scope.names[0], scope.resource_group or ""
            )
        if action_name.lower() not in ("listclusterusercredential", "listclusteradmincredential"):
            raise ApiError(400, "InvalidParameter", f"Action '{action_name}' is not supported by the sandbox.")
        admin = action_name.lower() == "listclusteradmincredential"
        props = record["body"]["properties"]
        if admin and props.get("disableLocalAccounts"):
            raise ApiError(
                400,
                "BadRequest",
                "Getting static credential is not allowed because this cluster is set to disable local accounts.",
            )
        kubeconfig = self.app.control.kubeconfig_for(record, entra=not admin and bool(props.get("aadProfile")))
        if kubeconfig is None:
            raise ApiError(400, "BadRequest", "This sandbox cluster has no Kubernetes API server attached.")
        import base64

        return Response(
            200,
            {
                "kubeconfigs": [
                    {
                        "name": "clusterAdmin" if admin else "clusterUser",
                        "value": base64.b64encode(kubeconfig.encode()).decode(),
                    }
                ]
            },
        )
