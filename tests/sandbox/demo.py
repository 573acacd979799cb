"""``make demo`` until the rollout roles land: the workload-identity chain, by hand, with the real SDKs.

For two seeded AKS clusters (dev, prod) it enables the OIDC issuer, gives each workload its own
user-assigned identity, a federated credential for its service account and one role assignment,
then signs in *as the workload* (a service-account token exchanged at the Entra emulator) and
shows ARM allowing exactly what was granted. Every step is idempotent: run it twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from azure.identity import ClientSecretCredential, WorkloadIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from . import jwt
from .__main__ import DEFAULT_STATE
from .client import SandboxClient

CLUSTERS = {"dev": ("rg-aks-dev", "aks-dev"), "prod": ("rg-aks-prod", "aks-prod")}
WORKLOADS = [  # name, namespace, role, scope (relative to the environment's data resource group)
    (
        "orders-api",
        "orders",
        "Storage Blob Data Contributor",
        "providers/Microsoft.Storage/storageAccounts/{env}ordersdata/blobServices/default/containers/orders",
    ),
    ("billing-worker", "billing", "Key Vault Secrets User", "providers/Microsoft.KeyVault/vaults/kv-billing-{env}"),
    ("web-frontend", "web", "AcrPull", "providers/Microsoft.ContainerRegistry/registries/acr{env}apps"),
]
NAMESPACE_UUID = uuid.UUID("6f1c9d0e-2b7a-4f4e-9a51-3c8d2e7b1a90")


def main() -> None:
    state = Path(os.environ.get("SANDBOX_STATE_DIR") or DEFAULT_STATE)
    env: dict[str, str] = json.loads((state / "sandbox.json").read_text())
    url, ca, sub = env["SANDBOX_URL"], env["AZURE_CA_BUNDLE"], env["AZURE_SUBSCRIPTION_ID"]
    control = SandboxClient(url, Path(ca))
    arm: dict[str, Any] = {"base_url": url, "credential_scopes": [url + "/.default"], "connection_verify": ca}
    admin = ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    aks = ContainerServiceClient(admin, sub, **arm)
    msi = ManagedServiceIdentityClient(admin, sub, **arm)
    authz = AuthorizationManagementClient(admin, sub, **arm)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    existing = {c["name"] for c in control.call("GET", "/_sandbox/clusters")["value"]}
    for env_name, (rg, cluster_name) in CLUSTERS.items():
        if cluster_name not in existing:
            control.seed_cluster(rg, cluster_name, location="westeurope")
            print(f"seeded an existing AKS cluster {cluster_name} (OIDC issuer off)")
        cluster = aks.managed_clusters.get(rg, cluster_name)
        if not cluster.oidc_issuer_profile.enabled:
            print(f"{cluster_name}: enabling the OIDC issuer (long-running operation) ...")
            cluster.oidc_issuer_profile.enabled = True
            cluster = aks.managed_clusters.begin_create_or_update(
                rg, cluster_name, cluster, polling_interval=1
            ).result()
        issuer = cluster.oidc_issuer_profile.issuer_url
        details = control.cluster(rg, cluster_name)
        signing_key, kube_backed = details["signing_key_pem"], bool(details.get("kube"))
        print(
            f"{cluster_name}: issuer {issuer}; service-account tokens from "
            + (f"its kube-apiserver at {details['kube']['server']}" if kube_backed else "the demo (no control plane)")
        )
        data_rg = f"rg-data-{env_name}"
        admin_token = admin.get_token(url + "/.default").token
        control_put(url, ca, admin_token, f"/subscriptions/{sub}/resourcegroups/{data_rg}", {"location": "westeurope"})
        identities_rg = f"rg-identities-{env_name}"
        control_put(
            url, ca, admin_token, f"/subscriptions/{sub}/resourcegroups/{identities_rg}", {"location": "westeurope"}
        )
        for name, namespace, role, scope_template in WORKLOADS:
            scope = f"/subscriptions/{sub}/resourceGroups/{data_rg}/" + scope_template.format(env=env_name)
            ensure_resource_chain(url, ca, admin_token, scope)
            identity = msi.user_assigned_identities.create_or_update(
                identities_rg,
                f"id-{name}-{env_name}",
                {"location": "westeurope", "tags": {"cluster": cluster_name, "namespace": namespace}},
            )
            subject = f"system:serviceaccount:{namespace}:{name}"
            msi.federated_identity_credentials.create_or_update(
                identities_rg,
                identity.name,
                cluster_name,
                {"issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]},
            )
            role_id = next(iter(authz.role_definitions.list(scope, filter=f"roleName eq '{role}'"))).id
            assignment = uuid.uuid5(
                NAMESPACE_UUID, f"{scope.lower()}|{role_id.rsplit('/', 1)[1]}|{identity.principal_id}"
            )
            authz.role_assignments.create(
                scope,
                str(assignment),
                {
                    "role_definition_id": role_id,
                    "principal_id": identity.principal_id,
                    "principal_type": "ServicePrincipal",
                },
            )
            if kube_backed:
                assertion = service_account_token(state, cluster_name, namespace, name)
            else:  # no control plane: sign what the API server would have, with the issuer's key
                now = int(time.time())
                assertion = jwt.sign(
                    {
                        "iss": issuer,
                        "sub": subject,
                        "aud": ["api://AzureADTokenExchange"],
                        "iat": now,
                        "nbf": now,
                        "exp": now + 3600,
                    },
                    jwt.load_private(signing_key),
                )
            allowed, denied = sign_in_as_workload(env, assertion, identity.client_id, scope, sub)
            rows.append(
                {
                    "cluster": cluster_name,
                    "workload": f"{namespace}/{name}",
                    "client_id": identity.client_id,
                    "role": role,
                    "scope": scope.split("/providers/", 1)[1],
                    "own scope": allowed,
                    "elsewhere": denied,
                }
            )
    print()
    print(
        f"{'cluster':<9} {'workload':<23} {'identity client id':<37} {'role @ resource':<58} "
        "may do there (as the workload) | elsewhere"
    )
    for row in rows:
        resource = "/".join(row["scope"].split("/")[1:3])
        print(
            f"{row['cluster']:<9} {row['workload']:<23} {row['client_id']:<37} "
            f"{(row['role'] + ' @ ' + resource)[:57]:<58} {row['own scope']} | {row['elsewhere']}"
        )
    totals = control.stats()["totals"]
    print(f"\ndone in {time.monotonic() - started:.1f} s; sandbox requests so far: {totals}")
    print(f"Look around:  source {state / 'sandbox.env'}")
    print("              .tools/bin/kubectl --context aks-dev get serviceaccounts -A   (or --context aks-prod)")
    print(f"              request log {state / 'requests.jsonl'}; stats {url}/_sandbox/stats")
    print("Run `make demo` again to see every step answer unchanged; stop the sandbox with `make sandbox-down`.")


def control_put(url: str, ca: str, token: str, path: str, body: dict[str, Any]) -> None:
    import requests

    response = requests.put(
        f"{url}{path}?api-version=2022-09-01",
        json=body,
        verify=ca,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()


def ensure_resource_chain(url: str, ca: str, token: str, scope: str) -> None:
    """The storage account / vault / registry the workload is granted on (made with generic PUTs)."""
    head, _sep, tail = scope.partition("/providers/")
    parts = tail.split("/")
    for end in range(3, len(parts) + 1, 2):
        control_put(
            url,
            ca,
            token,
            f"{head}/providers/{'/'.join(parts[:end])}",
            {"location": "westeurope"} if end == 3 else {"properties": {}},
        )


def service_account_token(state: Path, cluster: str, namespace: str, name: str) -> str:
    """A TokenRequest to the cluster's real API server, as the kubelet makes for a projected token."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    core = k8s.CoreV1Api(k8s_config.new_client_from_config(str(state / "kubeconfig"), context=cluster))
    for create in (
        lambda: core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace))),
        lambda: core.create_namespaced_service_account(
            namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name))
        ),
    ):
        try:
            create()
        except k8s.ApiException as exc:
            if exc.status != 409:  # already there from an earlier run
                raise
    spec = k8s.V1TokenRequestSpec(audiences=["api://AzureADTokenExchange"], expiration_seconds=3600)
    issued = core.create_namespaced_service_account_token(name, namespace, k8s.AuthenticationV1TokenRequest(spec=spec))
    if issued.status is None:
        raise RuntimeError(f"the API server issued no token for {namespace}/{name}")
    return str(issued.status.token)


def sign_in_as_workload(env: dict[str, str], assertion: str, client_id: str, scope: str, sub: str) -> tuple[str, str]:
    """What the pod does: its projected service-account token, exchanged for an ARM token."""
    url, ca = env["SANDBOX_URL"], env["AZURE_CA_BUNDLE"]
    with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as handle:
        handle.write(assertion)
    try:
        credential = WorkloadIdentityCredential(
            tenant_id=env["AZURE_TENANT_ID"],
            client_id=client_id,
            token_file_path=handle.name,
            authority=url,
            connection_verify=ca,
        )
        token = credential.get_token(url + "/.default").token
    finally:
        os.unlink(handle.name)
    import requests

    headers = {"Authorization": f"Bearer {token}"}
    # What the workload may do on its own scope, as ARM evaluates it for the workload's own token.
    granted = requests.get(
        f"{url}{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01",
        verify=ca,
        timeout=30,
        headers=headers,
    ).json()["value"]
    actions = [
        a.rsplit("/", 2)[-2] + "/" + a.rsplit("/", 1)[-1] for p in granted for a in p["actions"] + p["dataActions"]
    ]
    # Anything outside it: listing the subscription's resource groups.
    elsewhere = requests.get(
        f"{url}/subscriptions/{sub}/resourcegroups?api-version=2022-09-01", verify=ca, timeout=30, headers=headers
    ).status_code
    return ", ".join(actions[:2]) + (" ..." if len(actions) > 2 else ""), f"{elsewhere}"


if __name__ == "__main__":
    main()
