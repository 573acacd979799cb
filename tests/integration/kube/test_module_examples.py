"""Every module's EXAMPLES, run as written against the sandbox.

Each module's EXAMPLES block is read from its source and run as one play, the modules in an order where what one
example makes, the next uses (the issuer, an identity, an application), with the sandbox's credential from the
environment as an operator's shell or AWX would have it. The variables an example takes from elsewhere (a storage
account's id, the inventory's workload list, a report) are the play's variables, so anything an example registers
wins over them. An example that does not run as written fails here naming its module and task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.kube.rollout_runs import run_playbook
from tests.integration.sandbox_helpers import PROJECT, Sandbox, running
from tests.sandbox.demo import ansible_env, deploy_apps, ensure_resource_chain

from .conftest import KUBE_SETTINGS

MODULES = PROJECT / "plugins" / "modules"
# Makers before users, removals last: the issuer, then what trusts and grants on an identity and an application,
# the batch modules (they converge and then release aks-old), discovery and verify, the summary and the reports,
# then the examples that delete.
ORDER = [
    "cluster_oidc_issuer",
    "user_assigned_identity_info",
    "federated_credential",
    "federated_credential_info",
    "role_assignment",
    "role_assignment_info",
    "application_info",
    "workload_identities",
    "service_accounts",
    "service_accounts_info",
    "workload_identities_info",
    "verify",
    "summary",
    "reports",
    "rollout_report",
    "application",
    "user_assigned_identity",
]


def examples(module: str) -> list[dict[str, Any]]:
    source = (MODULES / f"{module}.py").read_text()
    found = re.search(r'^EXAMPLES = r?"""(.*?)"""', source, re.S | re.M)
    assert found, f"{module} has no EXAMPLES"
    tasks = yaml.safe_load(found.group(1))
    assert isinstance(tasks, list) and tasks, f"{module}'s EXAMPLES are not a list of tasks"
    return tasks


def test_the_order_covers_every_module() -> None:
    assert sorted(ORDER) == sorted(p.stem for p in MODULES.glob("*.py") if p.stem != "__init__")


class Estate:
    def __init__(self, box: Sandbox, root: Path, variables: dict[str, Any]) -> None:
        self.box, self.root, self.variables = box, root, variables
        sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
        self.env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    # A sandbox of its own: the examples name aks-prod, aks-dev and aks-old as written, names other modules' estates
    # in the session's sandbox may hold.
    with running(tmp_path_factory.mktemp("examples-sandbox"), KUBE_SETTINGS) as box:
        yield from _estate(box, tmp_path_factory)


def _estate(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    prod = box.control.seed_cluster(
        "rg-aks-prod", "aks-prod", kube=True, oidc_issuer_enabled=True, workload_identity_enabled=True
    )
    box.control.seed_cluster("rg-aks-dev", "aks-dev")
    box.control.seed_cluster("rg-aks-old", "aks-old", kube=True)
    box.resource_group("rg-identities-prod")
    account = f"{box.resource_group('rg-data-prod')}/providers/Microsoft.Storage/storageAccounts/stordersprod"
    ensure_resource_chain(box.url, box.ca, box.token(), f"{account}/blobServices/default/containers/orders")
    deploy_apps(
        box.state_dir,
        "aks-prod",
        [
            ("Deployment", "orders", "orders-api", "ghcr.io/contoso/orders-api:2.4.1"),
            ("Deployment", "reports", "reports", "ghcr.io/contoso/reports:1.0.0"),
        ],
    )
    # What the examples take as made elsewhere: the orders identity and application, an operator's application.
    identity = box.msi().user_assigned_identities.create_or_update(
        "rg-identities-prod", "id-orders-api-prod", {"location": "westeurope"}
    )
    orders_app = box.graph(
        "PATCH",
        "/applications(uniqueName='wi-aks-prod-orders-orders-api')",
        {"displayName": "orders-api (aks-prod)"},
        headers={"Prefer": "create-if-missing"},
    ).json()
    hand_made = box.graph("POST", "/applications", {"displayName": "billing (made by hand)"}).json()
    report = json.loads((PROJECT / "tests" / "unit" / "fixtures" / "reports" / "rollout.json").read_text())
    variables = {
        "oidc_issuer_url": prod["issuer_url"],
        "issuer": {"issuer_url": prod["issuer_url"]},
        "orders_account_id": account,
        "identity": {"identity": {"principal_id": identity.principal_id}},
        "orders_app": {"application": {"app_id": orders_app["appId"]}},
        "hand_made_app_id": hand_made["appId"],
        "report": report,
        "workload_identity_workloads": [
            {
                "name": "orders-api",
                "namespace": "orders",
                "service_account": "orders-api",
                "roles": [
                    {
                        "role": "Storage Blob Data Contributor",
                        "scope": f"{account}/blobServices/default/containers/orders",
                    }
                ],
                "controllers": [{"kind": "Deployment", "name": "orders-api"}],
            },
            {
                "name": "reports",
                "namespace": "reports",
                "service_account": "reports",
                "roles": [{"role": "Reader", "scope": account}],
                "controllers": [{"kind": "Deployment", "name": "reports"}],
            },
        ],
    }
    yield Estate(box, tmp_path_factory.mktemp("examples"), variables)


def test_every_modules_examples_run_as_written(estate: Estate) -> None:
    plays = [
        {
            "name": f"EXAMPLES of {module}",
            "hosts": "aks-prod",
            "gather_facts": False,
            "vars": estate.variables,
            "tasks": examples(module),
        }
        for module in ORDER
    ]
    book = estate.root / "examples.yml"
    book.write_text(yaml.safe_dump(plays, sort_keys=False))
    run = run_playbook(estate.root / "run", "aks-prod", {}, estate.env, book, expect_ok=False)
    failed = re.findall(r"^PLAY \[EXAMPLES of (\w+)\].*?(?=^PLAY \[|\Z)", run.output, re.S | re.M)
    assert run.returncode == 0, f"the EXAMPLES of {failed[-1] if failed else '?'} failed:\n{run.output[-6000:]}"
    for module in ORDER:
        assert f"PLAY [EXAMPLES of {module}]" in run.output
    written = json.loads((estate.root / "workload-identity-reports" / "aks-prod.json").read_text())
    assert written == estate.variables["report"]
    plan = json.loads((estate.root / "workload-identity-reports" / "aks-prod.plan.json").read_text())
    assert plan["check_mode"] is True and {w["name"] for w in plan["workloads"]} == {"orders-api", "reports"}
