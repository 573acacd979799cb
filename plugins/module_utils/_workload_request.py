# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what the workload_identities module is asked, checked
without a request to anything: the workload list, the inventory's variables, the issuer's URL.

The module checks its request with this first. With ``validate_only``, its action plugin runs the same check on the
controller, in its own process: validating a list then costs no module process (no interpreter start, no Azure
SDK import), only the check itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._guard import DEFAULT_PRUNE_MAX
from ._inventory import WorkloadSpec, list_problems, validate_workloads, workload_entries
from ._limits import FIC_FIELD_MAX
from ._variables import value_problems, variable_problems

# The module's own options (the Azure authentication options are added by ``AzureModule``).
ARGUMENT_SPEC: dict[str, Any] = {
    "cluster_name": {"type": "str", "required": True},
    "cluster_resource_group": {"type": "str"},
    "defer_replaced": {"type": "bool", "default": False},
    "release_gone_clusters": {"type": "bool", "default": False},
    "issuer_url": {"type": "str"},
    # The cluster's issuer read by this module (cluster_oidc_issuer's check mode) instead of given: one module process
    # and one cluster read fewer in a run (the oidc_issuer role reuses this read).
    "read_issuer": {"type": "dict", "options": {"workload_identity": {"type": "bool"}}},
    "location": {"type": "str"},
    "identity_resource_group": {"type": "str"},
    "workloads": {"type": "raw", "required": True},
    "workloads_variable": {"type": "str", "default": "workloads"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "prune": {"type": "bool", "default": False},
    "allow_privileged_roles": {"type": "bool", "default": False},
    "database_admin_name": {"type": "str"},
    "max_concurrency": {"type": "int", "default": 8},
    "application_purge": {"type": "bool", "default": False},
    "validate_only": {"type": "bool", "default": False},
    "planned_unchanged": {"type": "list", "elements": "str", "default": []},
    "prune_max": {"type": "int", "default": DEFAULT_PRUNE_MAX},
    "prune_confirm": {"type": "str"},
    "inventory_variables": {"type": "list", "elements": "str", "default": []},
    "inventory_values": {"type": "dict", "default": {}},
    "workloads_kind": {"type": "str"},
    "shared_with": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "cluster_name": {"type": "str", "required": True},
            "cluster_resource_group": {"type": "str"},
            "identity_resource_group": {"type": "str"},
            "subscription_id": {"type": "str"},
            "issuer_url": {"type": "str"},
            "in_run": {"type": "bool", "default": True},
            "workloads": {"type": "list", "elements": "dict", "default": []},
        },
    },
}


@dataclass
class CheckedRequest:
    """The valid workloads, every problem found, and deprecations to announce."""

    specs: list[WorkloadSpec]
    problems: list[str]
    deprecations: list[str] = field(default_factory=list)


def check_request(params: dict[str, Any]) -> CheckedRequest:
    """Every mistake of the request at once, each naming the cluster (and the workload and field)."""
    cluster = params["cluster_name"]
    workloads, entry_problems = workload_entries(cluster, params["workloads"], params["workloads_variable"])
    present = params["state"] == "present"
    # Before the issuer is enabled its URL is unknown; validating the list, or removing, does not need it. Read from the
    # cluster (read_issuer), it is checked once read.
    problems = []
    if params["read_issuer"] is not None:
        problems += read_issuer_problems(cluster, params)
    elif present and not params["validate_only"]:
        problems += issuer_problems(cluster, params["issuer_url"])
    validated = validate_workloads(
        cluster,
        workloads,
        identity_resource_group=params["identity_resource_group"],
        allow_privileged_roles=params["allow_privileged_roles"],
    )
    problems += validated.problems
    problems += variable_problems(cluster, params["inventory_variables"])
    problems += value_problems(cluster, params["inventory_values"])
    problems += entry_problems + kind_problems(cluster, params["workloads_kind"])
    deprecations = list(validated.deprecations)
    if params["workloads_kind"] is not None:
        deprecations.append("workloads_kind is not needed any more: give workloads as the inventory holds it")
    return CheckedRequest(validated.specs, problems, deprecations)


def issuer_problems(cluster: str, issuer_url: str | None) -> list[str]:
    if not issuer_url or not issuer_url.startswith("https://") or len(issuer_url) > FIC_FIELD_MAX:
        return [f"cluster {cluster}: issuer_url: must be the cluster's https OIDC issuer URL (got {issuer_url!r})"]
    return []


def read_issuer_problems(cluster: str, params: dict[str, Any]) -> list[str]:
    """read_issuer reads the cluster named by cluster_name in cluster_resource_group, to plan or converge with."""
    problems = []
    if params["issuer_url"]:
        problems.append(f"cluster {cluster}: read_issuer and issuer_url: give one (read_issuer reads the issuer URL)")
    if not params["cluster_resource_group"]:
        problems.append(f"cluster {cluster}: read_issuer needs cluster_resource_group (the cluster's resource group)")
    if params["state"] != "present":
        problems.append(f"cluster {cluster}: read_issuer is for state present (removing needs no issuer read)")
    return problems


def kind_problems(cluster: str, kind: str | None) -> list[str]:
    """The deprecated workloads_kind (what 0.1.0's roles passed beside a list they had filtered): its problems, as
    the list itself would have had them."""
    if kind is None:
        return []
    positions = kind.split()[1:] if kind.startswith("list #") else []
    return list_problems(
        cluster, "workload_identity_workloads", "list" if positions else kind, [p.lstrip("#") for p in positions]
    )
