# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the service_accounts module, printing what it still retries while it runs (plugin_utils.progress).

``identities_from`` names registered results of workload_identities; the identities are taken from them here, on the
controller, as they were registered. Templated into the task instead (``identities: "{{ result.workloads |
workload_identity.aks.client_ids }}"``), 200 workloads' rows are copied through Ansible's lazy containers node by
node first, about 0.2 s of a no-op rollout's CPU (sampled with py-spy); read by name, a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleActionFail
from ansible_collections.workload_identity.aks.plugins.module_utils._results import kube_identities
from ansible_collections.workload_identity.aks.plugins.plugin_utils.progress import ProgressAction


class ActionModule(ProgressAction):
    """The service_accounts module with progress lines; ``identities_from`` resolved on the controller."""

    def run(self, tmp=None, task_vars=None):
        names = self._task.args.get("identities_from")
        if names is not None:
            args = {key: value for key, value in self._task.args.items() if key != "identities_from"}
            if args.get("identities"):
                raise AnsibleActionFail("identities_from: give either identities or identities_from, not both")
            args["identities"] = identities_from(names, task_vars or {})
            self._task.args = args
        return super().run(tmp, task_vars)


def identities_from(names: object, task_vars: Mapping[str, object]) -> list[dict[str, object]]:
    """The identities of the results registered under ``names``, each workload taken from the first that lists it."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise AnsibleActionFail("identities_from: the names of registered results of workload_identities are required")
    results = []
    for name in names:
        result = task_vars.get(name)
        if not isinstance(result, Mapping):
            raise AnsibleActionFail(f"identities_from: {name} is not a registered result (register: {name})")
        # A converge that was skipped, or a plan that found problems (reported with these), has no rows to give.
        if isinstance(result.get("workloads"), list):
            results.append(result)
    return kube_identities(*results)
