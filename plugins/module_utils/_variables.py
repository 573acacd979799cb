# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the inventory's ``workload_identity_*`` variables.

The prefix is the collection's: every name under it is one the roles and playbooks read, listed here once (a unit
test checks the list against what they read). Any other name under it is a mistake, most often a misspelling that
would otherwise be ignored silently (``workload_identity_workload:`` would leave the list undefined and, with
prune, remove every workload of the cluster), so it is an error naming the closest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from ansible.module_utils.common.validation import check_type_bool, check_type_int

PREFIX = "workload_identity_"
WORKLOADS = "workload_identity_workloads"  # checked entry by entry by _inventory, and for its kind by the module
# What each variable holds: a type the roles' argument specs would convert to, or the choices. Checked here so a
# mistake names the inventory's variable and the cluster (an argument spec would name a role's internal variable).
VARIABLE_TYPES: dict[str, str | tuple[str, ...]] = {
    "workload_identity_allow_privileged_roles": "bool",
    "workload_identity_application_purge": "bool",
    "workload_identity_azure_auth": "dict",
    "workload_identity_cluster_name": "str",
    "workload_identity_cluster_resource_group": "str",
    "workload_identity_database_admin_name": "str",
    "workload_identity_discover_dir": "str",
    "workload_identity_discover_overwrite": "bool",
    "workload_identity_discover_resource_groups": "list",
    "workload_identity_hosts": "pattern",
    "workload_identity_identity_resource_group": "str",
    "workload_identity_issuer_timeout": "count",
    "workload_identity_issuer_url": "str",
    "workload_identity_kube_auth": ("kubeconfig", "azure"),
    "workload_identity_kube_context": "str",
    "workload_identity_kube_credential": ("user", "admin"),
    "workload_identity_kubeconfig": "str",
    "workload_identity_location": "str",
    "workload_identity_missing_workloads": ("fail", "warn"),
    "workload_identity_prune": "bool",
    "workload_identity_prune_confirm": "str",
    "workload_identity_prune_max": "count",
    "workload_identity_rebind": ("refuse", "warn"),
    "workload_identity_release_gone_clusters": "bool",
    "workload_identity_replaced_wait": "count",
    "workload_identity_report_dir": "str",
    "workload_identity_teardown_everything": "bool",
    "workload_identity_tenant_id": "str",
    "workload_identity_verify": "bool",
    "workload_identity_verify_accepted": "list",
    "workload_identity_verify_fail_on": ("findings", "none"),
    "workload_identity_verify_propagation_wait": "count",
    "workload_identity_webhook_mode": ("helm", "addon"),
    WORKLOADS: "list",
}
KNOWN_VARIABLES = tuple(VARIABLE_TYPES)


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return "boolean" if isinstance(value, bool) else type(value).__name__


def _bool_problem(value: object) -> str | None:
    try:
        check_type_bool(value)
    except TypeError:
        return f"{value!r} is not a boolean (true or false)"
    return None


def _count_problem(value: object) -> str | None:
    try:
        count = None if isinstance(value, bool) else check_type_int(value)
    except TypeError:
        count = None
    if count is None or count < 0:
        return f"{value!r} is not a count (a whole number, 0 or more)"
    return None


def _dict_problem(value: object) -> str | None:
    return None if isinstance(value, Mapping) else f"must be a mapping (got a {_kind(value)})"


def _list_problem(value: object) -> str | None:
    if isinstance(value, (list, tuple, str)) and not isinstance(value, Mapping):
        return None
    return f"must be a list (got a {_kind(value)})"


def _string_problem(value: object) -> str | None:
    # Numbers convert silently, as in Ansible; a boolean is a YAML surprise (yes, on) worth quoting.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"must be a string (got a {_kind(value)}{'; quote it' if isinstance(value, bool) else ''})"
    return None


def _pattern_problem(value: object) -> str | None:
    """A pattern is a string, or a list of them."""
    return None if isinstance(value, (list, tuple)) else _string_problem(value)


_CHECKS = {
    "bool": _bool_problem,
    "count": _count_problem,
    "dict": _dict_problem,
    "list": _list_problem,
    "pattern": _pattern_problem,
}


def _type_problem(expected: str | tuple[str, ...], value: object) -> str | None:
    """Why ``value`` is not what a variable of type ``expected`` holds, or None; accepts what Ansible converts."""
    if isinstance(expected, tuple):
        if isinstance(value, str) and value in expected:
            return None
        return f"{value!r} is not one of {', '.join(expected)}"
    return _CHECKS.get(expected, _string_problem)(value)


def value_problems(cluster: str, values: Mapping[str, object]) -> list[str]:
    """Every inventory variable whose value is not of its type; null counts as not set, as for the roles."""
    problems = []
    for name in sorted(values):
        expected, value = VARIABLE_TYPES.get(name), values[name]
        if expected is None or value is None or name == WORKLOADS:
            continue
        problem = _type_problem(expected, value)
        if problem:
            problems.append(f"cluster {cluster}: {name}: {problem}")
    return problems


def variable_problems(cluster: str, names: list[str]) -> list[str]:
    """Every ``workload_identity_*`` name this collection does not read, with the closest one it does."""
    problems = []
    for name in sorted(set(names)):
        if not name.startswith(PREFIX) or name in KNOWN_VARIABLES:
            continue
        # Compared without the shared prefix, which would make every name look close.
        suffixes = [known[len(PREFIX) :] for known in KNOWN_VARIABLES]
        close = difflib.get_close_matches(name[len(PREFIX) :], suffixes, n=1, cutoff=0.7)
        hint = f"did you mean {PREFIX}{close[0]}?" if close else f"the {PREFIX}* names are this collection's"
        problems.append(f"cluster {cluster}: {name}: not a variable of workload_identity.aks ({hint})")
    return problems
