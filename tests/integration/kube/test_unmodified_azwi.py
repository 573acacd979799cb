"""azwi, the workload identity project's own CLI, as an independent client: its walkthrough, then adoption.

azwi v1.6.0 (built from the Go module proxy by `scripts/build-kube.sh azwi`, like the webhook) is run unmodified, with
its fixed endpoints (management.azure.com, graph.microsoft.com, login.microsoftonline.com), reaching the sandbox
only through the public-hostnames proxy (HTTPS_PROXY) and trusting its CA (SSL_CERT_FILE). `azwi serviceaccount
create` runs all four phases: the app registration and its service principal, the ServiceAccount, the federated
credential (azwi's own base64url name, '=' padding and all), the role assignment. Every request it makes is read
back from the sandbox's request log: a 4xx other than what the real services answer such a client fails the test.

Then the collection adopts what azwi made: discover.yml writes the inventory, `--check --diff` plans with no
Azure or Graph write, site.yml twice (the second changes nothing), verify.yml, and teardown.yml gives back
exactly what azwi made. The pod signs in throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import Run, cluster_host, kubectl, pod_signs_in, run_playbook, write_requests
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.demo import ansible_env, app_manifest, ensure_resource_chain

CLUSTER, CLUSTER_RG, IDS, DATA_RG = "aks-azwi", "rg-aks-azwi", "rg-azwi-ids", "rg-azwi-data"
NAMESPACE, ACCOUNT, APP_NAME = "ledger", "ledger-sa", "ledger-azwi"
ROLE = "Storage Blob Data Reader"
# What the real services answer a client like azwi, besides success: kiota gzips every body it sends through its
# pipeline (token requests included) and resends plainly on a 415; the tenant comes from ARM's 401 challenge; a
# role assignment naming a service principal made seconds ago meets directory replication (azwi retries it).
EXPECTED_REFUSALS = {
    ("entra", 415, None),
    ("arm", 415, "UnsupportedMediaType"),
    ("arm", 401, "AuthenticationFailed"),
    ("arm", 400, "PrincipalNotFound"),
}


class Estate:
    def __init__(self, box: Sandbox, root: Path, scope: str, issuer: str) -> None:
        self.box, self.root, self.scope, self.issuer = box, root, scope, issuer
        sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
        self.env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
        api = k8s_config.new_client_from_config(str(box.state_dir / "kubeconfig"), context=CLUSTER)
        self.core, self.apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        self.runs = 0
        self.made: dict[str, Any] = {}

    def run(self, playbook: str, host_vars: str, *options: str) -> Run:
        self.runs += 1
        host = cluster_host(CLUSTER, CLUSTER_RG, IDS, [])
        del host["workload_identity_workloads"]  # the discovered host_vars declare them
        files = {f"host_vars/{CLUSTER}.yml": host_vars} if host_vars else {}
        return run_playbook(self.root / f"run-{self.runs}", CLUSTER, host, self.env, playbook, options, files=files)

    def discover(self) -> str:
        self.run("discover.yml", "")
        return (self.root / f"run-{self.runs}" / "host_vars" / f"{CLUSTER}.yml").read_text()

    def graph(self, path: str) -> Any:
        response = self.box.graph("GET", path)
        assert response.status_code == 200, response.text
        return response.json()

    def azure_state(self) -> dict[str, Any]:
        """The app registrations of that name, their service principals, credentials and role assignments."""
        apps = self.graph(f"/applications?$filter=displayName eq '{APP_NAME}'")["value"]
        state: dict[str, Any] = {"apps": sorted((a["id"], a["appId"], tuple(a["tags"])) for a in apps)}
        for app in apps:
            principal = self.graph(f"/servicePrincipals(appId='{app['appId']}')")
            listed = self.box.authz().role_assignments.list_for_subscription(
                filter=f"principalId eq '{principal['id']}'"
            )
            fics = self.graph(f"/applications/{app['id']}/federatedIdentityCredentials")["value"]
            state[app["appId"]] = {
                "principal": (principal["id"], tuple(principal["tags"])),
                "fics": sorted((f["name"], f["issuer"], f["subject"], tuple(f["audiences"])) for f in fics),
                "roles": sorted((a.name, a.role_definition_id.rsplit("/", 1)[1], a.scope.lower()) for a in listed),
            }
        return state

    def account(self) -> dict[str, Any]:
        sa = self.core.read_namespaced_service_account(ACCOUNT, NAMESPACE)
        return {"annotations": sa.metadata.annotations, "labels": sa.metadata.labels}

    def template(self) -> Any:
        deployment = self.apps.read_namespaced_deployment("ledger", NAMESPACE)
        return self.apps.api_client.sanitize_for_serialization(deployment.spec.template)

    def signs_in(self) -> str:
        return pod_signs_in(self.box, self.core, self.apps, NAMESPACE, "ledger")


def azwi_env(box: Sandbox, home: Path) -> dict[str, str]:
    """What a user sets to point an unmodified Go client at the sandbox (the sandbox README's public hostnames)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((box.state_dir / "kubeconfig").read_text())
    config["current-context"] = CLUSTER
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # no ~/.azure: the subscription is given
        "KUBECONFIG": str(kubeconfig),
        "HTTPS_PROXY": box.env["SANDBOX_HTTPS_PROXY"],
        "NO_PROXY": "127.0.0.1,localhost",
        "SSL_CERT_FILE": box.ca,
    }


def requests_since(box: Sandbox, offset: int) -> list[dict[str, Any]]:
    with (box.state_dir / "requests.jsonl").open("rb") as log:
        log.seek(offset)
        return [json.loads(line) for line in log.read().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def azwi() -> Path:
    """azwi from the build cache: built here if missing, or waited for while CI's background build runs."""
    built = subprocess.run(
        [str(PROJECT / "scripts" / "build-kube.sh"), "azwi"], capture_output=True, text=True, timeout=3600, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().rsplit("KUBE_BIN_DIR=", 1)[1]) / "azwi"


@pytest.fixture(scope="module")
def estate(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    box = kube_sandbox
    seeded = box.control.seed_cluster(
        CLUSTER_RG, CLUSTER, kube=True, oidc_issuer_enabled=True, workload_identity_enabled=True
    )
    box.resource_group(IDS)
    scope = f"{box.resource_group(DATA_RG)}/providers/Microsoft.Storage/storageAccounts/stledger"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    kubectl(box, CLUSTER, "create", "namespace", NAMESPACE)
    root = tmp_path_factory.mktemp("azwi")
    yield Estate(box, root, scope, seeded["issuer_url"])


def test_azwi_walkthrough_against_the_public_hostnames(azwi: Path, estate: Estate) -> None:
    box = estate.box
    offset = (box.state_dir / "requests.jsonl").stat().st_size
    done = subprocess.run(
        [
            str(azwi), "serviceaccount", "create",
            "--aad-application-name", APP_NAME,
            "--service-account-namespace", NAMESPACE,
            "--service-account-name", ACCOUNT,
            "--service-account-issuer-url", estate.issuer,
            "--azure-scope", estate.scope,
            "--azure-role", ROLE,
            "--subscription-id", box.subscription_id,
            "--auth-method", "client_secret",
            "--client-id", box.env["AZURE_CLIENT_ID"],
            "--client-secret", box.env["AZURE_CLIENT_SECRET"],
        ],
        env=azwi_env(box, estate.root / "home"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    made = requests_since(box, offset)
    served = [r for r in made if r["service"] in ("arm", "graph", "entra")]
    refused = [r for r in served if r["status"] >= 400]
    unexpected = [r for r in refused if (r["service"], r["status"], r.get("error")) not in EXPECTED_REFUSALS]
    assert unexpected == [], unexpected
    operations = {(r["service"], r["method"], r["status"]) for r in served}
    # Each phase reached the service it writes, through the public hostnames.
    assert {("graph", "POST", 201), ("arm", "PUT", 201), ("entra", "POST", 200)} <= operations, operations
    # The gzip bodies kiota sends were taken by Graph as they are: no Graph refusal at all.
    assert [r for r in refused if r["service"] == "graph"] == []

    state = estate.azure_state()
    [(app_object, app_id, _tags)] = state["apps"]
    fics = state[app_id]["fics"]
    [(fic_name, issuer, subject, audiences)] = fics
    assert fic_name.endswith("=") and (issuer, subject) == (
        estate.issuer,
        f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}",
    )
    assert audiences == ("api://AzureADTokenExchange",)
    assert [role for _name, role, _scope in state[app_id]["roles"]] == ["2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"]
    account = estate.account()
    assert account["annotations"]["azure.workload.identity/client-id"] == app_id
    assert account["annotations"]["azure.workload.identity/tenant-id"] == box.tenant_id
    # The walkthrough's last step, by hand: the application's Deployment runs as that ServiceAccount, labelled.
    deployment = app_manifest("Deployment", NAMESPACE, "ledger", "ghcr.io/contoso/ledger:1.0.0", replicas=1)
    pod = deployment["spec"]["template"]
    pod["metadata"]["labels"]["azure.workload.identity/use"] = "true"
    pod["spec"]["serviceAccountName"] = ACCOUNT
    kubectl(box, CLUSTER, "apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    assert estate.signs_in() == "ok"
    estate.made = {"azure": state, "account": account, "template": estate.template(), "app_object": app_object}


def test_the_collection_adopts_what_azwi_made_and_teardown_gives_it_back(estate: Estate) -> None:
    if not estate.made:
        pytest.skip("the azwi walkthrough did not complete")
    box = estate.box
    app_id = estate.made["azure"]["apps"][0][1]

    box.control.reset_stats()
    written = estate.discover()
    assert write_requests(box) == []
    [declared] = yaml.safe_load(written)["workload_identity_workloads"]
    assert (declared["identity_type"], declared["application_id"]) == ("application", app_id)
    assert (declared["namespace"], declared["service_account"]) == (NAMESPACE, ACCOUNT)
    assert [(r["role"], r["scope"].lower()) for r in declared["roles"]] == [(ROLE, estate.scope.lower())]

    box.control.reset_stats()
    plan = estate.run("site.yml", written, "--check", "--diff").report(plan=True)
    assert write_requests(box) == []  # the plan writes nothing to Azure or Graph
    [planned] = plan["workloads"]
    assert planned["identity_action"] == "unchanged"
    assert [(f["name"], f["action"]) for f in planned["federated_credentials"]] == [
        (estate.made["azure"][app_id]["fics"][0][0], "unchanged")
    ]
    assert [r["action"] for r in planned["roles"]] == ["unchanged"]

    results: list[str] = []
    finished = threading.Event()

    def keep_signing_in() -> None:
        while not finished.is_set():
            results.append(estate.signs_in())

    signer = threading.Thread(target=keep_signing_in)
    signer.start()
    try:
        estate.run("site.yml", written)
        again = estate.run("site.yml", written)
        assert again.changed == 0, again.output[-6000:]
        estate.run("verify.yml", written)
    finally:
        finished.set()
        signer.join()
    assert results and set(results) == {"ok"}, results[:3]
    # Adopted as it is: the same app, principal, credential and assignment, nothing added beside them.
    assert estate.azure_state() == estate.made["azure"]
    assert estate.template() == estate.made["template"]  # no restart

    estate.run("teardown.yml", written)
    assert estate.run("teardown.yml", written).changed == 0
    assert estate.azure_state() == estate.made["azure"]
    assert estate.account() == estate.made["account"]
    assert estate.signs_in() == "ok"
