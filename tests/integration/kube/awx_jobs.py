"""AWX jobs without AWX: the example project (examples/awx-project) run through ansible-runner, the engine AWX uses,
with exactly the environment AWX's credentials inject and nothing of the test session's own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.integration.sandbox_helpers import PROJECT

# What AWX's "Microsoft Azure Resource Manager" credential (a service principal) injects ...
AZURE_RM_INJECTED = ("AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT")
# ... and where the sandbox is (real AWX jobs reach the public cloud and need none of these).
SANDBOX_ENDPOINTS = (
    "AZURE_RESOURCE_MANAGER_ENDPOINT",
    "AZURE_AUTHORITY_HOST",
    "AZURE_GRAPH_ENDPOINT",
    "AZURE_CA_BUNDLE",
)


def azure_rm_credential(sandbox_env: dict[str, str]) -> dict[str, str]:
    """The Azure RM credential's variables for the sandbox's principal, with the sandbox's endpoints."""
    return {name: sandbox_env[name] for name in AZURE_RM_INJECTED + SANDBOX_ENDPOINTS}


def awx_task_env(sandbox_env: dict[str, str]) -> dict[str, str]:
    """AWX's "Extra Environment Variables" (AWX_TASK_ENV), where an organisation behind a proxy sets HTTPS_PROXY for
    every job: here the sandbox's public-hostnames proxy, by which verify reaches vaults' data planes, and libpq's
    address of the sandbox's PostgreSQL gateway (where a private DNS zone would resolve the servers' names)."""
    postgres = {k: sandbox_env[k] for k in ("PGHOSTADDR", "PGPORT", "PGSSLROOTCERT") if k in sandbox_env}
    return {"HTTPS_PROXY": sandbox_env["SANDBOX_HTTPS_PROXY"], "NO_PROXY": "127.0.0.1,localhost", **postgres}


def awx_project(runner_dir: Path, inventories: dict[str, Path | dict[str, Any]]) -> Path:
    """A copy of the example project in runner's private data dir, with inventories/<env>/: a folder copied as it is
    (hosts.yml and group_vars/), or one hosts.yml written from a dict."""
    project = runner_dir / "project"
    shutil.copytree(PROJECT / "examples" / "awx-project", project)
    for env_name, source in inventories.items():
        target = project / "inventories" / env_name
        if isinstance(source, Path):
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            (target / "hosts.yml").write_text(yaml.safe_dump(source))
    return project


@contextmanager
def clean_parent_environment(path: str) -> Iterator[None]:
    """ansible-runner starts ansible-playbook with its envvars over this process's environment: for the job, this
    session's Azure and Kubernetes variables are gone, and PATH is the execution environment's."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("AZURE_", "K8S_AUTH_", "KUBECONFIG"))}
    previous_path = os.environ["PATH"]
    os.environ["PATH"] = path
    try:
        yield
    finally:
        os.environ["PATH"] = previous_path
        os.environ.update(saved)


def run_jobs(
    runner_dir: Path, project: Path, inventory: str, envvars: dict[str, str], path: str, jobs: Iterable[tuple[str, str]]
) -> list[Any]:
    """Each (ident, cmdline) a job of site.yml on project/inventories/<inventory>, one after the other."""
    import ansible_runner

    runs = []
    with clean_parent_environment(path):
        for ident, cmdline in jobs:
            runs.append(
                ansible_runner.run(
                    private_data_dir=str(runner_dir),
                    project_dir=str(project),
                    playbook="site.yml",
                    inventory=str(project / "inventories" / inventory),
                    envvars=envvars,
                    cmdline=cmdline,
                    ident=ident,
                    quiet=True,
                    # ansible-runner runs ansible-playbook from PATH, as in an execution environment.
                    process_isolation=False,
                )
            )
    return runs
