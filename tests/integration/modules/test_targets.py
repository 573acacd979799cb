"""The modules' integration targets (tests/integration/targets/*), run against a sandbox.

The targets take their credentials from one ``azure_auth`` variable (module_defaults), as they would
from ansible-test's integration_config.yml against real Azure. Behaviour only the sandbox can show
(request counts, injected throttling and server errors) is checked here around them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, TARGETS, auth, play

# Against real Azure: WORKLOAD_IDENTITY_AZURE_CONFIG names a YAML file of the same variables the
# sandbox run passes (azure_auth, azure_resource_group, and aks_cluster_name / aks_resource_group of a
# test cluster whose issuer may be enabled). The sandbox-only tests below then do not run.
REAL_AZURE = os.environ.get("WORKLOAD_IDENTITY_AZURE_CONFIG")


# Targets that need a Kubernetes API server (the needs/kube alias) run from tests/integration/kube/test_targets.py.
AZURE_TARGETS = sorted(
    p.name
    for p in TARGETS.iterdir()
    if (p / "tasks" / "main.yml").exists() and "needs/kube" not in (p / "aliases").read_text()
)


@pytest.mark.parametrize("target", AZURE_TARGETS)
def test_target(target: str, collections: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    prefix = f"t{secrets.token_hex(3)}"
    if REAL_AZURE:
        extra: dict[str, Any] = {**yaml.safe_load(Path(REAL_AZURE).read_text()), "prefix": prefix}
        play_env_sandbox = None
    else:
        sandbox: Sandbox = request.getfixturevalue("sandbox")
        play_env_sandbox = sandbox
        extra = {"azure_auth": auth(sandbox), "azure_resource_group": RESOURCE_GROUP, "prefix": prefix}
        if target == "cluster_oidc_issuer":
            # An existing cluster with its issuer off, as the target expects (no API server needed here).
            sandbox.control.seed_cluster("rg-aks-targets", f"aks-{prefix}", kube=False)
            extra.update(aks_cluster_name=f"aks-{prefix}", aks_resource_group="rg-aks-targets")
    play(play_env_sandbox, collections, tmp_path, {"roles": [target]}, extra)


sandbox_only = pytest.mark.skipif(bool(REAL_AZURE), reason="needs the sandbox's counters and fault injection")


@sandbox_only
def test_invalid_input_sends_no_request(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    tasks = [
        {
            "name": "bad identity name",
            "workload_identity.aks.user_assigned_identity": {
                "name": "x",
                "resource_group": RESOURCE_GROUP,
                "location": "westeurope",
            },
        },
        {
            "name": "bad fic name",
            "workload_identity.aks.federated_credential": {
                "name": "bad=",
                "identity": "id-x",
                "resource_group": RESOURCE_GROUP,
                "issuer": "https://i/",
                "subject": "s",
            },
        },
        {
            "name": "bad scope",
            "workload_identity.aks.role_assignment": {
                "principal_id": "00000000-0000-0000-0000-000000000001",
                "role": "Reader",
                "scope": "/nope",
            },
        },
    ]
    for task in tasks:
        task.update(
            {"ignore_errors": True, "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"}}
        )
    sandbox.control.reset_stats()
    done = play(sandbox, collections, tmp_path, {"tasks": tasks}, {"azure_auth": auth(sandbox)})
    assert "ignored=3" in done.stdout  # all three refused
    assert sandbox.control.stats()["totals"].get("arm", 0) == 0
    assert sandbox.control.stats()["totals"].get("entra", 0) == 0


@sandbox_only
def test_throttling_storm_and_server_errors_are_ridden_out(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    sandbox.control.add_fault(operation="userAssignedIdentities.get", status=429, retry_after=1, count=3)
    sandbox.control.add_fault(operation="userAssignedIdentities.put", status=500, count=2)
    sandbox.control.add_fault(operation="roleAssignments.list", status=503, count=2)
    sandbox.control.reset_stats()
    task = {
        "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
        "tasks": [
            {
                "name": "identity",
                "register": "made",
                "workload_identity.aks.user_assigned_identity": {
                    "name": "id-storm",
                    "resource_group": RESOURCE_GROUP,
                    "location": "westeurope",
                },
            },
            {
                "name": "assignment",
                "workload_identity.aks.role_assignment": {
                    "principal_id": "{{ made.identity.principal_id }}",
                    "role": "Reader",
                    "scope": f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{RESOURCE_GROUP}",
                },
            },
        ],
    }
    play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)})
    ops = sandbox.control.stats()["operations"]
    # Each fault was answered once and retried (how long each wait was is tests/unit's retry decisions).
    assert ops["userAssignedIdentities.get"]["by_status"].get("429") == 3
    assert ops["userAssignedIdentities.put"]["by_status"].get("500") == 2
    assert ops["roleAssignments.list"]["by_status"].get("503") == 2


@sandbox_only
def test_bad_credentials_fail_fast_and_clearly(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    task = {
        "tasks": [
            {
                "name": "with a wrong secret",
                "workload_identity.aks.user_assigned_identity_info": {"resource_group": RESOURCE_GROUP},
                "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
            }
        ]
    }
    sandbox.control.reset_stats()
    # -vvv prints every module argument: no_log must still hide the secret.
    done = play(
        sandbox,
        collections,
        tmp_path,
        task,
        {"azure_auth": auth(sandbox, secret="wrong-secret")},
        expect_ok=False,
        options=("-vvv",),
    )
    assert done.returncode != 0
    assert "AADSTS7000215" in done.stdout
    assert "wrong-secret" not in done.stdout + done.stderr
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in done.stdout  # the argument was there, masked
    # A refused secret is not retried (it will not become right), and nothing reached ARM without a token.
    totals = sandbox.control.stats()["totals"]
    assert totals.get("entra", 0) <= 2 and totals.get("arm", 0) == 0, totals


@sandbox_only
def test_an_application_not_yet_replicated_is_waited_for(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    """Graph refuses a service principal for an application it has not replicated yet: the module waits it out."""
    sandbox.control.configure({"graph_replication_seconds": 2.0})
    try:
        sandbox.control.reset_stats()
        task = {
            "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
            "tasks": [
                {
                    "name": "application",
                    "register": "made",
                    "workload_identity.aks.application": {"unique_name": f"t{secrets.token_hex(3)}-lagging"},
                },
                {
                    "name": "made once, with its principal",
                    "ansible.builtin.assert": {
                        "that": [
                            "made is changed",
                            "made.application.service_principal_id | length > 0",
                        ]
                    },
                },
            ],
        }
        play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)})
        statuses = sandbox.control.stats()["operations"]["graph.servicePrincipals"]["by_status"]
        assert statuses.get("400", 0) >= 1 and statuses.get("201") == 1  # refused while lagging, then made once
    finally:
        sandbox.control.configure({"graph_replication_seconds": 0.0})
