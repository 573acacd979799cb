"""The whole rollout (playbooks/site.yml, playbooks/teardown.yml, the roles) against a kube-backed sandbox cluster.

The scenarios run in order on one cluster, as an operator would change an inventory over time: fresh rollout
(its check-mode plan first), add a workload, change roles, remove one with prune, tear everything down. Every
run is followed by a second one that must report changed=0. Azure is asserted through the SDKs, Kubernetes
through its API, and the token chain by signing in as each workload.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import Run, cluster_host, pod_signs_in, run_playbook
from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox.demo import ansible_env, deploy_apps, ensure_resource_chain, service_account_token, sign_in
from tests.sandbox.pods import TOKEN_FILE, injected, newest_pods

CLUSTER, CLUSTER_RG, IDENTITY_RG, DATA_RG = "aks-rollout", "rg-aks-rollout", "rg-identities-rollout", "rg-data-rollout"
APPS = [
    ("Deployment", "orders", "orders-api", "ghcr.io/contoso/orders-api:2.4.1"),
    ("CronJob", "orders", "orders-reconcile", "ghcr.io/contoso/orders-api:2.4.1"),
    ("StatefulSet", "ledger", "ledger", "ghcr.io/contoso/ledger:3.1.0"),
    ("Deployment", "web", "web-frontend", "ghcr.io/contoso/web-frontend:5.0.3"),
]
OWNED = {"managed-by": "workload_identity.aks", "wi-cluster": CLUSTER}


@dataclass
class Estate:
    box: Sandbox
    scopes: dict[str, str]
    env: dict[str, str]
    root: Path
    runs: int = 0

    def scope(self, name: str) -> str:
        return self.scopes[name]

    def run(
        self,
        workloads: list[dict[str, Any]],
        playbook: str | Path = "site.yml",
        options: tuple[str, ...] = (),
        expect_ok: bool = True,
        **host_vars: Any,
    ) -> Run:
        self.runs += 1
        more = {"workload_identity_prune": True, **host_vars}
        host = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, workloads, **more)
        folder = self.root / f"run-{self.runs}"
        return run_playbook(folder, CLUSTER, host, self.env, playbook, options, expect_ok)

    def converge(self, workloads: list[dict[str, Any]]) -> Run:
        """Plan (check mode), run, and run again: the plan must equal the run, the second run change nothing."""
        plan = self.run(workloads, options=("--check", "--diff"))
        real = self.run(workloads, options=("--diff",))
        assert outcome(plan.report(plan=True)) == outcome(real.report())
        self.box.control.reset_stats()
        again = self.run(workloads)
        assert again.changed == 0, again.output[-6000:]
        assert all(w["status"] == "unchanged" for w in again.report()["workloads"])
        # A cluster with nothing to change ends after its plan: its report is the plan's reads, and the three roles,
        # which would only skip, do not run for it (site.yml). The run that changed something ran them.
        assert "TASK [workload_identity.aks.oidc_issuer : Expose the issuer to the later roles]" in real.output
        assert "Validating arguments against arg spec 'report'" not in real.output
        assert "Validating arguments against arg spec 'report'" in again.output
        assert "TASK [workload_identity.aks.oidc_issuer :" not in again.output, again.output[-6000:]
        assert "TASK [workload_identity.aks.workloads : Converge Azure" not in again.output
        # Nothing to change: the plan's reads are the result. Each identity's credentials are listed once, not
        # a second time to converge.
        identities = {w["identity"] for w in again.report()["workloads"] if w["kind"] == "user_assigned"}
        listed = self.box.control.stats()["operations"].get("federatedIdentityCredentials.list", {}).get("total", 0)
        assert listed == len(identities), again.output[-3000:]
        return real

    # -- what is there -----------------------------------------------------------------------------
    def kube(self) -> Any:
        return k8s_config.new_client_from_config(str(self.box.state_dir / "kubeconfig"), context=CLUSTER)

    def account(self, namespace: str, name: str) -> Any | None:
        try:
            return k8s.CoreV1Api(self.kube()).read_namespaced_service_account(name, namespace)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def controller(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        from kubernetes.dynamic import DynamicClient

        api_version = "batch/v1" if kind == "CronJob" else "apps/v1"
        resource = DynamicClient(self.kube()).resources.get(api_version=api_version, kind=kind)
        return dict(resource.get(name=name, namespace=namespace).to_dict())

    def identities(self) -> dict[str, Any]:
        return {i.name: i for i in self.box.msi().user_assigned_identities.list_by_resource_group(IDENTITY_RG)}

    def assignments(self, principal_id: str) -> set[tuple[str, str]]:
        authz = self.box.authz()
        names = {
            d.id.rsplit("/", 1)[1]: d.role_name
            for d in authz.role_definitions.list(f"/subscriptions/{self.box.subscription_id}")
        }
        return {
            (names[a.role_definition_id.rsplit("/", 1)[1]], a.scope.lower())
            for a in authz.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'")
        }


def outcome(report: dict[str, Any]) -> dict[str, Any]:
    """What a report says was (or would be) done, without the ids Azure assigns on creation."""
    return {
        "workloads": [
            {
                "name": w["name"],
                "status": w["status"],
                "identity": (w["identity"], w["identity_action"]),
                "federated_credentials": [(f["name"], f["action"]) for f in w["federated_credentials"]],
                "roles": [(r["role"], r["scope"], r["action"]) for r in w["roles"]],
                "service_account": w["service_account_action"],
                "controllers": [(c["kind"], c["name"], c["action"]) for c in w["controllers"]],
            }
            for w in report["workloads"]
        ],
        "pruned": report["pruned"],
    }


@pytest.fixture(scope="module")
def estate(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    box = kube_sandbox
    box.control.seed_cluster(CLUSTER_RG, CLUSTER, kube=True)
    box.resource_group(IDENTITY_RG)
    box.resource_group(DATA_RG)
    data = f"{box.rg_id(DATA_RG)}/providers"
    scopes = {
        "orders": f"{data}/Microsoft.Storage/storageAccounts/strolloutorders/blobServices/default/containers/orders",
        "vault": f"{data}/Microsoft.KeyVault/vaults/kv-rollout",
        "registry": f"{data}/Microsoft.ContainerRegistry/registries/acrrollout",
        "ledger": f"{data}/Microsoft.Storage/storageAccounts/strolloutledger",
    }
    token = box.token()
    for scope in scopes.values():
        ensure_resource_chain(box.url, box.ca, token, scope)
    deploy_apps(box.state_dir, CLUSTER, APPS)
    root = tmp_path_factory.mktemp("rollout")
    # The demo's environment for ansible-playbook (this checkout as the collection, one context per cluster, no
    # single-cluster K8S_AUTH_*), with this session's temp dirs.
    sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
    env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
    yield Estate(box, scopes, env, root)


def workloads(estate: Estate) -> list[dict[str, Any]]:
    return [
        {
            "name": "orders-api",
            "namespace": "orders",
            "service_account": "orders-api",
            "token_expiration": 7200,
            "roles": [
                {"role": "Storage Blob Data Contributor", "scope": estate.scope("orders")},
                {"role": "Key Vault Secrets User", "scope": estate.scope("vault")},
            ],
            "controllers": [
                {"kind": "Deployment", "name": "orders-api"},
                {"kind": "CronJob", "name": "orders-reconcile"},
            ],
        },
        {
            "name": "web-frontend",
            "namespace": "web",
            "service_account": "web-frontend",
            "roles": [{"role": "AcrPull", "scope": estate.scope("registry")}],
            "controllers": [{"kind": "Deployment", "name": "web-frontend"}],
        },
    ]


def without_binding(template: dict[str, Any]) -> dict[str, Any]:
    """A pod template without the two fields the rollout owns: everything else must stay as the team wrote it."""
    template = copy.deepcopy(template)
    template["spec"].pop("serviceAccountName", None)
    template["spec"].pop("serviceAccount", None)
    template["metadata"].get("labels", {}).pop("azure.workload.identity/use", None)
    annotations = template["metadata"].get("annotations") or {}
    annotations.pop("workload-identity.aks/client-id", None)  # the client id its pods were made for
    if not annotations:
        template["metadata"].pop("annotations", None)
    return template


def test_fresh_rollout_plans_exactly_then_changes_nothing_the_second_time(estate: Estate) -> None:
    before = {name: estate.controller(kind, ns, name) for kind, ns, name, _image in APPS}
    run = estate.converge(workloads(estate))
    report = run.report()
    assert [w["status"] for w in report["workloads"]] == ["created", "created"]
    assert "orders-api [created] -> identity id-aks-rollout-orders-orders-api" in run.output  # the printed summary
    assert (run.report_dir / f"{CLUSTER}.md").read_text().startswith(f"# Rollout: {CLUSTER}")

    # Azure, through the SDK: one identity per workload, tagged, trusting exactly its service account, with
    # exactly the roles it declares.
    identities = estate.identities()
    issuer = estate.box.aks().managed_clusters.get(CLUSTER_RG, CLUSTER).oidc_issuer_profile.issuer_url
    for spec in workloads(estate):
        identity = identities[f"id-{CLUSTER}-{spec['namespace']}-{spec['name']}"]
        assert OWNED.items() <= identity.tags.items()
        fics = list(estate.box.msi().federated_identity_credentials.list(IDENTITY_RG, identity.name))
        assert [(f.issuer, f.subject) for f in fics] == [
            (issuer, f"system:serviceaccount:{spec['namespace']}:{spec['service_account']}")
        ]
        assert estate.assignments(identity.principal_id) == {(r["role"], r["scope"].lower()) for r in spec["roles"]}

        # Kubernetes, through its API: the account is annotated; pod templates are bound and otherwise untouched.
        account = estate.account(spec["namespace"], spec["service_account"])
        assert account is not None
        assert account.metadata.annotations["azure.workload.identity/client-id"] == identity.client_id
        assert account.metadata.annotations["azure.workload.identity/tenant-id"] == estate.box.tenant_id
        assert account.metadata.labels["app.kubernetes.io/managed-by"] == "workload_identity.aks"
        for controller in spec["controllers"]:
            now = estate.controller(controller["kind"], spec["namespace"], controller["name"])
            path = (
                ("spec", "jobTemplate", "spec", "template") if controller["kind"] == "CronJob" else ("spec", "template")
            )
            template_now, template_before = now, before[controller["name"]]
            for key in path:
                template_now, template_before = template_now[key], template_before[key]
            assert template_now["spec"]["serviceAccountName"] == spec["service_account"]
            assert template_now["metadata"]["labels"]["azure.workload.identity/use"] == "true"
            assert without_binding(template_now) == without_binding(template_before)
            assert now["metadata"]["annotations"]["workload-identity.aks/previous-service-account"] == ""
    orders = estate.account("orders", "orders-api")
    assert orders is not None
    assert orders.metadata.annotations["azure.workload.identity/service-account-token-expiration"] == "7200"
    # The StatefulSet no workload lists is untouched.
    assert "serviceAccountName" not in estate.controller("StatefulSet", "ledger", "ledger")["spec"]["template"]["spec"]


def test_discovery_of_a_rolled_out_cluster_declares_the_same_workloads_and_site_changes_nothing(estate: Estate) -> None:
    written = estate.root / "discovered"
    estate.run([], "discover.yml", ("-e", f"workload_identity_discover_dir={written}"))
    discovered = yaml.safe_load((written / f"{CLUSTER}.yml").read_text())["workload_identity_workloads"]

    def comparable(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            **spec,
            "identity_resource_group": IDENTITY_RG,
            "roles": sorted((r["role"], r["scope"].lower()) for r in spec["roles"]),
            "controllers": sorted((c["kind"], c["name"]) for c in spec["controllers"]),
        }

    assert [comparable(w) for w in discovered] == [comparable(w) for w in workloads(estate)]
    assert estate.run(discovered).changed == 0


def test_no_secret_or_token_in_any_output_or_file_even_with_vvv(estate: Estate) -> None:
    """-vvv runs of site.yml, discover.yml, teardown.yml (check mode) and verify.yml: the client secret, bearer and
    service-account tokens (JWTs) and the kubeconfig's tokens appear in no output, report or file the runs write."""
    kubeconfig = yaml.safe_load((estate.box.state_dir / "kubeconfig").read_text())
    secrets = {estate.box.env["AZURE_CLIENT_SECRET"], *(u["user"]["token"] for u in kubeconfig["users"])}
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
    runs = [
        estate.run(workloads(estate), options=("-vvv",)),
        estate.run([], "discover.yml", ("-vvv", "-e", f"workload_identity_discover_dir={estate.root / 'leak-scan'}")),
        estate.run(workloads(estate), "teardown.yml", ("--check", "-vvv")),
        # Verification requests a ServiceAccount token and exchanges it for an ARM token: neither may show.
        estate.run(workloads(estate), "verify.yml", ("-vvv", "-e", "workload_identity_verify_fail_on=none")),
    ]
    assert runs[0].changed == 0
    texts = [run.output for run in runs]
    folders = {run.report_dir.parent for run in runs} | {estate.root / "leak-scan"}
    texts += [f.read_text(errors="replace") for folder in folders for f in folder.rglob("*") if f.is_file()]
    assert len(texts) > 6
    for text in texts:
        assert not [s for s in secrets if s in text]
        assert not jwt.search(text), jwt.search(text)


def test_token_chain_works_for_bound_workloads_and_not_for_an_unbound_one(estate: Estate) -> None:
    box = estate.box
    report = json.loads(sorted(estate.root.glob("run-*/reports/aks-rollout.json"))[-1].read_text())
    for workload in report["workloads"]:
        assertion = service_account_token(box.state_dir, CLUSTER, workload["namespace"], workload["service_account"])
        allowed, elsewhere = sign_in(
            box.env, assertion, workload["client_id"], workload["roles"][0]["scope"], box.subscription_id
        )
        assert not allowed.startswith("refused"), allowed
        assert elsewhere == "403"
    orders = report["workloads"][0]
    assertion = service_account_token(box.state_dir, CLUSTER, "orders", "default")
    refused, _elsewhere = sign_in(
        box.env, assertion, orders["client_id"], orders["roles"][0]["scope"], box.subscription_id
    )
    assert refused == "refused by Entra ID (AADSTS700213)"  # its issuer is trusted, not its subject


def test_bound_deployments_roll_out_pods_that_the_add_on_webhook_gives_the_identity(estate: Estate) -> None:
    """The last link: the patched pod template makes a new ReplicaSet, whose pods the real webhook mutates."""
    core, apps = k8s.CoreV1Api(estate.kube()), k8s.AppsV1Api(estate.kube())
    identities = estate.identities()
    for spec in workloads(estate):
        identity = identities[f"id-{CLUSTER}-{spec['namespace']}-{spec['name']}"]
        for controller in spec["controllers"]:
            if controller["kind"] != "Deployment":
                continue
            sets = apps.list_namespaced_replica_set(spec["namespace"]).items
            assert len([r for r in sets if r.metadata.owner_references[0].name == controller["name"]]) == 2
            pods = newest_pods(core, apps, spec["namespace"], controller["name"])
            for made in pods:
                assert made.spec.service_account_name == spec["service_account"]
                mark = injected(made)
                assert mark.env["AZURE_CLIENT_ID"] == identity.client_id
                assert mark.env["AZURE_TENANT_ID"] == estate.box.tenant_id
                assert mark.env["AZURE_FEDERATED_TOKEN_FILE"] == TOKEN_FILE
                assert mark.audience == "api://AzureADTokenExchange"
                assert mark.expiration_seconds == spec.get("token_expiration", 3600)
    # The unlisted StatefulSet's pod was never labelled: the webhook left it alone.
    (ledger,) = core.list_namespaced_pod("ledger").items
    assert not injected(ledger).mutated


def test_add_a_workload_change_roles_and_remove_one_with_prune(estate: Estate) -> None:
    old_web = estate.identities()[f"id-{CLUSTER}-web-web-frontend"]
    changed = workloads(estate)
    # orders-api: the vault role goes, a reader role on the ledger account comes.
    changed[0]["roles"] = [
        {"role": "Storage Blob Data Contributor", "scope": estate.scope("orders")},
        {"role": "Storage Blob Data Reader", "scope": estate.scope("ledger")},
    ]
    # web-frontend is removed; ledger is added, on its own new service account.
    changed[1] = {
        "name": "ledger",
        "namespace": "ledger",
        "service_account": "ledger-sa",
        "roles": [{"role": "Storage Blob Data Contributor", "scope": estate.scope("ledger")}],
        "controllers": [{"kind": "StatefulSet", "name": "ledger"}],
    }
    # reporter runs nowhere yet: its namespace does not exist, so the rollout makes it (and teardown removes it).
    changed.append(
        {
            "name": "reporter",
            "namespace": "reports",
            "service_account": "reporter",
            "roles": [{"role": "Reader", "scope": estate.scope("ledger")}],
        }
    )
    run = estate.converge(changed)
    report = run.report()
    assert [(w["name"], w["status"]) for w in report["workloads"]] == [
        ("orders-api", "changed"),
        ("ledger", "created"),
        ("reporter", "created"),
    ]
    assert [r["action"] for r in report["workloads"][0]["roles"]] == ["unchanged", "created"]
    assert {i["name"] for i in report["pruned"]["identities"]} == {f"id-{CLUSTER}-web-web-frontend"}

    identities = estate.identities()
    assert f"id-{CLUSTER}-web-web-frontend" not in identities
    assert estate.assignments(old_web.principal_id) == set()  # not left behind, orphaned
    orders = identities[f"id-{CLUSTER}-orders-orders-api"]
    assert estate.assignments(orders.principal_id) == {
        ("Storage Blob Data Contributor", estate.scope("orders").lower()),
        ("Storage Blob Data Reader", estate.scope("ledger").lower()),
    }
    # web-frontend's account (made by the rollout) is gone and its Deployment is back as its team left it.
    assert estate.account("web", "web-frontend") is None
    web = estate.controller("Deployment", "web", "web-frontend")
    assert "serviceAccountName" not in web["spec"]["template"]["spec"]
    assert "azure.workload.identity/use" not in web["spec"]["template"]["metadata"]["labels"]
    assert "workload-identity.aks/previous-service-account" not in web["metadata"].get("annotations", {})
    ledger = estate.controller("StatefulSet", "ledger", "ledger")
    assert ledger["spec"]["template"]["spec"]["serviceAccountName"] == "ledger-sa"


def test_on_its_own_objects_what_the_inventory_dropped_goes_and_hand_made_drift_is_repaired(estate: Estate) -> None:
    """Unset means none on what the collection made: a condition, a description and a tag dropped from the inventory
    are removed (a tag somebody else put on the identity stays), and a condition added by hand is shown by the plan
    and repaired."""
    blob = "Microsoft.Storage/storageAccounts/blobServices/containers"
    condition = f"@Resource[{blob}:name] StringEquals 'orders'"
    conditioned = workloads(estate)[:1]
    first = conditioned[0]["roles"][0]
    conditioned[0]["roles"][0] = {**first, "condition": condition, "description": "the orders container only"}
    conditioned[0]["tags"] = {"cost-center": "42"}
    estate.run(conditioned)
    msi, name = estate.box.msi(), f"id-{CLUSTER}-orders-orders-api"
    tags = msi.user_assigned_identities.get(IDENTITY_RG, name).tags
    assert (tags["cost-center"], tags["wi-tags"]) == ("42", "cost-center")
    msi.user_assigned_identities.update(IDENTITY_RG, name, {"tags": {**tags, "owner": "platform"}})  # by hand
    authz = estate.box.authz()
    principal = estate.identities()[f"id-{CLUSTER}-orders-orders-api"].principal_id
    scope = first["scope"].lower()

    def on_orders() -> Any:
        listed = authz.role_assignments.list_for_subscription(filter=f"principalId eq '{principal}'")
        return next(a for a in listed if a.scope.lower() == scope)

    # The declared description, then the collection's mark (what finds the assignment again once its identity goes).
    mark = f"[workload_identity.aks format=1 cluster={CLUSTER} place={estate.box.subscription_id}/"
    assert on_orders().condition == condition
    assert on_orders().description.startswith(f"the orders container only {mark}")
    dropped = estate.converge(workloads(estate)[:1])
    assert [r["action"] for r in dropped.report()["workloads"][0]["roles"]] == ["updated", "unchanged"]
    assert on_orders().condition is None and on_orders().description.startswith(mark)
    tags = msi.user_assigned_identities.get(IDENTITY_RG, name).tags
    assert "cost-center" not in tags and "wi-tags" not in tags and tags["owner"] == "platform"
    # Someone narrows it by hand: drift on the collection's own assignment.
    ours = on_orders()
    body = {
        "role_definition_id": ours.role_definition_id,
        "principal_id": principal,
        "principal_type": "ServicePrincipal",
    }
    authz.role_assignments.create(ours.scope, ours.name, {**body, "condition": condition, "condition_version": "2.0"})
    plan = estate.run(workloads(estate)[:1], options=("--check", "--diff"))
    assert [r["action"] for r in plan.report(plan=True)["workloads"][0]["roles"]] == ["updated", "unchanged"]
    assert estate.run(workloads(estate)[:1]).changed >= 1
    assert on_orders().condition is None and on_orders().description.startswith(mark)  # its mark written back


def test_a_missing_controller_fails_before_any_change_or_warns(estate: Estate) -> None:
    listed = workloads(estate)[:1] + [
        {
            "name": "ghost",
            "namespace": "orders",
            "service_account": "ghost",
            "roles": [{"role": "Reader", "scope": estate.scope("orders")}],
            "controllers": [{"kind": "Deployment", "name": "ghost-api"}],
        }
    ]
    failed = estate.run(listed, expect_ok=False)
    assert failed.returncode != 0
    missing = "cluster aks-rollout: workload 'ghost': controllers: Deployment orders/ghost-api does not exist"
    assert missing in failed.output
    assert f"id-{CLUSTER}-orders-ghost" not in estate.identities()
    warned = estate.run(listed, workload_identity_missing_workloads="warn")
    # (ansible-core 2.16 wraps warnings at the terminal's width.)
    assert "Deployment orders/ghost-api does not exist" in " ".join(warned.output.split())
    assert f"id-{CLUSTER}-orders-ghost" in estate.identities()
    assert estate.account("orders", "ghost") is not None


def test_invalid_inventory_fails_before_any_change_naming_cluster_workload_and_field(estate: Estate) -> None:
    orders, sub = estate.scope("orders"), estate.box.subscription_id
    ok = {"namespace": "orders", "roles": [{"role": "Reader", "scope": orders}]}
    mistakes = [
        ({"name": "Orders_API", "service_account": "a1", **ok}, "workload 'Orders_API': name:"),
        ({"name": "no-namespace", "service_account": "a2", "roles": []}, "workload 'no-namespace': namespace:"),
        ({"name": "bad-account", "service_account": "Bad SA!", **ok}, "workload 'bad-account': service_account:"),
        ({"name": "twice", "service_account": "a3", **ok}, None),
        ({"name": "twice", "service_account": "a4", **ok}, "workload 'twice': name: declared twice"),
        ({"name": "shared-sa", "service_account": "a3", **ok}, "workload 'shared-sa': service_account: orders/a3"),
        (
            {"name": "roles-text", "service_account": "a5", "namespace": "orders", "roles": "Reader"},
            "workload 'roles-text': roles:",
        ),
        (
            {"name": "no-role", "service_account": "a6", "namespace": "orders", "roles": [{"scope": orders}]},
            "workload 'no-role': roles[0]: role:",
        ),
        (
            {
                "name": "bad-scope",
                "service_account": "a7",
                "namespace": "orders",
                "roles": [{"role": "Reader", "scope": "/subscriptions/nope"}],
            },
            "workload 'bad-scope': roles[0]: scope:",
        ),
        (
            {
                "name": "owner",
                "service_account": "a8",
                "namespace": "orders",
                "roles": [{"role": "Owner", "scope": f"/subscriptions/{sub}"}],
            },
            "workload 'owner': roles[0]: role: Owner lets the workload grant roles",
        ),
        (
            {"name": "typo", "servce_account": "a9", "service_account": "a9", **ok},
            "workload 'typo': servce_account: unknown field",
        ),
        (
            {"name": "pod-kind", "service_account": "b1", **ok, "workloads": [{"kind": "Pod", "name": "x"}]},
            "workload 'pod-kind': workloads[0]: kind:",
        ),
        (
            {"name": "job-kind", "service_account": "b5", **ok, "controllers": [{"kind": "ReplicaSet", "name": "x"}]},
            "workload 'job-kind': controllers[0]: kind:",
        ),
        (
            {"name": "short-token", "service_account": "b2", **ok, "token_expiration": 60},
            "workload 'short-token': token_expiration:",
        ),
        (
            {
                "name": "steals-orders",
                "service_account": "b3",
                **ok,
                "workloads": [
                    {"kind": "Deployment", "name": "orders-api"},
                    {"kind": "Deployment", "name": "orders-api"},
                ],
            },
            "workload 'steals-orders': workloads[1]: name: Deployment orders/orders-api is listed twice",
        ),
        (
            {"name": "subjects", "service_account": "b4", **ok, "extra_subjects": "system:serviceaccount:x:y"},
            "workload 'subjects': extra_subjects:",
        ),
    ]
    estate.box.control.reset_stats()
    failed = estate.run([m for m, _expected in mistakes], expect_ok=False)
    assert failed.returncode != 0
    problems = [p for _m, p in mistakes if p]
    for expected in problems:
        assert f"cluster aks-rollout: {expected}" in failed.output, expected
    # All at once, in one message (the repeated name also makes a second problem: the identity it would share).
    assert f"{len(problems) + 1} problem(s) in the workloads of aks-rollout" in failed.output
    # Nothing was asked of Azure, let alone changed; the run stopped before the issuer role.
    assert estate.box.control.stats()["totals"].get("arm", 0) == 0
    assert "Enable the OIDC issuer" not in failed.output


def test_two_inventory_hosts_for_one_cluster_are_refused_before_anything_is_read(estate: Estate) -> None:
    """A second host naming this cluster (workload_identity_cluster_name) would prune the first's workloads."""
    orders = estate.scope("orders")
    mine = [{"name": "alias-a", "namespace": "orders", "service_account": "alias-a", "roles": []}]
    theirs = [{"name": "alias-b", "namespace": "orders", "service_account": "alias-b", "roles": [
        {"role": "Reader", "scope": orders}
    ]}]  # fmt: skip
    alias = cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, theirs, workload_identity_cluster_name=CLUSTER)
    estate.runs += 1
    estate.box.control.reset_stats()
    for playbook in ("site.yml", "teardown.yml"):
        refused = run_playbook(
            estate.root / f"run-{estate.runs}-{playbook}",
            CLUSTER,
            cluster_host(CLUSTER, CLUSTER_RG, IDENTITY_RG, mine, workload_identity_prune=True),
            estate.env,
            playbook,
            expect_ok=False,
            more_hosts={f"{CLUSTER}-alias": alias},
        )
        assert refused.returncode != 0
        assert f"is declared by inventory hosts {CLUSTER} and {CLUSTER}-alias" in refused.output, refused.output[-3000:]
        assert "Keep one host per cluster" in refused.output
    # Nothing was asked of Azure or Kubernetes.
    assert estate.box.control.stats()["totals"].get("arm", 0) == 0


def test_teardown_of_listed_workloads_keeps_the_rest_and_identities_made_elsewhere(estate: Estate) -> None:
    """An identity the platform team made is only used: teardown removes this cluster's trust and roles on it."""
    msi = estate.box.msi()
    shared = msi.user_assigned_identities.create_or_update(
        IDENTITY_RG, "id-platform-shared", {"location": "westeurope"}
    )
    ghost = {
        "name": "ghost",
        "namespace": "orders",
        "service_account": "ghost",
        "roles": [{"role": "Reader", "scope": estate.scope("orders")}],
    }
    byo = {
        "name": "batch",
        "namespace": "orders",
        "service_account": "batch",
        "identity_name": "id-platform-shared",
        "roles": [{"role": "Reader", "scope": estate.scope("vault")}],
    }
    estate.converge([*workloads(estate)[:1], ghost, byo])
    assert len(list(msi.federated_identity_credentials.list(IDENTITY_RG, shared.name))) == 1
    assert estate.assignments(shared.principal_id) == {("Reader", estate.scope("vault").lower())}

    removed = estate.run([ghost, byo], playbook="teardown.yml")
    assert removed.changed >= 1
    again = estate.run([ghost, byo], playbook="teardown.yml")
    assert again.changed == 0, again.output[-4000:]
    identities = estate.identities()
    assert "id-platform-shared" in identities and f"id-{CLUSTER}-orders-ghost" not in identities
    assert list(msi.federated_identity_credentials.list(IDENTITY_RG, shared.name)) == []
    assert estate.assignments(shared.principal_id) == set()
    assert estate.account("orders", "batch") is None and estate.account("orders", "ghost") is None
    # What was not listed stays as it was.
    assert f"id-{CLUSTER}-orders-orders-api" in identities
    orders = estate.account("orders", "orders-api")
    assert orders is not None and "azure.workload.identity/client-id" in orders.metadata.annotations
    deployment = estate.controller("Deployment", "orders", "orders-api")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "orders-api"


def test_teardown_keeps_a_namespace_it_made_that_now_holds_a_teams_objects(estate: Estate) -> None:
    """The team put a PVC, a Secret and a Deployment scaled to 0 in the namespace the rollout created: teardown of
    the workload removes what the collection made and keeps the namespace, with all of that in it."""
    archive = {
        "name": "archive",
        "namespace": "archive",
        "service_account": "archive",
        "roles": [{"role": "Reader", "scope": estate.scope("orders")}],
    }
    estate.converge([*workloads(estate)[:1], archive])
    core, apps = k8s.CoreV1Api(estate.kube()), k8s.AppsV1Api(estate.kube())
    assert core.read_namespace("archive").metadata.labels["app.kubernetes.io/managed-by"] == "workload_identity.aks"
    claim = {
        "metadata": {"name": "ledger"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core.create_namespaced_persistent_volume_claim("archive", claim)
    core.create_namespaced_secret("archive", {"metadata": {"name": "db"}, "stringData": {"password": "kept"}})
    pod = {"metadata": {"labels": {"app": "archiver"}}, "spec": {"containers": [{"name": "a", "image": "archiver:1"}]}}
    spec = {"replicas": 0, "selector": {"matchLabels": {"app": "archiver"}}, "template": pod}
    apps.create_namespaced_deployment("archive", {"metadata": {"name": "archiver"}, "spec": spec})

    plan = estate.run([archive], playbook="teardown.yml", options=("--check", "--diff"))
    assert "still holds" in plan.output, plan.output[-4000:]
    estate.run([archive], playbook="teardown.yml")
    again = estate.run([archive], playbook="teardown.yml")
    assert again.changed == 0, again.output[-4000:]
    assert estate.account("archive", "archive") is None  # what the collection made is gone
    assert core.read_namespace("archive").metadata.deletion_timestamp is None
    assert core.read_namespaced_persistent_volume_claim("ledger", "archive").metadata.name == "ledger"
    assert core.read_namespaced_secret("db", "archive").metadata.name == "db"
    assert apps.read_namespaced_deployment("archiver", "archive").spec.replicas == 0


def test_a_namespace_being_deleted_stops_the_plan_before_azure_is_touched(estate: Estate) -> None:
    """Terminating (here held by a finalizer): the API server would refuse the ServiceAccount with a 403 after the
    identity was made; the plan finds it first."""
    core = k8s.CoreV1Api(estate.kube())
    core.create_namespace({"metadata": {"name": "closing"}})
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    core.create_namespaced_config_map("closing", held)
    core.delete_namespace("closing")
    try:
        closing = {
            "name": "closing",
            "namespace": "closing",
            "service_account": "closing",
            "roles": [{"role": "Reader", "scope": estate.scope("orders")}],
        }
        estate.box.control.reset_stats()
        failed = estate.run([*workloads(estate)[:1], closing], expect_ok=False)
        assert failed.returncode != 0
        expected = f"cluster {CLUSTER}: workload 'closing': namespace: closing is being deleted (Terminating)"
        assert expected in failed.output, failed.output[-4000:]
        writes = [op for op in estate.box.control.stats()["operations"] if op.rsplit(".", 1)[-1] in ("put", "delete")]
        assert writes == [] and f"id-{CLUSTER}-closing-closing" not in estate.identities()
    finally:
        core.patch_namespaced_config_map("held", "closing", {"metadata": {"finalizers": None}})


def test_a_workload_given_another_identity_signs_in_throughout_and_the_old_one_goes_after_its_pods(
    estate: Estate,
) -> None:
    """A new identity_name: the new identity is made and trusted first, the ServiceAccount names it, the Deployment's
    pods restart with it (its template records the client id), and the old identity goes only once no pod signs in
    as it, in the same run. Its pods sign in at every moment a pod exists."""
    core, apps = k8s.CoreV1Api(estate.kube()), k8s.AppsV1Api(estate.kube())
    # One replica that must stop before another starts (a rolling update would wait for a ready pod: none here).
    apps.patch_namespaced_deployment(
        "orders-api", "orders", {"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}}
    )
    estate.run(workloads(estate)[:1])  # as the tests before left it, whether or not they ran
    old = estate.identities()[f"id-{CLUSTER}-orders-orders-api"]
    moved = workloads(estate)[:1]
    moved[0]["identity_name"] = "id-orders-api-v2"
    plan = estate.run(moved, options=("--check", "--diff"))
    assert f"client id changes from {old.client_id}" in plan.output, plan.output[-6000:]
    assert f"replaced identity {old.name} (workload orders-api, client id {old.client_id})" in plan.output
    assert old.name in estate.identities()

    outcomes: list[str] = []
    done = threading.Event()

    def keep_signing_in() -> None:
        while not done.is_set():
            try:
                outcomes.append(pod_signs_in(estate.box, core, apps, "orders", "orders-api"))
            except (IndexError, k8s.ApiException):
                pass  # between the old pod and the new one (Recreate): nobody to sign in
            done.wait(0.3)

    signer = threading.Thread(target=keep_signing_in)
    signer.start()
    try:
        # Bounded below the run's own timeout, so that a pod left on the old identity fails here, plainly.
        real = estate.run(moved, options=("--diff",), workload_identity_replaced_wait=300)
    finally:
        done.set()
        signer.join()
    assert outcomes and all(o == "ok" for o in outcomes), [o for o in outcomes if o != "ok"][:3]
    assert f"replaced identity {old.name} (workload orders-api, client id {old.client_id}): removed" in real.output
    identities = estate.identities()
    new = identities["id-orders-api-v2"]
    assert old.name not in identities and estate.assignments(old.principal_id) == set()
    assert estate.account("orders", "orders-api").metadata.annotations["azure.workload.identity/client-id"] == (
        new.client_id
    )
    assert {injected(p).env["AZURE_CLIENT_ID"] for p in newest_pods(core, apps, "orders", "orders-api")} == {
        new.client_id
    }
    assert pod_signs_in(estate.box, core, apps, "orders", "orders-api") == "ok"
    again = estate.run(moved)
    assert again.changed == 0, again.output[-6000:]


def test_a_client_id_put_right_restarts_the_pods_made_while_it_was_wrong(estate: Estate) -> None:
    """An operator sets a wrong client id on a ServiceAccount and a pod restarts meanwhile (the webhook gives it the
    wrong one): the run that repairs the account restarts that pod's controller, says so, and the next changes
    nothing."""
    core, apps = k8s.CoreV1Api(estate.kube()), k8s.AppsV1Api(estate.kube())
    apps.patch_namespaced_deployment(
        "orders-api", "orders", {"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}}
    )
    listed = workloads(estate)[:1]
    estate.run(listed)  # as the tests before left it, whether or not they ran
    right = estate.account("orders", "orders-api").metadata.annotations["azure.workload.identity/client-id"]
    wrong = "3f0c1e7a-5b2d-4c8e-9a61-0d4b7e2f9c11"
    core.patch_namespaced_service_account(
        "orders-api", "orders", {"metadata": {"annotations": {"azure.workload.identity/client-id": wrong}}}
    )
    pod = newest_pods(core, apps, "orders", "orders-api")[0]
    core.delete_namespaced_pod(pod.metadata.name, "orders", grace_period_seconds=0)

    def client_ids() -> set[str]:
        return {injected(p).env["AZURE_CLIENT_ID"] for p in newest_pods(core, apps, "orders", "orders-api")}

    deadline = time.monotonic() + 60
    while wrong not in client_ids():
        assert time.monotonic() < deadline, "the ReplicaSet made no pod with the wrong client id"
        time.sleep(0.25)
    plan = estate.run(listed, options=("--check", "--diff"))
    real = estate.run(listed, options=("--diff",))
    for run in (plan, real):
        assert "1 pod(s) made with a wrong client id; its pods restart" in run.output, run.output[-6000:]
        assert f"client id changes from {wrong} to {right}: its controllers' pods get it" in run.output
    deadline = time.monotonic() + 60
    while client_ids() != {right}:
        assert time.monotonic() < deadline, "the Deployment's pods were not restarted with the right client id"
        time.sleep(0.25)
    assert pod_signs_in(estate.box, core, apps, "orders", "orders-api") == "ok"
    again = estate.run(listed)
    assert again.changed == 0, again.output[-6000:]


def test_teardown_leaves_nothing_this_collection_made(estate: Estate) -> None:
    listed = workloads(estate)[:1]
    everything = ("-e", "workload_identity_teardown_everything=true")
    confirmed = (*everything, "-e", f"workload_identity_prune_confirm={CLUSTER}")
    # Deletion is deliberate: without the cluster's name it is refused, each deletion listed, nothing changed.
    estate.box.control.reset_stats()
    refused = estate.run(listed, playbook="teardown.yml", options=everything, expect_ok=False)
    assert refused.returncode != 0
    assert f"cluster {CLUSTER}: prune would delete everything this collection made on the cluster" in refused.output
    assert "ServiceAccount orders/orders-api (deleted)" in refused.output
    assert f"workload_identity_prune_confirm: {CLUSTER}" in refused.output
    writes = [op for op in estate.box.control.stats()["operations"] if op.rsplit(".", 1)[-1] in ("put", "delete")]
    assert writes == []
    plan = estate.run(listed, playbook="teardown.yml", options=("--check", *confirmed))
    assert plan.changed >= 1
    # Check mode changed nothing.
    assert [i for i in estate.identities().values() if (i.tags or {}).get("wi-cluster") == CLUSTER]
    first = estate.run(listed, playbook="teardown.yml", options=confirmed)
    assert first.changed >= 1
    again = estate.run(listed, playbook="teardown.yml", options=confirmed)
    assert again.changed == 0, again.output[-4000:]

    assert not [i for i in estate.identities().values() if (i.tags or {}).get("wi-cluster") == CLUSTER]
    for namespace, name in (("orders", "orders-api"), ("orders", "ghost"), ("ledger", "ledger-sa")):
        assert estate.account(namespace, name) is None
    for kind, namespace, name, _image in APPS:
        obj = estate.controller(kind, namespace, name)
        labels = obj["metadata"].get("labels") or {}
        assert not [k for k in labels if k.startswith("workload-identity.aks/")]
        path = ("spec", "jobTemplate", "spec", "template") if kind == "CronJob" else ("spec", "template")
        template = obj
        for key in path:
            template = template[key]
        assert "serviceAccountName" not in template["spec"], (kind, name)
        assert "azure.workload.identity/use" not in (template["metadata"].get("labels") or {})
        assert "workload-identity.aks/client-id" not in (template["metadata"].get("annotations") or {})
    # The namespace the rollout made is deleted (a sandbox without controllers leaves it Terminating); those the
    # teams made stay.
    core = k8s.CoreV1Api(estate.kube())
    namespaces = {n.metadata.name: n for n in core.list_namespace().items}
    assert "reports" not in namespaces or namespaces["reports"].metadata.deletion_timestamp is not None
    assert namespaces["orders"].metadata.deletion_timestamp is None
