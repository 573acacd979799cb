# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a run's report files on the controller, all in one task, each replaced whole (never half-written)."""

from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

FILE_MODE = 0o644
DIR_MODE = 0o755


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
        folder, files = self._task.args.get("dir"), self._task.args.get("files")
        if not isinstance(folder, str) or not folder:
            raise AnsibleActionFail("dir: the folder to write the reports in is required")
        if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("content"), str) for f in files
        ):
            raise AnsibleActionFail("files: a list of {name, content} (both strings) is required")
        for entry in files:
            name = entry["name"]
            if not name or os.path.basename(name) != name or name in (".", ".."):
                raise AnsibleActionFail(f"files: {name!r} must be a file name, without a folder")
        try:
            os.makedirs(folder, mode=DIR_MODE, exist_ok=True)
            written = [_replace(os.path.join(folder, f["name"]), f["content"]) for f in files]
        except OSError as exc:
            raise AnsibleActionFail(f"writing the reports in {folder}: {exc}") from exc
        result.update(changed=False, written=written)
        return result


def _replace(path: str, content: str) -> str:
    """The file replaced whole: written beside it, then renamed over it (a reader never sees half a report)."""
    handle, partial = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.chmod(partial, FILE_MODE)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return path
