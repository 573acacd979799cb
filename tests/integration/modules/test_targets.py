"""The modules' integration targets (tests/integration/targets/*), run against a sandbox.

The targets take their credentials from one ``azure_auth`` variable (module_defaults), as they would
from ansible-test's integration_config.yml against real Azure. Behaviour only the sandbox can show
(request counts, injected throttling and server errors) is checked here around them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.sandbox_helpers import PROJECT, TEST_SETTINGS, Sandbox, running

TARGETS = PROJECT / "tests" / "integration" / "targets"
RESOURCE_GROUP = "rg-targets"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # Throttling on, as in Azure: the modules must live with it.
    with running(tmp_path_factory.mktemp("targets-sandbox"), {**TEST_SETTINGS, "throttling": True}) as box:
        box.resource_group(RESOURCE_GROUP)
        yield box


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This checkout as ansible_collections/workload_identity/aks, then kubernetes.core from .tools."""
    root = tmp_path_factory.mktemp("collections")
    link = root / "ansible_collections" / "workload_identity" / "aks"
    link.parent.mkdir(parents=True)
    link.symlink_to(PROJECT)
    return f"{root}:{PROJECT / '.tools' / 'collections'}"


def auth(sandbox: Sandbox, **override: str) -> dict[str, str]:
    return {
        "auth_source": "env",
        "subscription_id": sandbox.subscription_id,
        "tenant": sandbox.tenant_id,
        "client_id": sandbox.env["AZURE_CLIENT_ID"],
        "secret": sandbox.env["AZURE_CLIENT_SECRET"],
        "resource_manager_endpoint": sandbox.url,
        "authority_host": sandbox.url,
        "ca_bundle": sandbox.ca,
        **override,
    }


def play(
    sandbox: Sandbox,
    collections: str,
    tmp_path: Path,
    body: dict[str, Any],
    extra_vars: dict[str, Any],
    expect_ok: bool = True,
) -> subprocess.CompletedProcess[str]:
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, **body}]))
    config = tmp_path / "integration_config.yml"
    config.write_text(yaml.safe_dump(extra_vars))
    # Nothing from the shell's environment may stand in for the explicit credentials.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "REQUESTS_CA"))}
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": collections,
            "ANSIBLE_ROLES_PATH": str(TARGETS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
            "ANSIBLE_HOME": str(tmp_path / "home"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        }
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(book), "-e", f"@{config}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if expect_ok:
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return done


@pytest.mark.parametrize("target", sorted(p.name for p in TARGETS.iterdir() if (p / "tasks" / "main.yml").exists()))
def test_target(target: str, sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    prefix = f"t{secrets.token_hex(3)}"
    extra: dict[str, Any] = {"azure_auth": auth(sandbox), "azure_resource_group": RESOURCE_GROUP, "prefix": prefix}
    if target == "cluster_oidc_issuer":
        # An existing cluster with its issuer off, as the target expects (no API server needed here).
        sandbox.control.seed_cluster("rg-aks-targets", f"aks-{prefix}", kube=False)
        extra.update(aks_cluster_name=f"aks-{prefix}", aks_resource_group="rg-aks-targets")
    play(sandbox, collections, tmp_path, {"roles": [target]}, extra)


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
    started = time.monotonic()
    play(sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox)})
    ops = sandbox.control.stats()["operations"]
    assert ops["userAssignedIdentities.get"]["by_status"].get("429") == 3
    assert ops["userAssignedIdentities.put"]["by_status"].get("500") == 2
    assert ops["roleAssignments.list"]["by_status"].get("503") == 2
    assert time.monotonic() - started >= 3  # Retry-After: 1 was honoured three times


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
    started = time.monotonic()
    done = play(
        sandbox, collections, tmp_path, task, {"azure_auth": auth(sandbox, secret="wrong-secret")}, expect_ok=False
    )
    assert done.returncode != 0
    assert "AADSTS7000215" in done.stdout
    assert "wrong-secret" not in done.stdout + done.stderr
    assert time.monotonic() - started < 30
