# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a run's report files on the controller, all in one task, each replaced whole (never half-written)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.workload_identity.aks.plugins.plugin_utils.report_files import write_files


class ActionModule(ActionBase):
    """Runs on the controller only: no module is sent anywhere. The ``file`` and ``copy`` tasks this replaces cost a
    module process each (a stat, a transfer, a copy) per file; a report is the run's record, not a change to the
    cluster, so it is written in check mode too (then it is the plan) and never reported as changed."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "files"))
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        written = write_files(self._task.args.get("dir"), self._task.args.get("files"))
        result.update(changed=False, written=written)
        return result
