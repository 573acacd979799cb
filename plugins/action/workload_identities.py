# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the workload_identities module, printing what it still retries while it runs (plugin_utils.progress).

With ``validate_only``, nothing is asked of Azure: the request is checked here, on the controller, by the module's
own check (``_workload_request``), without starting a module process (an interpreter, the Azure SDK's imports): the
roles validate every cluster's list before anything else, so this is paid once per cluster and run.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AUTH_ARGSPEC
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import problems_message
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_batch import PLAN_KUBERNETES_ARGUMENT
from ansible_collections.workload_identity.aks.plugins.module_utils._workload_request import (
    ARGUMENT_SPEC,
    check_request,
)
from ansible_collections.workload_identity.aks.plugins.plugin_utils.progress import ProgressAction


class ActionModule(ProgressAction):
    """The workload_identities module with progress lines; ``validate_only`` checked on the controller."""

    def run(self, tmp=None, task_vars=None):
        if not boolean(self._task.args.get("validate_only", False), strict=False):
            return super().run(tmp, task_vars)
        result = super(ProgressAction, self).run(tmp, task_vars)  # ActionBase's: no module is executed
        del tmp
        # The list is "raw" to the spec, which would only copy it (deeply: seconds for thousands of workloads); the
        # collection's own check below validates it, field by field.
        args = dict(self._task.args)
        if "workloads" not in args:
            raise AnsibleActionFail("missing required arguments: workloads")
        workloads = args.pop("workloads")
        options = {**ARGUMENT_SPEC, **AUTH_ARGSPEC, "plan_kubernetes": PLAN_KUBERNETES_ARGUMENT}
        spec = {name: option for name, option in options.items() if name != "workloads"}
        validated = ArgumentSpecValidator(spec).validate(args)
        if validated.error_messages:
            raise AnsibleActionFail("; ".join(validated.error_messages))
        params = {**validated.validated_parameters, "workloads": workloads}
        checked = check_request(params)
        result["deprecations"] = [
            {"msg": message, "version": "2.0.0", "collection_name": "workload_identity.aks"}
            for message in checked.deprecations
        ]
        if checked.problems:
            where = f"in the workloads of {params['cluster_name']}"  # as the module says it
            result.update(failed=True, msg=problems_message(checked.problems, where), problems=checked.problems)
            return result
        result.update(changed=False, workloads=[], pruned={}, problems=[])
        return result
