"""App registrations through the whole rollout: a mixed inventory (managed identities and applications), an
application adopted from the az walkthrough, least privilege under Application.ReadWrite.OwnedBy, teardown.

Azure is asserted through Graph and the SDKs, Kubernetes through its API, and each application's workload signs
in through a real TokenRequest from the cluster's API server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import Run, cluster_host, pod_signs_in, run_playbook, write_requests
from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox.demo import ansible_env, deploy_apps, ensure_resource_chain, service_account_token, sign_in

READER = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
CLUSTER, CLUSTER_RG, IDENTITY_RG, DATA_RG = "aks-apps", "rg-aks-apps", "rg-identities-apps", "rg-data-apps"
APPS = [
    ("Deployment", "orders", "orders-api", "ghcr.io/contoso/orders-api:2.4.1"),
    ("Deployment", "billing", "billing", "ghcr.io/contoso/billing:1.9.0"),
    ("Deployment", "web", "web-frontend", "ghcr.io/contoso/web-frontend:5.0.3"),
]


@dataclass
class Estate:
    box: Sandbox
    env: dict[str, str]
    root: Path
    scope: str
    runs: int = 0

    def run(
        self,
        workloads: list[dict[str, Any]],
        playbook: str = "site.yml",
        expect_ok: bool = True,
        options: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        **host_vars: Any,
    ) -> Run:
        self.runs += 1
        more = {"workload_identity_prune": True, **host_vars}
        host = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, workloads, **more)
        folder = self.root / f"run-{self.runs}"
        return run_playbook(folder, CLUSTER, host, {**self.env, **(env or {})}, playbook, options, expect_ok)

    def graph(self, method: str, path: str, body: Any = None) -> Any:
        response = self.box.graph(method, path, body)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def account(self, namespace: str, name: str) -> Any:
        config = k8s_config.new_client_from_config(str(self.box.state_dir / "kubeconfig"), context=CLUSTER)
        return k8s.CoreV1Api(config).read_namespaced_service_account(name, namespace)


@pytest.fixture(scope="module")
def estate(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    box = kube_sandbox
    box.control.seed_cluster(CLUSTER_RG, CLUSTER, kube=True)
    box.resource_group(IDENTITY_RG)
    box.resource_group(DATA_RG)
    scope = f"{box.rg_id(DATA_RG)}/providers/Microsoft.Storage/storageAccounts/stappsorders"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    deploy_apps(box.state_dir, CLUSTER, APPS)
    root = tmp_path_factory.mktemp("apps")
    sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
    yield Estate(
        box, {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}, root, scope
    )


def by_hand(estate: Estate) -> dict[str, Any]:
    """The end state of the documented az walkthrough for billing: app, service principal, a federated credential
    for its service account (named by the operator), Reader."""
    app = estate.graph("POST", "/applications", {"displayName": "billing (made by hand)"})
    principal = estate.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    # The walkthrough starts with `az aks update --enable-oidc-issuer`: the plan then knows the issuer too.
    clusters = estate.box.aks().managed_clusters
    cluster = clusters.get(CLUSTER_RG, CLUSTER)
    cluster.oidc_issuer_profile.enabled = True
    issuer = clusters.begin_create_or_update(CLUSTER_RG, CLUSTER, cluster, polling_interval=0.2).result()
    issuer = issuer.oidc_issuer_profile.issuer_url
    trust = {
        "name": "billing-by-hand",
        "issuer": issuer,
        "subject": "system:serviceaccount:billing:billing",
        "audiences": ["api://AzureADTokenExchange"],
    }
    estate.graph("POST", f"/applications/{app['id']}/federatedIdentityCredentials", trust)
    estate.box.authz().role_assignments.create(
        estate.box.rg_id(DATA_RG),
        "3d7e2f4a-9b8c-4d6e-a1f0-2b3c4d5e6f70",
        {
            "role_definition_id": READER,
            "principal_id": principal["id"],
            "principal_type": "ServicePrincipal",
        },
    )
    return {"app": app, "principal": principal}


def signed_in_as(principal: dict[str, str]) -> dict[str, str]:
    """The environment a run signs in to Azure with as this principal (made by the sandbox's control API)."""
    return {
        "AZURE_CLIENT_ID": principal["client_id"],
        "AZURE_CLIENT_SECRET": principal["client_secret"],
        "AZURE_SECRET": principal["client_secret"],
    }


def mixed(estate: Estate, billing_app_id: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "orders-api",
            "namespace": "orders",
            "service_account": "orders-api",
            "identity_type": "application",
            "roles": [{"role": "Storage Blob Data Contributor", "scope": estate.scope}],
            "controllers": [{"kind": "Deployment", "name": "orders-api"}],
        },
        {
            "name": "billing",
            "namespace": "billing",
            "service_account": "billing",
            "identity_type": "application",
            "application_id": billing_app_id,
            "roles": [{"role": "Reader", "scope": estate.box.rg_id(DATA_RG)}],
            "controllers": [{"kind": "Deployment", "name": "billing"}],
        },
        {
            "name": "web-frontend",
            "namespace": "web",
            "service_account": "web-frontend",
            "roles": [{"role": "Reader", "scope": estate.scope}],
            "controllers": [{"kind": "Deployment", "name": "web-frontend"}],
        },
    ]


def outcome(report: dict[str, Any]) -> list[Any]:
    return [
        (
            w["name"],
            w["kind"],
            w["identity"],
            w["identity_action"],
            [(f["name"], f["action"]) for f in w["federated_credentials"]],
            [(r["role"], r["action"]) for r in w["roles"]],
            w["service_account_action"],
        )
        for w in report["workloads"]
    ]


def test_a_mixed_inventory_converges_adopts_and_signs_in(estate: Estate) -> None:
    hand = by_hand(estate)
    listed = mixed(estate, hand["app"]["appId"])
    plan = estate.run(listed, options=("--check", "--diff"))
    real = estate.run(listed, options=("--diff",))
    assert outcome(plan.report(plan=True)) == outcome(real.report())
    again = estate.run(listed)
    assert again.changed == 0, again.output[-6000:]
    report = {w["name"]: w for w in real.report()["workloads"]}
    assert [report[n]["kind"] for n in ("orders-api", "billing", "web-frontend")] == [
        "application",
        "application",
        "user_assigned",
    ]
    # Ours: one application by its unique name, owned and tagged, with its service principal.
    ours = estate.graph("GET", f"/applications(uniqueName='wi-{CLUSTER}-orders-orders-api')")
    assert f"wi-cluster:{CLUSTER}" in ours["tags"]
    assert estate.graph("GET", f"/applications?$filter=startswith(displayName,'wi-{CLUSTER}-orders')")["value"] == [
        {k: v for k, v in ours.items() if k != "@odata.context"}
    ]
    # The operator's: used as it is, its Reader and its credential adopted (no duplicate, no gap in sign-in).
    theirs = estate.graph("GET", f"/applications/{hand['app']['id']}")
    assert theirs["displayName"] == "billing (made by hand)" and theirs["tags"] == []
    # The operator's own assignment: adopted as it is (never marked).
    assert report["billing"]["roles"] == [
        {"role": "Reader", "scope": estate.box.rg_id(DATA_RG), "action": "unchanged", "adopted": True}
    ]
    fics = estate.graph("GET", f"/applications/{hand['app']['id']}/federatedIdentityCredentials")["value"]
    assert [(f["name"], f["subject"]) for f in fics] == [("billing-by-hand", "system:serviceaccount:billing:billing")]
    assert report["billing"]["federated_credentials"] == [
        {"name": "billing-by-hand", "subject": "system:serviceaccount:billing:billing", "action": "unchanged"}
    ]
    # The ServiceAccounts carry the apps' appIds; each workload signs in as its app's service principal.
    assert (
        estate.account("orders", "orders-api").metadata.annotations["azure.workload.identity/client-id"]
        == ours["appId"]
    )
    assert (
        estate.account("billing", "billing").metadata.annotations["azure.workload.identity/client-id"]
        == hand["app"]["appId"]
    )
    env = json.loads((estate.box.state_dir / "sandbox.json").read_text())
    token = service_account_token(estate.box.state_dir, CLUSTER, "orders", "orders-api")
    granted, elsewhere = sign_in(env, token, ours["appId"], estate.scope, estate.box.subscription_id)
    assert "containers/read" in granted and elsewhere == "403"  # its storage account, and nothing else


def test_least_privilege_owned_by_works_for_its_own_apps_and_refuses_a_foreign_one(estate: Estate) -> None:
    sub = f"/subscriptions/{estate.box.subscription_id}"
    automation = estate.box.control.create_principal(
        display_name="automation-owned-by",
        roles=[{"role": "Owner", "scope": sub}],
        graph_roles=["Application.ReadWrite.OwnedBy"],
    )
    env = signed_in_as(automation)
    own = [
        {
            "name": "lp-api",
            "namespace": "orders",
            "service_account": "lp-api",
            "identity_type": "application",
            "application_unique_name": f"wi-{CLUSTER}-least-privilege",
            "roles": [],
        }
    ]
    estate.run(own, env=env, workload_identity_prune=False)
    assert estate.run(own, env=env, workload_identity_prune=False).changed == 0
    foreign = estate.graph("POST", "/applications", {"displayName": "not yours"})
    refused = estate.run(
        [
            *own,
            {
                "name": "stranger",
                "namespace": "orders",
                "service_account": "stranger",
                "identity_type": "application",
                "application_id": foreign["appId"],
                "roles": [],
            },
        ],
        env=env,
        workload_identity_prune=False,
        expect_ok=False,
    )
    assert refused.returncode != 0
    assert foreign["appId"] in refused.output and "Application.ReadWrite.OwnedBy" in refused.output


def test_a_permission_the_automation_lacks_is_a_plan_problem_before_any_write(estate: Estate) -> None:
    """The automation may make identities (Managed Identity Contributor on their group) but not grant roles where a
    workload asks: the plan says so, naming the workload, the field, the scope and the role to grant, in check mode
    and in a real run, and nothing is written (no identity, no credential)."""
    sub = f"/subscriptions/{estate.box.subscription_id}"
    automation = estate.box.control.create_principal(
        display_name="automation-no-rbac",
        roles=[
            {"role": "Reader", "scope": sub},
            {"role": "Managed Identity Contributor", "scope": estate.box.rg_id(IDENTITY_RG)},
        ],
    )
    env = signed_in_as(automation)
    listed = [
        {
            "name": "no-grant",
            "namespace": "web",
            "service_account": "no-grant",
            "roles": [{"role": "Reader", "scope": estate.scope}],
        }
    ]
    estate.box.control.reset_stats()
    for options in (("--check",), ()):
        refused = estate.run(listed, env=env, options=options, workload_identity_prune=False, expect_ok=False)
        assert refused.returncode != 0
        said = " ".join(refused.output.split())
        assert (
            f"cluster {CLUSTER}: workload 'no-grant': roles[0]: scope: the automation principal may not "
            f"Microsoft.Authorization/roleAssignments/write at {estate.scope} (ARM's permissions API); grant it Role "
            "Based Access Control Administrator (or User Access Administrator) there or above"
        ) in said, said[-3000:]
    assert write_requests(estate.box) == []
    identities = estate.box.msi().user_assigned_identities.list_by_resource_group(IDENTITY_RG)
    assert f"id-{CLUSTER}-web-no-grant" not in [i.name for i in identities]


@contextmanager
def signing_in(estate: Estate, namespace: str, deployment: str) -> Iterator[list[str]]:
    """The deployment's newest pod signs in over and over (its projected token exchanged at Entra) while the body
    runs; every outcome is kept ("ok" or what Entra said). Between an old pod and its replacement nobody signs in."""
    config = k8s_config.new_client_from_config(str(estate.box.state_dir / "kubeconfig"), context=CLUSTER)
    core, apps = k8s.CoreV1Api(config), k8s.AppsV1Api(config)
    outcomes: list[str] = []
    done = threading.Event()

    def keep_signing_in() -> None:
        while not done.is_set():
            try:
                outcomes.append(pod_signs_in(estate.box, core, apps, namespace, deployment))
            except (IndexError, k8s.ApiException):
                pass
            done.wait(0.3)

    signer = threading.Thread(target=keep_signing_in)
    signer.start()
    try:
        yield outcomes
    finally:
        done.set()
        signer.join()


def test_switching_kinds_both_ways_keeps_every_pod_signing_in(estate: Estate) -> None:
    """From a managed identity to an app registration and back: the new one is made and trusted first, the
    ServiceAccount names it, the pods restart with it, and the old one goes only once no pod signs in as it."""
    config = k8s_config.new_client_from_config(str(estate.box.state_dir / "kubeconfig"), context=CLUSTER)
    # One replica that must stop before another starts (a rolling update would wait for a ready pod: none here).
    recreate = {"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}}
    k8s.AppsV1Api(config).patch_namespaced_deployment("web-frontend", "web", recreate)
    apps = estate.graph("GET", "/applications?$filter=displayName eq 'billing (made by hand)'")["value"]
    listed = mixed(estate, apps[0]["appId"])
    estate.run(listed)  # as the tests before left it, whether or not they ran
    identities = estate.box.msi().user_assigned_identities
    old = identities.get(IDENTITY_RG, f"id-{CLUSTER}-web-web-frontend")
    listed[2]["identity_type"] = "application"
    plan = estate.run(listed, options=("--check", "--diff"))
    planned = plan.report(plan=True)
    web = next(w for w in planned["workloads"] if w["name"] == "web-frontend")
    assert (web["kind"], web["identity_action"], web["service_account_action"]) == ("application", "created", "updated")
    assert "identities" not in planned["pruned"]
    replaced = f"replaced identity {old.name} (workload web-frontend, client id {old.client_id})"
    assert replaced in plan.output, plan.output[-6000:]
    with signing_in(estate, "web", "web-frontend") as outcomes:
        real = estate.run(listed, workload_identity_replaced_wait=300)
    assert outcomes and all(o == "ok" for o in outcomes), [o for o in outcomes if o != "ok"][:3]
    assert outcome(real.report()) == outcome(planned)
    assert f"{replaced}: removed once no pod signs in as it any more" in real.output, real.output[-6000:]
    app = estate.graph("GET", f"/applications(uniqueName='wi-{CLUSTER}-web-web-frontend')")
    annotation = estate.account("web", "web-frontend").metadata.annotations["azure.workload.identity/client-id"]
    assert annotation == app["appId"]
    assert old.name not in [i.name for i in identities.list_by_resource_group(IDENTITY_RG)]
    assert estate.run(listed).changed == 0

    # And back to a managed identity: the application is the one replaced.
    del listed[2]["identity_type"]
    with signing_in(estate, "web", "web-frontend") as outcomes:
        back = estate.run(listed, workload_identity_replaced_wait=300)
    assert outcomes and all(o == "ok" for o in outcomes), [o for o in outcomes if o != "ok"][:3]
    assert (
        f"replaced application {app['displayName']} (workload web-frontend, client id {app['appId']}): removed once "
        "no pod signs in as it any more"
    ) in back.output, back.output[-6000:]
    assert estate.box.graph("GET", f"/applications/{app['id']}").status_code == 404
    new = identities.get(IDENTITY_RG, f"id-{CLUSTER}-web-web-frontend")
    annotation = estate.account("web", "web-frontend").metadata.annotations["azure.workload.identity/client-id"]
    assert annotation == new.client_id != old.client_id
    assert estate.run(listed).changed == 0


def test_a_renamed_app_registration_workload_keeps_its_application_and_its_pods_sign_in(estate: Estate) -> None:
    apps = estate.graph("GET", "/applications?$filter=displayName eq 'billing (made by hand)'")["value"]
    listed = mixed(estate, apps[0]["appId"])
    estate.run(listed)
    ours = estate.graph("GET", f"/applications(uniqueName='wi-{CLUSTER}-orders-orders-api')")
    listed[0]["name"] = "orders-api-v2"  # the same namespace and ServiceAccount
    plan = estate.run(listed, options=("--check", "--diff"))
    kept = f"application {ours['displayName']} kept (client id {ours['appId']}, its pods' sign-in uninterrupted)"
    assert kept in plan.output, plan.output[-6000:]
    with signing_in(estate, "orders", "orders-api") as outcomes:
        real = estate.run(listed)
    assert outcomes and all(o == "ok" for o in outcomes), [o for o in outcomes if o != "ok"][:3]
    assert outcome(real.report()) == outcome(plan.report(plan=True))
    same = estate.graph("GET", f"/applications/{ours['id']}")
    assert same["appId"] == ours["appId"] and "wi-workload:orders/orders-api-v2" in same["tags"]
    assert estate.box.graph("GET", f"/applications(uniqueName='wi-{CLUSTER}-orders-orders-api-v2')").status_code == 404
    assert (
        estate.account("orders", "orders-api").metadata.annotations["azure.workload.identity/client-id"]
        == ours["appId"]
    )
    assert estate.run(listed).changed == 0


def test_teardown_removes_ours_and_keeps_the_adopted_app(estate: Estate) -> None:
    apps = estate.graph("GET", "/applications?$filter=displayName eq 'billing (made by hand)'")["value"]
    listed = mixed(estate, apps[0]["appId"])
    confirm = {"workload_identity_prune_confirm": CLUSTER}
    estate.run(listed, playbook="teardown.yml", workload_identity_teardown_everything=True, **confirm)
    ours = estate.box.graph("GET", f"/applications(uniqueName='wi-{CLUSTER}-orders-orders-api')")
    assert ours.status_code == 404
    deleted = estate.graph("GET", "/directory/deletedItems/microsoft.graph.application")["value"]
    assert f"wi-{CLUSTER}-orders-orders-api" in [d["uniqueName"] for d in deleted]
    kept = estate.graph("GET", f"/applications/{apps[0]['id']}")
    assert kept["displayName"] == "billing (made by hand)"
    # Its credential was the operator's (adopted, never made here): it stays.
    fics = estate.graph("GET", f"/applications/{apps[0]['id']}/federatedIdentityCredentials")["value"]
    assert [f["name"] for f in fics] == ["billing-by-hand"]
    assert estate.graph("GET", f"/servicePrincipals(appId='{apps[0]['appId']}')")["appId"] == apps[0]["appId"]
