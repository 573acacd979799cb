"""Fixtures for the module tests: a sandbox for the module, this checkout as a collection, a playbook runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.sandbox_helpers import PROJECT, TEST_SETTINGS, Sandbox, running

TARGETS = PROJECT / "tests" / "integration" / "targets"
RESOURCE_GROUP = "rg-targets"
# Throttling on, as in Azure: the modules must live with it.
SETTINGS = {**TEST_SETTINGS, "throttling": True}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running(tmp_path_factory.mktemp("targets-sandbox"), SETTINGS) as box:
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
        "graph_endpoint": sandbox.url + "/graph",
        "ca_bundle": sandbox.ca,
        **override,
    }


def play_command(
    sandbox: Sandbox,
    collections: str,
    tmp_path: Path,
    body: dict[str, Any],
    extra_vars: dict[str, Any],
    options: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The ansible-playbook command line and environment for one play on localhost (written under tmp_path)."""
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
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        str(book),
        "-e",
        f"@{config}",
        *options,
    ]
    return command, env


def play(
    sandbox: Sandbox,
    collections: str,
    tmp_path: Path,
    body: dict[str, Any],
    extra_vars: dict[str, Any],
    expect_ok: bool = True,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    command, env = play_command(sandbox, collections, tmp_path, body, extra_vars, options)
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if expect_ok:
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return done
