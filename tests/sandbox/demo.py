"""``make demo``: the rollout as an operator runs it, against the sandbox.

Two existing AKS clusters (dev and prod, OIDC issuer off, local accounts disabled) already run a few
applications, none of which has an Azure identity yet. ``playbooks/site.yml`` runs on
``examples/inventories/sandbox/`` twice (the second run must change nothing) with the Azure credential
alone: no kubeconfig, each cluster reached with an Entra token as AKS's Azure RBAC allows. Then each
workload signs in *as itself*: a service-account token from its cluster's own kube-apiserver, for the
account its Deployment now uses, exchanged at the Entra emulator for an ARM token, and ARM shows what
that token may do. An unbound pod's token is refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, CredentialUnavailableError

from . import jwt
from .__main__ import DEFAULT_STATE, PROJECT
from .client import SandboxClient
from .demo_data import (
    arm_put,
    ensure_cosmos_account,
    ensure_postgres_server,
    pod_credential,
    read_item,
    read_order,
    read_vault,
    seed_item,
    seed_secret,
)
from .pods import injected, newest_pods, projected_token

CLUSTERS = {"dev": ("rg-aks-dev", "aks-dev"), "prod": ("rg-aks-prod", "aks-prod")}
INVENTORY = PROJECT / "examples" / "inventories" / "sandbox"
# What already exists before the rollout: the data each workload will be granted on (below rg-data-<env>) ...
RESOURCES = [
    "Microsoft.Storage/storageAccounts/st{env}orders/blobServices/default/containers/orders",
    "Microsoft.KeyVault/vaults/kv-billing-{env}",
    "Microsoft.ServiceBus/namespaces/sb-billing-{env}/queues/invoices",
    "Microsoft.ContainerRegistry/registries/acr{env}apps",
]
PROD_RESOURCES = ["Microsoft.Storage/storageAccounts/stprodaudit/blobServices/default/containers/audit"]
# An older vault that uses access policies, not Azure RBAC, for its data (as many existing vaults still do).
POLICY_VAULTS = ["Microsoft.KeyVault/vaults/kv-legacy-{env}"]
# A Cosmos DB account (NoSQL API) with the orders database and its items container: data granted by its own SQL roles.
COSMOS_ACCOUNTS = ["Microsoft.DocumentDB/databaseAccounts/cosmos-orders-{env}"]
# A PostgreSQL flexible server (a real PostgreSQL in the sandbox) with Entra sign-ins and the orders database.
POSTGRES_SERVERS = ["Microsoft.DBforPostgreSQL/flexibleServers/pg-orders-{env}"]
# ... and the applications, running under the namespace's default service account.
APPS = [
    ("Deployment", "orders", "orders-api", "ghcr.io/contoso/orders-api:2.4.1"),
    ("Deployment", "billing", "billing-worker", "ghcr.io/contoso/billing-worker:1.9.0"),
    ("CronJob", "billing", "billing-reconcile", "ghcr.io/contoso/billing-worker:1.9.0"),
    ("Deployment", "web", "web-frontend", "ghcr.io/contoso/web-frontend:5.0.3"),
]
PROD_APPS = [("StatefulSet", "audit", "audit-exporter", "ghcr.io/contoso/audit-exporter:0.7.2")]
# The role the automation's principal holds on each cluster (Azure Kubernetes Service RBAC Cluster Admin).
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"


def main() -> None:
    started = time.monotonic()
    # The refused sign-in below is the point; azure-identity would also log it as an error.
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    state = Path(os.environ.get("SANDBOX_STATE_DIR") or DEFAULT_STATE)
    env: dict[str, str] = json.loads((state / "sandbox.json").read_text())
    sub = env["AZURE_SUBSCRIPTION_ID"]
    print("==> the estate before the rollout")
    prepare_estate(state, env)

    # The Azure credential alone: the inventory says workload_identity_kube_auth azure, and no kubeconfig is there to
    # fall back on (the sandbox's own static one is for this script's look behind the scenes, and for kubectl below).
    shell_env = ansible_env(env, state)
    playbook_env = {k: v for k, v in shell_env.items() if k != "KUBECONFIG"}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), "playbooks/site.yml"]
    if os.environ.get("WEBHOOK_CHART"):
        command += ["-e", "workload_identity_webhook_mode=helm", "-e", f"webhook_chart={os.environ['WEBHOOK_CHART']}"]
        command += ["-e", "webhook_chart_repo_url=", "-e", "webhook_chart_version="]
    print(f"\n==> {' '.join(command[1:])}")
    run_playbook(command, playbook_env, stream=True)
    print(f"\n==> the same again: nothing may change ({' '.join(command[1:])})")
    second = run_playbook(command, playbook_env, stream=False)
    print("\n".join(line for line in second.splitlines() if re.match(r"^\S+\s+: ok=", line)))
    changed = [line for line in second.splitlines() if re.match(r"^\S+\s+: ok=", line) and " changed=0 " not in line]
    if changed:
        sys.exit(f"the second run changed something:\n{second[-4000:]}")

    helm = bool(os.environ.get("WEBHOOK_CHART"))
    if helm:
        print("\n==> helm mode: the webhook is installed but its pods cannot run here, so labelled pods are refused")
        print("    (failurePolicy Fail); each workload signs in with its bound account's token instead")
    else:
        print("\n==> each workload signs in as itself: its pod, as the add-on's webhook mutated it, with the token")
        print("    the kubelet would project into it (a pod-bound TokenRequest), exchanged at Entra ID")
    reports = Path(playbook_env["WORKLOAD_IDENTITY_REPORT_DIR"])
    print(f"{'cluster':<9} {'signed in as':<44} {'client id':<37} {'may do on its own scope':<44} elsewhere")
    for _env_name, (_rg, cluster) in CLUSTERS.items():
        report = json.loads((reports / f"{cluster}.json").read_text())
        for workload in report["workloads"]:
            who, client_id, assertion, authority = workload_credentials(state, cluster, workload, from_pod=not helm)
            allowed, elsewhere = sign_in(env, assertion, client_id, workload["roles"][0]["scope"], sub, authority)
            print(f"{cluster:<9} {who[:43]:<44} {client_id:<37} {allowed[:43]:<44} {elsewhere}")
        # A pod left on the namespace's default account: same client id, but no federated credential trusts it.
        first_workload = report["workloads"][0]
        assertion = service_account_token(state, cluster, first_workload["namespace"], "default")
        refused = sign_in(env, assertion, first_workload["client_id"], first_workload["roles"][0]["scope"], sub)[0]
        print(f"{cluster:<9} {first_workload['namespace'] + '/default':<44} {'(not bound)':<37} {refused[:60]}")

    # On the services themselves: the SDKs in each pod, with its own token, at their public hosts.
    print_data_plane_reads(env, reports, (state, helm))

    # What an operator runs to prove it: each workload's chain, link by link, and the access review.
    verify = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), "playbooks/verify.yml"]
    if helm:
        # The chart's pods cannot run here: every labelled pod is refused in admission, which verify reports.
        verify += ["-e", "workload_identity_verify_fail_on=none"]
    print(f"\n==> {' '.join(verify[1:])}")
    run_playbook(verify, playbook_env, stream=False)
    review = json.loads((reports / "access-review.json").read_text())
    for cluster_review in review["clusters"]:
        for workload in cluster_review["workloads"]:
            links = " > ".join(f"{link['link']} {link['status']}" for link in workload["links"])
            findings = [f"{f['link']}: {f['message']}" for f in workload["findings"]]
            print(f"{cluster_review['cluster']:<9} {workload['name']:<16} {'; '.join(findings) or links}")
    totals = review["summary"]
    print(f"{totals['verified']} of {totals['workloads']} workloads verified, {totals['findings']} findings")

    # Every command printed below runs as printed, in a new shell at the project's root: the demo runs each one now.
    env_file = write_env_file(state, shell_env)
    hints = [
        ".tools/bin/kubectl --context aks-dev get serviceaccounts,deployments -A --show-labels",
        f"ansible-playbook -i {INVENTORY.relative_to(PROJECT)} playbooks/site.yml --check --diff",
    ]
    for hint in hints:
        check_hint(env_file, hint)
    print(f"\ndone in {time.monotonic() - started:.0f} s; webhook mode per cluster is in the summary above.")
    print(f"Reports:      {reports}/<cluster>.md and .json; the access review: {reports}/access-review.html")
    print(f"Look around:  source {env_file}")
    print(f"              {hints[0]}   (the sandbox's own static credential)")
    print(f"              a plan: {hints[1]}")
    print("Run `make demo` again to see it all unchanged; stop the sandbox with `make sandbox-down`.")


def write_env_file(state: Path, shell_env: dict[str, str]) -> Path:
    """demo.env: what a shell needs to run ansible-playbook and kubectl as the demo does (the sandbox's Azure
    variables, the kubeconfig, the collections, this venv first on PATH); no secret the sandbox.env lacks."""
    exported = {k: v for k, v in shell_env.items() if os.environ.get(k) != v and k != "PATH"}
    exported["PATH"] = f"{Path(sys.executable).parent}:{PROJECT / '.tools' / 'bin'}:$PATH"
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(exported.items()) if k != "PATH"]
    lines.append(f'export PATH="{exported["PATH"]}"')
    path = state / "demo.env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def check_hint(env_file: Path, hint: str) -> None:
    """Run a printed hint the way a reader would: a fresh shell (none of the demo's variables), the env file sourced."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "AZURE_", "K8S_", "KUBECONFIG"))}
    done = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(env_file))} && {hint}"],
        cwd=PROJECT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"the hint `{hint}` does not run as printed:\n{(done.stdout + done.stderr)[-4000:]}")


def prepare_estate(state: Path, env: dict[str, str], **cluster_options: Any) -> None:
    """Two AKS clusters (OIDC issuer as found) running their applications, and the data they will be granted on.

    The clusters are as most production clusters are: Entra ID integration, Azure RBAC for Kubernetes, local accounts
    disabled. The automation's principal (the sandbox's, Owner of the subscription, which is no Kubernetes role) holds
    Azure Kubernetes Service RBAC Cluster Admin on each, as a platform team grants it.
    """
    cluster_options.setdefault("local_accounts", False)
    url, ca, sub = env["SANDBOX_URL"], env["AZURE_CA_BUNDLE"], env["AZURE_SUBSCRIPTION_ID"]
    control = SandboxClient(url, Path(ca))
    admin = ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    token = admin.get_token(url + "/.default").token
    existing = {c["name"] for c in control.call("GET", "/_sandbox/clusters")["value"]}
    for env_name, (rg, cluster) in CLUSTERS.items():
        if cluster not in existing:
            control.seed_cluster(rg, cluster, location="westeurope", **cluster_options)
        cluster_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService"
        cluster_id += f"/managedClusters/{cluster}"
        grant_kubernetes_role(url, ca, token, cluster_id, sub, AKS_RBAC_CLUSTER_ADMIN)
        for group in (f"rg-data-{env_name}", f"rg-identities-{env_name}"):
            arm_put(url, ca, token, f"/subscriptions/{sub}/resourcegroups/{group}", {"location": "westeurope"})
        for resource in RESOURCES + (PROD_RESOURCES if env_name == "prod" else []) + POLICY_VAULTS:
            scope = f"/subscriptions/{sub}/resourceGroups/rg-data-{env_name}/providers/" + resource.format(env=env_name)
            ensure_resource_chain(url, ca, token, scope, rbac_vault=resource not in POLICY_VAULTS)
            if resource in POLICY_VAULTS:
                seed_secret(url, ca, admin, scope, "orders-db-connection")
        for account in COSMOS_ACCOUNTS:
            scope = f"/subscriptions/{sub}/resourceGroups/rg-data-{env_name}/providers/" + account.format(env=env_name)
            ensure_cosmos_account(url, ca, token, scope)
            seed_item(url, ca, admin, scope)
        for server in POSTGRES_SERVERS:
            ensure_postgres_server(
                env,
                admin,
                f"/subscriptions/{sub}/resourceGroups/rg-data-{env_name}/providers/" + server.format(env=env_name),
            )
        apps = APPS + (PROD_APPS if env_name == "prod" else [])
        deploy_apps(state, cluster, apps)
        print(f"    {cluster}: AKS cluster (OIDC issuer as found), apps running: {', '.join(a[2] for a in apps)}")


def ansible_env(env: dict[str, str], state: Path) -> dict[str, str]:
    """ansible-playbook's environment: the sandbox's Azure variables, one kubeconfig with a context per cluster."""
    collections = PROJECT / ".build" / "collections"
    link = collections / "ansible_collections" / "workload_identity" / "aks"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(PROJECT)
    # Not the single-cluster K8S_AUTH_* variables: each inventory host names its own context.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "AZURE_"))}
    azure = {k: v for k, v in env.items() if not k.startswith("K8S_AUTH_")}
    return {
        **base,
        **azure,
        # Data planes (a vault at https://<name>.vault.azure.net, which verify reads as each workload) are reached
        # through the sandbox's public-hostnames proxy, as a client behind a corporate proxy reaches them.
        **(
            {"HTTPS_PROXY": env["SANDBOX_HTTPS_PROXY"], "NO_PROXY": "127.0.0.1,localhost"}
            if env.get("SANDBOX_HTTPS_PROXY")
            else {}
        ),
        "KUBECONFIG": str(state / "kubeconfig"),
        "ANSIBLE_COLLECTIONS_PATH": f"{collections}:{PROJECT / '.tools' / 'collections'}",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCAL_TEMP": str(state / "ansible" / "tmp"),
        "ANSIBLE_HOME": str(state / "ansible"),
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_FORKS": "4",
        "HELM_CACHE_HOME": str(state / "helm" / "cache"),
        "HELM_CONFIG_HOME": str(state / "helm" / "config"),
        "HELM_DATA_HOME": str(state / "helm" / "data"),
        "PATH": f"{PROJECT / '.tools' / 'bin'}:{os.environ['PATH']}",
        "WORKLOAD_IDENTITY_REPORT_DIR": str(state / "reports"),
    }


def run_playbook(command: list[str], env: dict[str, str], stream: bool) -> str:
    process = subprocess.Popen(
        command, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if stream:
            print(line, end="", flush=True)
    if process.wait() != 0:
        if not stream:
            print("".join(lines))
        sys.exit(f"ansible-playbook failed ({process.returncode})")
    return "".join(lines)


def grant_kubernetes_role(url: str, ca: str, token: str, cluster_id: str, sub: str, role_guid: str) -> None:
    """The token's principal gets an Azure RBAC for Kubernetes role on the cluster (a fixed assignment name per
    principal, role and cluster: a second PUT finds it in place)."""
    principal = jwt.unverified(token)[1]["oid"]
    name = uuid.uuid5(uuid.NAMESPACE_URL, f"{cluster_id.lower()}|{principal}|{role_guid}")
    properties = {
        "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }
    path = f"{cluster_id}/providers/Microsoft.Authorization/roleAssignments/{name}"
    arm_put(url, ca, token, path, {"properties": properties}, api_version="2022-04-01")


def ensure_resource_chain(url: str, ca: str, token: str, scope: str, rbac_vault: bool = True) -> None:
    """The storage account / vault / registry a workload is granted on (made with generic PUTs). A key vault is made
    as Key Vault requires (its tenant and SKU), with Azure RBAC for its data unless ``rbac_vault`` is false (access
    policies, the older model many existing vaults still use)."""
    head, _sep, tail = scope.partition("/providers/")
    parts = tail.split("/")
    for end in range(3, len(parts) + 1, 2):
        body: dict[str, Any] = {"location": "westeurope"} if end == 3 else {"properties": {}}
        if end == 3 and parts[0].lower() == "microsoft.keyvault" and parts[1].lower() == "vaults":
            tenant = jwt.unverified(token)[1]["tid"]
            sku = {"family": "A", "name": "standard"}
            body["properties"] = {"tenantId": tenant, "sku": sku, "enableRbacAuthorization": rbac_vault}
        arm_put(url, ca, token, f"{head}/providers/{'/'.join(parts[:end])}", body)


def print_data_plane_reads(env: dict[str, str], reports: Path, where: tuple[Path, bool]) -> None:
    """What orders-api and billing-worker read on the vaults and the Cosmos DB account, as their pods, each with the
    SDK an application uses (``where``: the sandbox's state, and whether the webhook is Helm's)."""
    state, helm = where
    print("\n==> on the services themselves, as each pod, through the sandbox's public-hostnames proxy: vaults with")
    print("    azure-keyvault-secrets (one with access policies, one with Azure RBAC), Cosmos DB with azure-cosmos,")
    print("    PostgreSQL with psycopg (an Entra token as the password, TLS verify-full) as orders-api's database role")
    print(f"{'cluster':<9} {'workload':<16} {'service (its model)':<44} answer")
    for env_name, (_rg, cluster) in CLUSTERS.items():
        report = json.loads((reports / f"{cluster}.json").read_text())
        for workload in report["workloads"]:
            if workload["name"] not in ("orders-api", "billing-worker"):
                continue
            _who, client_id, assertion, authority = workload_credentials(state, cluster, workload, from_pod=not helm)
            for vault, model in ((f"kv-legacy-{env_name}", "access policies"), (f"kv-billing-{env_name}", "RBAC")):
                answer = read_vault(env, assertion, client_id, vault, authority)
                print(f"{cluster:<9} {workload['name']:<16} {vault + ' (' + model + ')':<44} {answer}")
            account = f"cosmos-orders-{env_name}"
            for container in ("items", "payments") if workload["name"] == "orders-api" else ("items",):
                answer = read_item(env, assertion, client_id, (account, container), authority)
                print(f"{cluster:<9} {workload['name']:<16} {f'{account}/{container} (SQL roles)':<44} {answer}")
            server = f"pg-orders-{env_name}"
            answer = read_order(env, assertion, client_id, (server, "orders-api"), authority)
            print(f"{cluster:<9} {workload['name']:<16} {f'{server}/orders as orders-api (role)':<44} {answer}")


def _kube(state: Path, cluster: str) -> Any:
    from kubernetes import config as k8s_config

    return k8s_config.new_client_from_config(str(state / "kubeconfig"), context=cluster)


def app_manifest(kind: str, namespace: str, name: str, image: str, replicas: int = 2) -> dict[str, Any]:
    """A realistic application, as its team deployed it: on the default service account, no identity."""
    pod = {
        "metadata": {"labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace}},
        "spec": {
            "containers": [
                {
                    "name": name,
                    "image": image,
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
            **({"restartPolicy": "OnFailure"} if kind == "CronJob" else {}),
        },
    }
    selector = {"matchLabels": {"app.kubernetes.io/name": name}}
    spec: dict[str, Any]
    if kind == "CronJob":
        # Suspended: no kubelet runs here, so a Job it started would keep a Pending pod (with the client id of the day)
        # forever, and whether one exists would depend on the hour a run crosses.
        spec = {"schedule": "17 * * * *", "suspend": True, "jobTemplate": {"spec": {"template": pod}}}
    elif kind == "StatefulSet":
        spec = {"serviceName": name, "replicas": 1, "selector": selector, "template": pod}
    else:
        spec = {"replicas": replicas, "selector": selector, "template": pod}
    api_version = "batch/v1" if kind == "CronJob" else "apps/v1"
    meta = {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": name}}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}


def deploy_apps(state: Path, cluster: str, apps: list[tuple[str, str, str, str]], replicas: int = 2) -> None:
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ConflictError

    dynamic = DynamicClient(_kube(state, cluster))
    namespaces = dynamic.resources.get(api_version="v1", kind="Namespace")
    for namespace in sorted({app[1] for app in apps}):  # once each, however many apps it runs
        try:
            namespaces.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        except ConflictError:
            pass
    for kind, namespace, name, image in apps:
        manifest = app_manifest(kind, namespace, name, image, replicas)
        resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=kind)
        try:
            resource.create(manifest, namespace=namespace)
        except ConflictError:
            pass  # deployed by an earlier run; the rollout has bound it since


def bound_account(state: Path, cluster: str, namespace: str, workload: dict[str, Any]) -> str:
    """The service account the workload's first Deployment now runs as (what its pods will get a token for)."""
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(_kube(state, cluster))
    for controller in workload["controllers"]:
        if controller["kind"] == "Deployment":
            deployment = apps.read_namespaced_deployment(controller["name"], namespace)
            return str(deployment.spec.template.spec.service_account_name)
    return str(workload["service_account"])


def workload_credentials(
    state: Path, cluster: str, workload: dict[str, Any], from_pod: bool
) -> tuple[str, str, str, str | None]:
    """(who, client id, assertion, authority host) as the workload's SDK would have them.

    From a pod of its first Deployment: the client id and authority host the webhook injected, and the
    token the kubelet would project. Otherwise, the account its Deployment runs as and the report's client id.
    """
    from kubernetes import client as k8s

    api = _kube(state, cluster)
    deployments = [c["name"] for c in workload["controllers"] if c["kind"] == "Deployment"]
    if from_pod and deployments:
        core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        pod = newest_pods(core, apps, workload["namespace"], deployments[0])[0]
        mark = injected(pod)
        if mark.mutated:
            who = f"pod {workload['namespace']}/{pod.metadata.name}"
            client_id = mark.env.get("AZURE_CLIENT_ID", "(none injected)")
            return who, client_id, projected_token(core, pod), mark.env.get("AZURE_AUTHORITY_HOST")
    account = bound_account(state, cluster, workload["namespace"], workload)
    who = f"account {workload['namespace']}/{account}"
    return who, workload["client_id"], service_account_token(state, cluster, workload["namespace"], account), None


def service_account_token(state: Path, cluster: str, namespace: str, name: str) -> str:
    """A TokenRequest to the cluster's real API server for a service account (audience Entra's exchange)."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(_kube(state, cluster))
    spec = k8s.V1TokenRequestSpec(audiences=["api://AzureADTokenExchange"], expiration_seconds=3600)
    issued = core.create_namespaced_service_account_token(name, namespace, k8s.AuthenticationV1TokenRequest(spec=spec))
    if issued.status is None:
        raise RuntimeError(f"the API server issued no token for {namespace}/{name}")
    return str(issued.status.token)


def sign_in(
    env: dict[str, str], assertion: str, client_id: str, scope: str, sub: str, authority: str | None = None
) -> tuple[str, str]:
    """What the pod's SDK does with its projected token; then what ARM lets that token do."""
    url, ca = env["SANDBOX_URL"], env["AZURE_CA_BUNDLE"]
    with pod_credential(env, assertion, client_id, authority) as credential:
        try:
            token = credential.get_token(url + "/.default").token
        except (ClientAuthenticationError, CredentialUnavailableError) as exc:
            code = re.search(r"AADSTS\d+", str(exc))
            return f"refused by Entra ID ({code.group(0) if code else type(exc).__name__})", "-"
    headers = {"Authorization": f"Bearer {token}"}
    granted = requests.get(
        f"{url}{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01",
        verify=ca,
        timeout=30,
        headers=headers,
    ).json()["value"]
    actions = [
        a.rsplit("/", 2)[-2] + "/" + a.rsplit("/", 1)[-1] for p in granted for a in p["actions"] + p["dataActions"]
    ]
    elsewhere = requests.get(
        f"{url}/subscriptions/{sub}/resourcegroups?api-version=2022-09-01", verify=ca, timeout=30, headers=headers
    ).status_code
    return ", ".join(actions[:2]) + (" ..." if len(actions) > 2 else ""), f"{elsewhere}"


if __name__ == "__main__":
    main()
