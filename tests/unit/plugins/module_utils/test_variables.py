"""_variables: the workload_identity_* names, checked against what the roles and playbooks actually read."""

from __future__ import annotations

import re
from pathlib import Path

from ansible_collections.workload_identity.aks.plugins.module_utils._variables import (
    KNOWN_VARIABLES,
    variable_problems,
)

PROJECT = Path(__file__).resolve().parents[4]
# Names that appear in the roles but are not inventory variables (a field of a module's result).
NOT_VARIABLES = {"workload_identity_enabled"}


def test_the_known_names_are_exactly_those_the_roles_and_playbooks_read() -> None:
    read = set()
    for path in [*PROJECT.glob("roles/**/*.yml"), *PROJECT.glob("playbooks/*.yml")]:
        read |= set(re.findall(r"\bworkload_identity_[a-z_]+", path.read_text()))
    assert read - NOT_VARIABLES == set(KNOWN_VARIABLES)


def test_a_misspelling_is_named_with_the_closest_known_name() -> None:
    names = ["workload_identity_workload", "workload_identity_prune", "workload_identity_data", "other_var"]
    assert variable_problems("aks-dev", names) == [
        "cluster aks-dev: workload_identity_data: not a variable of workload_identity.aks "
        "(the workload_identity_* names are this collection's)",
        "cluster aks-dev: workload_identity_workload: not a variable of workload_identity.aks "
        "(did you mean workload_identity_workloads?)",
    ]
