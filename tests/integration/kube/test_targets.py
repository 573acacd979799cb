"""The Kubernetes modules' integration targets (tests/integration/targets/* with the needs/kube alias).

Against the session's kube-backed sandbox cluster here; against a real cluster, the same target runs with
kube_context (and kubeconfig) given, as ansible-test's integration_config.yml would.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.demo import ansible_env

TARGETS = PROJECT / "tests" / "integration" / "targets"
KUBE_TARGETS = sorted(
    p.name for p in TARGETS.iterdir() if (p / "aliases").exists() and "needs/kube" in (p / "aliases").read_text()
)


@pytest.mark.parametrize("target", KUBE_TARGETS)
def test_kube_target(target: str, kube_sandbox: Sandbox, cluster: dict[str, str], tmp_path: Path) -> None:
    import json

    sandbox_env = json.loads((kube_sandbox.state_dir / "sandbox.json").read_text())
    env = {
        **ansible_env(sandbox_env, kube_sandbox.state_dir),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_ROLES_PATH": str(TARGETS),
    }
    book = tmp_path / "play.yml"
    book.write_text(
        yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "roles": [target]}])
    )
    config = tmp_path / "integration_config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "prefix": f"t{secrets.token_hex(3)}",
                "kube_context": "aks-kube",  # the session cluster of conftest.py, one context per cluster
                "kubeconfig": str(kube_sandbox.state_dir / "kubeconfig"),
            }
        )
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(book), "-e", f"@{config}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
