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

PREFIX = "workload_identity_"
KNOWN_VARIABLES = (
    "workload_identity_allow_privileged_roles",
    "workload_identity_application_purge",
    "workload_identity_azure_auth",
    "workload_identity_cluster_name",
    "workload_identity_cluster_resource_group",
    "workload_identity_discover_dir",
    "workload_identity_discover_overwrite",
    "workload_identity_discover_resource_groups",
    "workload_identity_hosts",
    "workload_identity_identity_resource_group",
    "workload_identity_issuer_url",
    "workload_identity_kube_context",
    "workload_identity_kubeconfig",
    "workload_identity_location",
    "workload_identity_missing_workloads",
    "workload_identity_prune",
    "workload_identity_prune_confirm",
    "workload_identity_prune_max",
    "workload_identity_report_dir",
    "workload_identity_teardown_everything",
    "workload_identity_tenant_id",
    "workload_identity_webhook_mode",
    "workload_identity_workloads",
)


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
