"""_variables: the workload_identity_* names, checked against what the roles and playbooks actually read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.filter.inventory import checkable_values
from ansible_collections.workload_identity.aks.plugins.module_utils._variables import (
    KNOWN_VARIABLES,
    VARIABLE_TYPES,
    value_problems,
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


def test_values_are_checked_as_ansible_converts_them_and_named_as_the_inventorys() -> None:
    values = {
        "workload_identity_prune": "yes",
        "workload_identity_prune_max": "7",
        "workload_identity_location": None,
        "workload_identity_cluster_name": 42,
        "workload_identity_hosts": ["dev", "staging"],
        "workload_identity_discover_resource_groups": "rg-a,rg-b",
        "workload_identity_azure_auth": {},
        "workload_identity_workloads": "checked elsewhere",
        "other_var": [],
    }
    assert value_problems("aks-dev", values) == []
    wrong = {
        "workload_identity_allow_privileged_roles": "perhaps",
        "workload_identity_prune_max": -3,
        "workload_identity_missing_workloads": "Fail",
        "workload_identity_kube_context": True,
        "workload_identity_azure_auth": "a-secret",
        "workload_identity_discover_resource_groups": {"rg": 1},
    }
    assert value_problems("aks-dev", wrong) == [
        "cluster aks-dev: workload_identity_allow_privileged_roles: 'perhaps' is not a boolean (true or false)",
        "cluster aks-dev: workload_identity_azure_auth: must be a mapping (got a str)",
        "cluster aks-dev: workload_identity_discover_resource_groups: must be a list (got a mapping)",
        "cluster aks-dev: workload_identity_kube_context: must be a string (got a boolean; quote it)",
        "cluster aks-dev: workload_identity_missing_workloads: 'Fail' is not one of fail, warn",
        "cluster aks-dev: workload_identity_prune_max: -3 is not a count (a whole number, 0 or more)",
    ]


def test_every_known_variable_has_a_type_the_check_knows() -> None:
    for name, expected in VARIABLE_TYPES.items():
        assert isinstance(expected, tuple) or expected in ("bool", "count", "dict", "list", "pattern", "str"), name


def test_the_values_given_to_the_check_hold_no_mappings_content() -> None:
    values = {
        "workload_identity_azure_auth": {"secret": "s3cret"},
        "workload_identity_workloads": [{"name": "a"}],
        "workload_identity_prune": True,
    }
    assert checkable_values(values) == {"workload_identity_azure_auth": {}, "workload_identity_prune": True}
    with pytest.raises(AnsibleFilterError):
        checkable_values(["not", "a", "mapping"])
