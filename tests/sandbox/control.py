"""The sandbox's own control API under /_sandbox/: settings, faults, stats, seeding."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import ids, jwt
from .core import ApiError, Context, Request, Response, Route
from .kube import KUBE_VERSION, KubeUnavailable, kubeconfig

if TYPE_CHECKING:
    from .app import Sandbox


class ControlApi:
    def __init__(self, app: Sandbox) -> None:
        self.app = app

    def route(self, request: Request, segs: list[str], low: list[str]) -> Route | None:
        if not low or low[0] != "_sandbox":
            return None
        name = "/".join(low[1:2]) or "root"
        return Route(f"sandbox.{name}", "control", lambda c: self.dispatch(c, segs[1:], low[1:]))

    def dispatch(self, ctx: Context, segs: list[str], low: list[str]) -> Response:
        m = ctx.request.method
        app = self.app
        try:
            if low == ["health"]:
                return Response(
                    200,
                    {
                        "status": "ok",
                        "tenant_id": app.tenant_id,
                        "kube": app.kube.pids(),
                        "kube_lost": app.kube.lost(),
                        "kube_available": app.kube.available,
                        "kube_ready": app.kube_ready.is_set(),
                        "internal_errors": app.internal_errors,
                    },
                )
            if low == ["env"]:
                return Response(200, app.env(app.state_dir / "ca.pem"))
            if low == ["config"]:
                if m == "PATCH":
                    changes = ctx.request.json_object()
                    app.settings.update(changes)
                    if "buckets" in changes or "throttling" in changes:
                        app.throttle.reset()  # new limits start with full buckets
                return Response(200, app.settings.to_dict())
            if low == ["stats"]:
                if m == "DELETE":
                    app.reset_stats()
                return Response(200, app.stats())
            if low == ["faults"]:
                if m == "POST":
                    body = ctx.request.json()
                    for spec in body if isinstance(body, list) else [body]:
                        app.faults.add(spec)
                elif m == "DELETE":
                    app.faults.clear()
                return Response(200, {"faults": app.faults.list()})
            if low == ["reset"] and m == "POST":
                app.reset()
                return Response(200, {"status": "reset"})
            if low == ["principals"] and m == "POST":
                return Response(201, self.create_principal(ctx.request.json_object()))
            if len(low) == 3 and low[0] == "principals" and low[2] == "graph-roles" and m == "PUT":
                return Response(200, self.set_graph_roles(segs[1], ctx.request.json_object().get("roles") or []))
            if low == ["subscriptions"] and m == "POST":
                name = str(ctx.request.json_object().get("display_name") or "Sandbox subscription")
                return Response(201, {"subscription_id": app.add_subscription(name)})
            if low == ["clusters"] and m == "POST":
                return Response(201, self.seed_cluster(ctx.request.json_object()))
            if low == ["clusters"] and m == "GET":
                return Response(200, {"value": [self._cluster_info(r) for r in app.store.all("cluster").values()]})
            if len(low) == 3 and low[0] == "clusters":
                # In whichever subscription it is (a resource group's name is the caller's to keep unique).
                for sub in (str(r["subscriptionId"]) for r in app.store.all("subscription").values()):
                    key = ids.norm(
                        f"/subscriptions/{sub}/resourceGroups/{segs[1]}/providers/"
                        f"Microsoft.ContainerService/managedClusters/{segs[2]}"
                    )
                    record = app.arm._settle(key)
                    if record is not None:
                        return Response(200, self._cluster_info(record, with_key=True))
                raise ApiError(404, "ResourceNotFound", f"No sandbox cluster {segs[1]}/{segs[2]}.")
        except (TypeError, ValueError, KeyError) as exc:
            raise ApiError(400, "BadRequest", f"Bad control request: {exc}") from exc
        raise ApiError(404, "NotFound", f"No control endpoint {m} /_sandbox/{'/'.join(segs)}.")

    def create_principal(self, spec: dict[str, Any]) -> dict[str, Any]:
        """An app registration with a client secret: its application, its service principal and, optionally,
        role assignments and Microsoft Graph app roles (``graph_roles``)."""
        from .arm import assignment_record
        from .directory import GRAPH_ROLES

        secret = secrets.token_urlsafe(32)
        roles = list(spec.get("graph_roles") or [])
        unknown = sorted(set(roles) - set(GRAPH_ROLES))
        if unknown:
            raise ValueError(f"unknown Graph roles {unknown} (known: {', '.join(GRAPH_ROLES)})")
        store = self.app.store
        display_name = spec.get("display_name", "sandbox-principal")
        with store.transaction():
            application = self.app.directory.new_application({"displayName": display_name}, [])
            principal_id, client_id = str(uuid.uuid4()), application["body"]["appId"]
            self.app.directory.add_principal(
                {
                    "principal_id": principal_id,
                    "app_id": client_id,
                    "type": spec.get("type", "ServicePrincipal"),
                    "display_name": display_name,
                    "secret": secret,
                    "created_at": 0.0 if spec.get("replicated", True) else time.time(),
                    "sp_type": "Application",
                    "application_id": application["body"]["id"],
                    "graph_roles": roles,
                }
            )
            for grant in spec.get("roles", []):
                scope = ids.parse_scope(grant["scope"])
                guid = self._role_guid(grant["role"])
                name = str(uuid.uuid4())
                store.put(
                    "roleAssignment",
                    ids.norm(f"{scope.raw}/providers/Microsoft.Authorization/roleAssignments/{name}"),
                    assignment_record(
                        scope.subscription or self.app.subscription_id,
                        scope.raw,
                        name,
                        guid,
                        principal_id,
                        "ServicePrincipal",
                        None,
                        None,
                        None,
                        principal_id,
                    ),
                )
        return {"principal_id": principal_id, "client_id": client_id, "client_secret": secret}

    def set_graph_roles(self, principal_id: str, roles: list[str]) -> dict[str, Any]:
        """Grant exactly these Microsoft Graph application permissions (what an admin consents to)."""
        from .directory import GRAPH_ROLES

        unknown = sorted(set(roles) - set(GRAPH_ROLES))
        if unknown:
            raise ValueError(f"unknown Graph roles {unknown} (known: {', '.join(GRAPH_ROLES)})")
        record = self.app.directory.principal(principal_id)
        if record is None:
            raise ApiError(404, "NotFound", f"No principal {principal_id}.")
        self.app.directory.add_principal({**record, "graph_roles": list(roles)})
        return {"principal_id": principal_id, "graph_roles": list(roles)}

    def _role_guid(self, role: str) -> str:
        if ids.is_guid(role):
            return role.lower()
        for guid, props in self.app.builtin_roles.items():
            if props["roleName"].lower() == role.lower():
                return guid
        raise ValueError(f"unknown role {role!r}")

    def seed_cluster(self, spec: dict[str, Any]) -> dict[str, Any]:
        """An existing AKS cluster, as if made in the portal: issuer off unless asked; in the sandbox's subscription
        unless ``subscription_id`` names another (``POST /_sandbox/subscriptions``)."""
        app = self.app
        sub = str(spec.get("subscription_id") or app.subscription_id)
        if app.store.get("subscription", ids.norm(f"/subscriptions/{sub}")) is None:
            raise ApiError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        rg, name = spec["resource_group"], spec["name"]
        location = spec.get("location", "westeurope")
        store = app.store
        with store.transaction():
            rg_key = ids.norm(f"/subscriptions/{sub}/resourceGroups/{rg}")
            if store.get("resourceGroup", rg_key) is None:
                store.put(
                    "resourceGroup",
                    rg_key,
                    {
                        "body": {
                            "id": f"/subscriptions/{sub}/resourceGroups/{rg}",
                            "name": rg,
                            "type": "Microsoft.Resources/resourceGroups",
                            "location": location,
                            "tags": {},
                            "properties": {"provisioningState": "Succeeded"},
                        }
                    },
                )
            key = ids.norm(f"{rg_key}/providers/Microsoft.ContainerService/managedClusters/{name}")
            existing = store.get("cluster", key)
            enabled = bool(spec.get("oidc_issuer_enabled", False))
            body = {
                "location": location,
                "tags": spec.get("tags", {}),
                "properties": {
                    "kubernetesVersion": spec.get("kubernetes_version", KUBE_VERSION),
                    "dnsPrefix": f"{name}-dns",
                    "enableRBAC": True,
                    "supportPlan": "KubernetesOfficial",
                    "disableLocalAccounts": not spec.get("local_accounts", True),
                    # Managed Entra ID integration with Azure RBAC for Kubernetes authorization (az aks create
                    # --enable-aad --enable-azure-rbac): the API server takes Entra tokens, authorized by role.
                    **(
                        {"aadProfile": {"managed": True, "enableAzureRBAC": True}}
                        if spec.get("entra") or not spec.get("local_accounts", True)
                        else {}
                    ),
                    **({"apiServerAccessProfile": {"enablePrivateCluster": True}} if spec.get("private") else {}),
                    "agentPoolProfiles": [
                        {
                            "name": "system",
                            "count": 3,
                            "vmSize": "Standard_D4ds_v5",
                            "osDiskSizeGB": 128,
                            "osDiskType": "Ephemeral",
                            "kubeletDiskType": "OS",
                            "maxPods": 110,
                            "type": "VirtualMachineScaleSets",
                            "mode": "System",
                            "osType": "Linux",
                            "osSKU": "Ubuntu",
                            "enableAutoScaling": False,
                            "enableFIPS": False,
                            "enableNodePublicIP": False,
                        }
                    ],
                    "servicePrincipalProfile": {"clientId": "msi"},
                    "networkProfile": {
                        "networkPlugin": "azure",
                        "networkPluginMode": "overlay",
                        "networkPolicy": "none",
                        "podCidr": "10.244.0.0/16",
                        "serviceCidr": "10.0.0.0/16",
                        "dnsServiceIP": "10.0.0.10",
                        "outboundType": "loadBalancer",
                        "loadBalancerSku": "standard",
                        "podCidrs": ["10.244.0.0/16"],
                        "serviceCidrs": ["10.0.0.0/16"],
                        "ipFamilies": ["IPv4"],
                    },
                    "oidcIssuerProfile": {"enabled": enabled},
                    # AKS's managed workload-identity add-on (it needs the issuer: build_cluster checks).
                    "securityProfile": (
                        {"workloadIdentity": {"enabled": True}} if spec.get("workload_identity_enabled") else {}
                    ),
                    "storageProfile": {
                        "diskCSIDriver": {"enabled": True},
                        "fileCSIDriver": {"enabled": True},
                        "snapshotController": {"enabled": True},
                    },
                    "autoUpgradeProfile": {"upgradeChannel": "none", "nodeOSUpgradeChannel": "NodeImage"},
                },
            }
            record = app.arm.build_cluster(sub, rg, name, body, existing)
            record["body"]["properties"]["provisioningState"] = "Succeeded"
            record["published"] = enabled or bool(existing and existing.get("published"))
            record["seeded_at"] = existing.get("seeded_at", time.time()) if existing else time.time()
            store.put("cluster", key, record)
        self._write_issuer_keys(record)
        wanted = spec.get("kube")
        if wanted is None:
            wanted = app.settings.kube_clusters and app.kube.available
        if wanted:
            if not app.kube.available:
                raise ApiError(400, "KubeUnavailable", app.kube.why_unavailable())
            try:
                record = app.attach_kube(key, record)
            except KubeUnavailable as exc:
                raise ApiError(500, "KubeUnavailable", str(exc)) from exc
            store.put("cluster", key, record)
            app.write_env_files()
        return self._cluster_info(record, with_key=True)

    def _write_issuer_keys(self, record: dict[str, Any]) -> None:
        """The issuer's signing key as files, for a kube-apiserver to sign service-account tokens with."""
        folder = self.app.state_dir / "issuers"
        folder.mkdir(exist_ok=True)
        key_path = folder / f"{record['issuer_guid']}.key"
        if not key_path.exists():
            key_path.write_text(record["signing_key"])
            key_path.chmod(0o600)
            (folder / f"{record['issuer_guid']}.pub").write_text(
                jwt.public_pem(jwt.load_private(record["signing_key"]))
            )

    def _cluster_info(self, record: dict[str, Any], with_key: bool = False) -> dict[str, Any]:
        info = {
            "id": record["body"]["id"],
            "name": record["body"]["name"],
            "issuer_url": f"{self.app.base_url}/{self.app.tenant_id}/{record['issuer_guid']}/",
            "issuer_published": record.get("published", False),
            "signing_key_file": str(self.app.state_dir / "issuers" / f"{record['issuer_guid']}.key"),
            "kube": record.get("kube"),
        }
        if with_key:
            info["signing_key_pem"] = record["signing_key"]
        return info

    def kubeconfig_for(self, record: dict[str, Any], entra: bool = False) -> str | None:
        """What listClusterUserCredential / listClusterAdminCredential answer for this cluster.

        A static token (local accounts); with ``entra`` (a cluster with Entra ID integration, the user
        credential), no secret at all: kubelogin's exec plugin, told the AKS server application to get a token
        for, as AKS writes it. A private cluster's server is its private FQDN, reachable from its network only.
        """
        if not record.get("kube"):
            return None
        import yaml

        from .guard import AKS_CLIENT_APP_ID, AKS_SERVER_APP_ID

        ca = (self.app.state_dir / "ca.pem").read_text()
        props = record["body"]["properties"]
        details = dict(record["kube"])
        if props.get("privateFQDN"):
            details["server"] = f"https://{props['privateFQDN']}:443"
        config = kubeconfig([(record["body"]["name"], details)], ca)
        if entra:
            aad = props.get("aadProfile") or {}
            config["users"][0]["user"] = {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "kubelogin",
                    "args": [
                        "get-token",
                        "--environment",
                        "AzurePublicCloud",
                        "--server-id",
                        AKS_SERVER_APP_ID,
                        "--client-id",
                        AKS_CLIENT_APP_ID,
                        "--tenant-id",
                        aad.get("tenantID") or self.app.tenant_id,
                        "--login",
                        "devicecode",
                    ],
                    "env": None,
                    "installHint": "kubelogin is not installed which is required to connect to AAD enabled cluster.",
                    "provideClusterInfo": False,
                }
            }
        return str(yaml.safe_dump(config, sort_keys=False))
