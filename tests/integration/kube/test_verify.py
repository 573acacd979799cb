"""playbooks/verify.yml after the demo's rollout: every workload verified, then one link broken at a time by hand.

The estate is the demo's (examples/inventories/sandbox: two clusters with local accounts disabled, managed identities
and an app registration), rolled out by an AWX job with the Azure credential alone (site.yml through ansible-runner).
Each break is made as an operator or an accident would make it (kubectl through the sandbox's own static credential,
the Azure SDKs), verify runs on that cluster, and the review must name exactly that workload, that link and the
remedy, and nothing else; then the break is undone and the next one made.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.awx_jobs import awx_project, awx_task_env, azure_rm_credential, run_jobs
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.demo import INVENTORY, ansible_env, prepare_estate

DEV = "aks-dev"
ORDERS_RG = "rg-identities-dev"
ORDERS_IDENTITY = "id-aks-dev-orders-orders-api"
ORDERS_FIC = "aks-dev-orders-orders-api"
ORDERS_SUBJECT = "system:serviceaccount:orders:orders-api"
WEBHOOK_CONFIGURATION = "azure-wi-webhook-mutating-webhook-configuration"


@dataclass
class Estate:
    box: Sandbox
    env: dict[str, str]
    root: Path
    runs: int = 0
    rollouts: list[Any] = field(default_factory=list)

    def playbook(self, playbook: str, *options: str) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        reports = self.root / f"run-{self.runs}"
        env = {**self.env, "WORKLOAD_IDENTITY_REPORT_DIR": str(reports)}
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), playbook, *options]
        done = subprocess.run(command, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False)
        (self.root / f"run-{self.runs}.txt").write_text(done.stdout + done.stderr)
        return done

    def verify(self, *options: str, expect_ok: bool | None = None) -> tuple[dict[str, Any], str]:
        """verify.yml on aks-dev (unless told otherwise): the run's review and the output."""
        done = self.playbook("playbooks/verify.yml", "--limit", DEV, *options)
        output = done.stdout + done.stderr
        if expect_ok is not None:
            assert (done.returncode == 0) is expect_ok, output[-6000:]
        review = json.loads((self.root / f"run-{self.runs}" / "access-review.json").read_text())
        return review, output

    def kube(self) -> Any:
        return k8s_config.new_client_from_config(str(self.box.state_dir / "kubeconfig"), context=DEV)


def findings(review: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(workload, link, message) of every finding not accepted."""
    return [
        (w["name"], f["link"], f["message"] + " | " + f["remedy"])
        for c in review["clusters"]
        for w in c["workloads"]
        for f in w["findings"]
        if not f["accepted"]
    ]


@pytest.fixture(scope="module")
def estate(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    """The demo's estate in the session's sandbox (local accounts disabled), rolled out by an AWX job: the example
    project with the demo inventory, through ansible-runner, with only AWX's Azure RM credential (no kubeconfig, no
    K8S_AUTH_*), ending with verification; then the same job again."""
    state = kube_sandbox.state_dir
    sandbox_env = json.loads((state / "sandbox.json").read_text())
    prepare_estate(state, sandbox_env, kube=True)
    # verify.yml's own runs below: ansible-playbook with the demo's environment, its kubeconfig taken away.
    env = {k: v for k, v in ansible_env(sandbox_env, state).items() if k != "KUBECONFIG"}
    found = Estate(kube_sandbox, env, tmp_path_factory.mktemp("verify"))
    found.rollouts = awx_rollout(found, sandbox_env)
    review = json.loads((found.root / "run-1" / "access-review.json").read_text())
    assert review["summary"] == {"clusters": 2, "workloads": 7, "verified": 7, "findings": 0, "accepted": 0}
    yield found


def awx_rollout(estate: Estate, sandbox_env: dict[str, str]) -> list[Any]:
    runner_dir = estate.root / "runner"
    project = awx_project(runner_dir, {"sandbox": INVENTORY})
    envvars = {
        **azure_rm_credential(sandbox_env),
        **awx_task_env(sandbox_env),
        "ANSIBLE_COLLECTIONS_PATH": estate.env["ANSIBLE_COLLECTIONS_PATH"],
        "ANSIBLE_HOME": estate.env["ANSIBLE_HOME"],
        "ANSIBLE_LOCAL_TEMP": estate.env["ANSIBLE_LOCAL_TEMP"],
        "ANSIBLE_FORCE_COLOR": "0",
    }
    path = f"{Path(sys.executable).parent}:{estate.env['PATH']}"  # the execution environment's ansible-playbook
    runs = []
    # The second run has nothing to change: its clusters end after their plan, and are still verified.
    for ident, options in (
        ("rollout", "-e workload_identity_verify=true"),
        ("again", "-e workload_identity_verify=true"),
    ):
        estate.runs += 1
        reports = {"WORKLOAD_IDENTITY_REPORT_DIR": str(estate.root / f"run-{estate.runs}")}
        [run] = run_jobs(runner_dir, project, "sandbox", {**envvars, **reports}, path, [(ident, options)])
        assert (run.status, run.rc) == ("successful", 0), run.stdout.read()[-6000:]
        runs.append(run)
    return runs


def test_an_awx_job_with_only_the_azure_rm_credential_converged_the_demo_and_changed_nothing_again(
    estate: Estate,
) -> None:
    rollout, again = estate.rollouts
    assert set(rollout.stats["changed"]) == {"aks-dev", "aks-prod"}
    assert all(count > 0 for count in rollout.stats["changed"].values())
    assert sum(again.stats["changed"].values()) == 0, again.stats
    # The job had no way to Kubernetes but the Azure credential: no kubeconfig, no K8S_AUTH_* (runner records the
    # environment it gave ansible-playbook in env/envvars), and the clusters have no local account to give one.
    given = (estate.root / "runner" / "env" / "envvars").read_text()
    assert "KUBECONFIG" not in given and "K8S_AUTH_" not in given
    assert "AZURE_SECRET" in given
    events = [e for e in rollout.events if e["event"] == "runner_on_ok"]
    assert any(e["event_data"].get("task") == "Summary and reports (JSON and Markdown)" for e in events)
    # The job again: nothing to change, so each cluster ended after its plan, with its report (not a task of the
    # three roles ran), and was still verified, with the issuer its plan read (not read again).
    ran = [
        (e["event_data"]["host"], e["event_data"].get("role"), e["event_data"].get("task"))
        for e in again.events
        if e["event"] == "runner_on_ok"
    ]
    assert not [t for t in ran if t[1] == "oidc_issuer" or str(t[2]).startswith(("Converge", "Read the OIDC"))], ran
    reported = sorted(host for host, _role, task in ran if task == "Summary and reports (JSON and Markdown)")
    assert reported == ["aks-dev", "aks-prod"]
    verified = sorted(host for host, role, task in ran if (role, task) == ("verify", "Verify each workload's chain"))
    assert verified == ["aks-dev", "aks-prod"]


def test_every_workload_of_both_clusters_is_verified(estate: Estate) -> None:
    done = estate.playbook("playbooks/verify.yml", "-vvv")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert re.findall(r"^aks-\w+\s+: ok=\d+\s+changed=(\d+)", output, re.M) == ["0", "0"]  # it changes nothing
    review = json.loads((estate.root / f"run-{estate.runs}" / "access-review.json").read_text())
    assert review["summary"] == {"clusters": 2, "workloads": 7, "verified": 7, "findings": 0, "accepted": 0}
    kinds = {w["identity"]["kind"] for c in review["clusters"] for w in c["workloads"]}
    assert kinds == {"user_assigned", "application"}
    for cluster in review["clusters"]:
        for workload in cluster["workloads"]:
            assert [link["status"] for link in workload["links"]] == ["ok"] * 7, workload
            assert all(role["granted"] for role in workload["roles"])
    # The per-cluster reviews are there too; the task count does not depend on the number of workloads.
    assert {p.name for p in (estate.root / f"run-{estate.runs}").iterdir()} >= {
        f"{c}.verify.{ext}" for c in ("aks-dev", "aks-prod") for ext in ("json", "md", "html")
    }
    # Even with -vvv, no token (a JWT: base64url parts, the first one '{"' encoded) nor secret is in the output or
    # the reviews (tests/integration/kube/test_rollout.py scans verify.yml too, with the other playbooks).
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
    written = [f.read_text() for f in (estate.root / f"run-{estate.runs}").iterdir()]
    for text in [output, *written]:
        assert not jwt.search(text) and estate.env["AZURE_CLIENT_SECRET"] not in text


def test_a_pod_template_without_the_label(estate: Estate) -> None:
    apps = k8s.AppsV1Api(estate.kube())
    patch = {"spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": None}}}}}
    apps.patch_namespaced_deployment("web-frontend", "web", patch)
    try:
        review, output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("web-frontend", "pod_template")
        assert "Deployment web/web-frontend: its pod template lacks the label" in message
        assert "run workload_identity.aks.site for aks-dev" in message
        assert "cluster aks-dev: 1 finding(s) not accepted" in " ".join(output.split())
    finally:
        restore = {"spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}}}}}
        apps.patch_namespaced_deployment("web-frontend", "web", restore)


def test_a_service_account_naming_another_client_id(estate: Estate) -> None:
    core = k8s.CoreV1Api(estate.kube())
    account = core.read_namespaced_service_account("orders-api", "orders")
    client_id = account.metadata.annotations["azure.workload.identity/client-id"]
    other = str(uuid.uuid4())
    core.patch_namespaced_service_account(
        "orders-api", "orders", {"metadata": {"annotations": {"azure.workload.identity/client-id": other}}}
    )
    try:
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("orders-api", "service_account")
        assert f"names client id {other}; the identity's client id is {client_id}" in message
    finally:
        core.patch_namespaced_service_account(
            "orders-api", "orders", {"metadata": {"annotations": {"azure.workload.identity/client-id": client_id}}}
        )


def _webhook_pid(box: Sandbox, cluster: str) -> int:
    """The add-on's webhook process of one cluster (its certificate folder is under that cluster's folder)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            command
            and command[0].endswith("azure-wi-webhook")
            and any(a.startswith(f"--webhook-cert-dir={box.state_dir}/") and f"/{cluster}/" in a for a in command)
        ):
            return int(proc.name)
    raise AssertionError(f"no webhook process for {cluster}")


def test_a_stopped_webhook_and_no_webhook_at_all(estate: Estate) -> None:
    """A webhook that is registered but does not answer fails admission; one not registered mutates nothing."""
    pid = _webhook_pid(estate.box, DEV)
    os.kill(pid, signal.SIGSTOP)
    try:
        review, _output = estate.verify(expect_ok=False)
    finally:
        os.kill(pid, signal.SIGCONT)
    found = findings(review)
    assert {(w, link) for w, link, _m in found} == {
        (w, "webhook") for w in ("orders-api", "billing-worker", "web-frontend")
    }
    assert all("webhook failed: creating a pod of" in m for _w, _l, m in found), found

    admission = k8s.AdmissionregistrationV1Api(estate.kube())
    saved = admission.read_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)
    admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)
    try:
        review, _output = estate.verify(expect_ok=False)
    finally:
        saved.metadata.resource_version = None
        saved.metadata.uid = None
        admission.create_mutating_webhook_configuration(saved)
    found = findings(review)
    assert {(w, link) for w, link, _m in found} == {
        (w, "webhook") for w in ("orders-api", "billing-worker", "web-frontend")
    }
    assert all("no webhook answered" in m and "workload_identity_webhook_mode" in m for _w, _l, m in found), found


def _put_credential(box: Sandbox, issuer: str, subject: str) -> None:
    box.msi().federated_identity_credentials.create_or_update(
        ORDERS_RG,
        ORDERS_IDENTITY,
        ORDERS_FIC,
        {"issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]},
    )


def test_credential_deleted_with_another_issuer_or_subject(estate: Estate) -> None:
    fics = estate.box.msi().federated_identity_credentials
    issuer = fics.get(ORDERS_RG, ORDERS_IDENTITY, ORDERS_FIC).issuer
    assert issuer.endswith("/")
    fics.delete(ORDERS_RG, ORDERS_IDENTITY, ORDERS_FIC)
    try:
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("orders-api", "sign_in")
        assert f"no federated credential on {ORDERS_IDENTITY} trusts {ORDERS_SUBJECT}" in message
        assert "AADSTS70021:" in message and "run workload_identity.aks.site for aks-dev" in message

        _put_credential(estate.box, issuer.rstrip("/"), ORDERS_SUBJECT)
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("orders-api", "sign_in")
        assert "(they differ in the trailing slash)" in message and "AADSTS700211:" in message

        _put_credential(estate.box, issuer, "system:serviceaccount:orders:order-api")
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("orders-api", "sign_in")
        assert f"trusts subject 'system:serviceaccount:orders:order-api', not '{ORDERS_SUBJECT}'" in message
        assert "AADSTS700213:" in message
    finally:
        _put_credential(estate.box, issuer, ORDERS_SUBJECT)


def test_a_new_credential_is_waited_for(estate: Estate) -> None:
    """Entra takes a while to accept a new credential: verify waits (bounded) and says how long."""
    fics = estate.box.msi().federated_identity_credentials
    issuer = fics.get(ORDERS_RG, ORDERS_IDENTITY, ORDERS_FIC).issuer
    # Long enough that the playbook's start (slow on a loaded machine) does not outlast it: verify must wait.
    estate.box.control.configure({"fic_propagation_seconds": 20})
    try:
        fics.delete(ORDERS_RG, ORDERS_IDENTITY, ORDERS_FIC)
        _put_credential(estate.box, issuer, ORDERS_SUBJECT)
        review, _output = estate.verify(expect_ok=True)
        orders = next(w for w in review["clusters"][0]["workloads"] if w["name"] == "orders-api")
        assert orders["verified"] and orders["sign_in_wait"] >= 5
        assert any("after waiting" in d for d in orders["details"])
    finally:
        estate.box.control.configure({"fic_propagation_seconds": 0})


def _role_definition(box: Sandbox, name: str) -> str:
    sub = f"/subscriptions/{box.subscription_id}"
    return next(d.id for d in box.authz().role_definitions.list(sub) if d.role_name == name)


def test_a_deleted_assignment_and_an_extra_owner(estate: Estate) -> None:
    authz = estate.box.authz()
    review, _output = estate.verify(expect_ok=True)
    workloads = {w["name"]: w for w in review["clusters"][0]["workloads"]}
    web = workloads["web-frontend"]
    acr_pull = next(
        a
        for a in authz.role_assignments.list_for_subscription(
            filter=f"principalId eq '{web['identity']['principal_id']}'"
        )
    )
    authz.role_assignments.delete_by_id(acr_pull.id)
    try:
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("web-frontend", "permissions")
        assert "AcrPull at /subscriptions/" in message and "it is not assigned" in message
        assert "Microsoft.ContainerRegistry/registries/pull/read" in message
    finally:
        authz.role_assignments.create(
            acr_pull.scope,
            str(uuid.uuid4()),
            {
                "role_definition_id": acr_pull.role_definition_id,
                "principal_id": acr_pull.principal_id,
                "principal_type": "ServicePrincipal",
            },
        )

    orders = workloads["orders-api"]
    group = f"/subscriptions/{estate.box.subscription_id}/resourceGroups/rg-data-dev"
    owner = authz.role_assignments.create(
        group,
        str(uuid.uuid4()),
        {
            "role_definition_id": _role_definition(estate.box, "Owner"),
            "principal_id": orders["identity"]["principal_id"],
            "principal_type": "ServicePrincipal",
        },
    )
    try:
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("orders-api", "assignments")
        assert f"holds Owner at {group}, which the workload does not declare" in message
        assert f"az role assignment delete --ids {owner.id}" in message and "verify removes nothing" in message

        # Accepted in the inventory, with its reason: verified, and the review says why.
        accepted = [
            {"workload": "orders-api", "link": "assignments", "matching": "Owner", "reason": "break-glass, CHG-42"}
        ]
        extra = json.dumps({"workload_identity_verify_accepted": accepted})
        review, _output = estate.verify("-e", extra, expect_ok=True)
        assert findings(review) == [] and review["summary"]["accepted"] == 1
        # Report only: the same finding, and the run succeeds.
        review, _output = estate.verify("-e", "workload_identity_verify_fail_on=none", expect_ok=True)
        assert [(w, link) for w, link, _m in findings(review)] == [("orders-api", "assignments")]
    finally:
        authz.role_assignments.delete_by_id(owner.id)


def test_a_deleted_cosmos_db_sql_role_is_a_finding_on_the_account_itself(estate: Estate) -> None:
    """Cosmos DB's own role system: ARM's permissions API knows nothing of it; verify reads the account's assignments,
    and the account's data plane as the workload (a container's metadata, an item no one has)."""
    from azure.mgmt.cosmosdb import CosmosDBManagementClient

    cosmos = CosmosDBManagementClient(estate.box.credential(), estate.box.subscription_id, **estate.box.arm_kwargs())
    review, _output = estate.verify(expect_ok=True)
    orders = next(w for w in review["clusters"][0]["workloads"] if w["name"] == "orders-api")
    reader = next(r for r in orders["roles"] if r["role"] == "Cosmos DB Built-in Data Reader")
    assert reader["granted"] is True
    held = [
        a
        for a in cosmos.sql_resources.list_sql_role_assignments("rg-data-dev", "cosmos-orders-dev")
        if a.principal_id == orders["identity"]["principal_id"]
    ]
    [reader] = held
    cosmos.sql_resources.begin_delete_sql_role_assignment(reader.name, "rg-data-dev", "cosmos-orders-dev").result()
    try:
        review, _output = estate.verify(expect_ok=False)
        [(workload, link, message)] = findings(review)
        assert (workload, link) == ("orders-api", "permissions")
        assert "Cosmos DB account cosmos-orders-dev holds no such assignment" in message
    finally:
        body = {
            "properties": {
                "roleDefinitionId": reader.role_definition_id,
                "scope": reader.scope,
                "principalId": reader.principal_id,
            }
        }
        cosmos.sql_resources.begin_create_update_sql_role_assignment(
            reader.name, "rg-data-dev", "cosmos-orders-dev", body
        ).result()
    review, _output = estate.verify(expect_ok=True)


def test_a_revoked_database_role_is_a_finding_and_an_extra_one_is_reviewed_on_the_server_itself(estate: Estate) -> None:
    """PostgreSQL's own grants: verify reads the server as its Entra administrator, then signs in to the orders
    database as the workload, with its own token from its pod's credential, and reads through each declared role."""
    import psycopg

    env = estate.box.env
    admin_token = estate.box.credential().get_token("https://ossrdbms-aad.database.windows.net/.default").token

    def as_platform(statement: str) -> None:
        with psycopg.connect(
            host="pg-orders-dev.postgres.database.azure.com",
            hostaddr=env["PGHOSTADDR"],
            port=env["PGPORT"],
            sslrootcert=env["PGSSLROOTCERT"],
            sslmode="verify-full",
            user="platform-automation",
            password=admin_token,
            dbname="orders",
            autocommit=True,
        ) as conn:
            conn.execute(statement)

    review, output = estate.verify(expect_ok=True)
    orders = next(w for w in review["clusters"][0]["workloads"] if w["name"] == "orders-api")
    database = next(r for r in orders["roles"] if r["role"] == "pg_read_all_data (database role orders-api)")
    assert database["granted"] is True and database["scope"].endswith("/pg-orders-dev/databases/orders")
    as_platform('REVOKE pg_read_all_data FROM "orders-api"')
    as_platform('GRANT pg_write_all_data TO "orders-api"')
    try:
        review, _output = estate.verify(expect_ok=False)
        found = sorted(findings(review))
        assert [(w, link) for w, link, _m in found] == [("orders-api", "assignments"), ("orders-api", "permissions")]
        assert "is a member of pg_write_all_data, which the workload does not declare" in found[0][2]
        assert 'REVOKE "pg_write_all_data" FROM "orders-api"' in found[0][2]
        assert "orders-api is not a member of pg_read_all_data on server pg-orders-dev" in found[1][2]
    finally:
        as_platform('REVOKE pg_write_all_data FROM "orders-api"')
        as_platform('GRANT pg_read_all_data TO "orders-api"')
    review, _output = estate.verify(expect_ok=True)


def test_a_rollout_that_signs_in_to_databases_leaks_no_token_even_with_vvv(estate: Estate) -> None:
    """site.yml with -vvv on the demo's dev cluster, whose orders-api has a database role: the run signs in to the
    PostgreSQL server with an Entra token as the password (and reads its roles), changes nothing, and no token (a
    JWT) nor secret shows in its output or its reports."""
    done = estate.playbook("playbooks/site.yml", "--limit", DEV, "-vvv")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert re.findall(r"^aks-\w+\s+: ok=\d+\s+changed=(\d+)", output, re.M) == ["0"]
    assert "pg-orders-dev" in output  # the database role's row is in the module's result, shown by -vvv
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
    written = [f.read_text(errors="replace") for f in (estate.root / f"run-{estate.runs}").rglob("*") if f.is_file()]
    for text in [output, *written]:
        assert not jwt.search(text) and estate.env["AZURE_CLIENT_SECRET"] not in text


def test_discover_declares_the_database_role_as_the_inventory_does(estate: Estate) -> None:
    """discover.yml on the demo's dev cluster: orders-api's database role is read on the server (as its Entra
    administrator) and declared as the inventory declares it, with its role's name."""
    import yaml

    written = estate.root / "discovered"
    done = estate.playbook("playbooks/discover.yml", "--limit", DEV, "-e", f"workload_identity_discover_dir={written}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    workloads = yaml.safe_load((written / f"{DEV}.yml").read_text())["workload_identity_workloads"]
    orders = next(w for w in workloads if w["name"] == "orders-api")
    [database] = [r for r in orders["roles"] if "database" in r]
    assert database == {
        "scope": f"/subscriptions/{estate.box.subscription_id}/resourceGroups/rg-data-dev/providers/"
        "Microsoft.DBforPostgreSQL/flexibleServers/pg-orders-dev",
        "database": "orders",
        "database_roles": ["pg_read_all_data"],
        "database_user": "orders-api",
    }


def test_a_mistake_in_the_accepted_findings_is_named_before_any_check(estate: Estate) -> None:
    accepted = [{"workload": "order-api", "link": "roles", "reason": ""}, "assignments"]
    extra = json.dumps({"workload_identity_verify_accepted": accepted})
    done = estate.playbook("playbooks/verify.yml", "--limit", DEV, "-e", extra)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert "cluster aks-dev: workload_identity_verify_accepted #1: workload: 'order-api' is not a workload" in output
    assert "link: must be one of identity, service_account" in output
    assert "reason: say why it is accepted" in output
    assert "workload_identity_verify_accepted #2: must be a mapping with workload, link and reason" in output


def test_the_review_page_in_a_real_browser(estate: Estate, tmp_path: Path) -> None:
    """The self-contained HTML page in Debian's Chromium: it renders, one row per workload, a finding is visible,
    and a click on a column's header sorts the rows."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    core = k8s.CoreV1Api(estate.kube())
    account = core.read_namespaced_service_account("orders-api", "orders")
    client_id = account.metadata.annotations["azure.workload.identity/client-id"]
    core.patch_namespaced_service_account(
        "orders-api", "orders", {"metadata": {"annotations": {"azure.workload.identity/client-id": str(uuid.uuid4())}}}
    )
    try:
        done = estate.playbook("playbooks/verify.yml", "-e", "workload_identity_verify_fail_on=none")
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    finally:
        core.patch_namespaced_service_account(
            "orders-api", "orders", {"metadata": {"annotations": {"azure.workload.identity/client-id": client_id}}}
        )
    page = estate.root / f"run-{estate.runs}" / "access-review.html"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(page.as_uri())
        rows = browser.find_elements(By.CSS_SELECTOR, "#review tbody tr")
        assert len(rows) == 7
        finding = browser.find_element(By.CSS_SELECTOR, "#review tbody tr.finding td.result")
        assert finding.is_displayed()
        assert "service_account: ServiceAccount orders/orders-api names client id" in finding.text
        assert "7 workloads, 6 verified, 1 finding(s) not accepted" in browser.find_element(By.ID, "summary").text
        # A reviewer reads resource names; the full id is the hover's title.
        scope = browser.find_element(By.CSS_SELECTOR, "#review tbody td.roles span.scope")
        assert "/subscriptions/" not in scope.text and " @ " in scope.text
        assert str(scope.get_attribute("title")).startswith("/subscriptions/")
        browser.save_screenshot(str(PROJECT / ".build" / "access-review.png"))
        header = browser.find_elements(By.CSS_SELECTOR, "#review thead th")[1]  # Workload
        header.click()
        ascending = [
            r.find_elements(By.TAG_NAME, "td")[1].text
            for r in browser.find_elements(By.CSS_SELECTOR, "#review tbody tr")
        ]
        assert ascending == sorted(ascending)
        header.click()
        descending = [
            r.find_elements(By.TAG_NAME, "td")[1].text
            for r in browser.find_elements(By.CSS_SELECTOR, "#review tbody tr")
        ]
        assert descending == sorted(ascending, reverse=True)
    finally:
        browser.quit()
