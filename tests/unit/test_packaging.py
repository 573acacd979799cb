"""What ships and how it is built: the execution environment builds from this version's tarball."""

from __future__ import annotations

from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
EE = PROJECT / "examples" / "execution-environment"


def test_the_execution_environment_installs_this_versions_tarball() -> None:
    version = yaml.safe_load((PROJECT / "galaxy.yml").read_text())["version"]
    tarball = f"workload_identity-aks-{version}.tar.gz"
    definition = yaml.safe_load((EE / "execution-environment.yml").read_text())
    assert {"src": tarball, "dest": "collections"} in definition["additional_build_files"]
    assert definition["dependencies"]["galaxy"] == "requirements.yml"
    requirements = yaml.safe_load((EE / "requirements.yml").read_text())["collections"]
    assert {"name": f"collections/{tarball}", "type": "file"} in requirements


def test_the_tarball_ships_no_build_output() -> None:
    ignored = yaml.safe_load((PROJECT / "galaxy.yml").read_text())["build_ignore"]
    assert "importer_result.json" in ignored
    assert (
        not (PROJECT / "importer_result.json").exists()
        or "/importer_result.json" in (PROJECT / ".gitignore").read_text().splitlines()
    )
