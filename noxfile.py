"""The support matrix: ansible-test sanity, the unit tests and the rollout's integration tests on every ansible-core
release meta/runtime.yml claims (`make matrix`; `make test` runs the oldest here, the newest is its own venv).

    .venv/bin/nox -s "matrix(core='2.16')"       one release
    .venv/bin/nox -s matrix                      all of them
    .venv/bin/nox -s matrix -- -k "fresh"        part of the rollout's scenarios

Each release gets a venv of its own under .build/nox with that ansible-core, the collection's requirements and the
test tools the sandbox needs; its ansible-playbook is the one the integration tests run (they take it from beside
the interpreter running pytest).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# The newest patch release of each supported minor; requires_ansible in meta/runtime.yml names the oldest.
CORES = {"2.16": "2.16.19", "2.17": "2.17.14", "2.18": "2.18.19", "2.19": "2.19.14"}
# What the unit and integration tests import besides the collection's own requirements, at test-requirements' pins.
TEST_TOOLS = ("pytest", "pytest-xdist", "cryptography", "selenium")

nox.options.envdir = str(ROOT / ".build" / "nox")
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True


def _floor(name: str) -> str:
    """``name==<the lowest version requirements.txt allows>``: the oldest release runs with the oldest client."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        found = re.fullmatch(rf"{name}>=([0-9.]+)(,.*)?", line.strip())
        if found:
            return f"{name}=={found.group(1)}"
    raise ValueError(f"requirements.txt names no floor for {name}")


def _pins(names: tuple[str, ...]) -> list[str]:
    lines = (ROOT / "test-requirements.txt").read_text().splitlines()
    pins = {re.split(r"[=<>]", line, maxsplit=1)[0].lower(): line for line in lines if "==" in line}
    return [pins[name] for name in names]


@nox.session(python="3.11")
@nox.parametrize("core", list(CORES))
def matrix(session: nox.Session, core: str) -> None:
    version = CORES[core]
    # MATRIX_PART=static (sanity, unit) or rollout (the integration scenarios) runs half: `make test` runs the
    # static half while the sandbox's Kubernetes still builds, the rollout after the main integration tests.
    part = os.environ.get("MATRIX_PART", "all")
    session.install(f"ansible-core=={version}", "-r", "requirements.txt", *_pins(TEST_TOOLS))
    if core == min(CORES, key=lambda c: tuple(map(int, c.split(".")))):
        # The oldest ansible-core runs with the oldest kubernetes client requirements.txt allows (its older
        # generated API is another code path in _kube_client); the newest runs with the newest.
        session.install(_floor("kubernetes"))
    session.run("ansible", "--version", silent=False)
    # A temp folder per release, so releases can run side by side.
    basetemp = f"--basetemp={ROOT / '.build' / f'pytest-{core}'}"
    if part in ("all", "static"):
        session.run("bash", "scripts/sanity.sh", external=True, env={"ANSIBLE_CORE": version})
        session.run("pytest", "-q", "-p", "no:cacheprovider", basetemp, "tests/unit")
    if part not in ("all", "rollout"):
        return
    # `nox -s matrix -- -k "<expression>"` runs part of the rollout's scenarios (make matrix-oldest: the extremes).
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        basetemp,
        "tests/integration/kube/test_rollout.py",
        *session.posargs,
        env={
            "PYTHONPATH": str(ROOT),
            "SANDBOX_AZ_CLI": str(ROOT / ".tools" / "azcli" / "bin" / "az"),
            "PATH": f"{session.bin}:{os.environ['PATH']}",
        },
    )
