# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print a summary as the plain lines it is, whatever the stdout callback's result format."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


class ActionModule(ActionBase):
    """Runs on the controller only: nothing is sent to a host."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("lines", "warnings"))
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        lines = self._task.args.get("lines")
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise AnsibleActionFail("lines: a list of strings is required")
        # One call, so the lines of two clusters summarised at once never interleave; a worker's display goes through
        # the controller's queue, and AWX records it as the job's output.
        warnings = self._task.args.get("warnings") or []
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise AnsibleActionFail("warnings: a list of strings is required")
        display.display("\n".join(lines))
        result.update(changed=False, lines=lines)
        if warnings:
            result["warnings"] = warnings  # shown by Ansible as [WARNING], and kept in AWX's job events
        return result
