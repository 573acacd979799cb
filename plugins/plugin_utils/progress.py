# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action behind the collection's long-running modules: what a module still retries, printed while it runs.

An Ansible module answers once, when it ends, so a call retried through throttling or a hung API server would leave
the run silent for minutes. These modules run on the controller (each cluster is a host with
``ansible_connection: local``): the action gives the module a file to append progress lines to
(``_retry.progress``), runs it in a thread, and prints each new line as it comes, naming the host, until the module
answers. On another connection, with ``async`` or ``no_log``, it runs the module as the ``normal`` action does.
"""

from __future__ import annotations

import os
import tempfile
import threading

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import PROGRESS_ENV

display = Display()

POLL_SECONDS = 2.0


class ProgressAction(ActionBase):
    """Runs the module of the same name, printing its progress lines meanwhile."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        wrap_async = self._task.async_val and not self._connection.has_native_async
        # no_log: not even what is retried is printed.
        if wrap_async or self._connection.transport != "local" or self._task.no_log:
            answer = self._execute_module(task_vars=task_vars, wrap_async=wrap_async)
        else:
            answer = self._run_showing_progress(task_vars)
        result = merge_hash(result, answer)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _run_showing_progress(self, task_vars):
        host = (task_vars or {}).get("inventory_hostname") or "localhost"
        handle, path = tempfile.mkstemp(prefix="workload_identity_aks-progress-")
        os.close(handle)
        # This worker process runs this one task for this one host: its environment is the module's.
        previous = os.environ.get(PROGRESS_ENV)
        os.environ[PROGRESS_ENV] = path
        answer, failure = {}, []

        def execute():
            try:
                answer.update(self._execute_module(task_vars=task_vars))
            except BaseException as exc:  # raised again in this thread, where Ansible handles it
                failure.append(exc)

        worker = threading.Thread(target=execute, name="workload_identity_aks-module", daemon=True)
        try:
            worker.start()
            shown = 0
            while worker.is_alive():
                worker.join(POLL_SECONDS)
                shown = self._show(path, shown, host)
            self._show(path, shown, host)
        finally:
            if previous is None:
                os.environ.pop(PROGRESS_ENV, None)
            else:
                os.environ[PROGRESS_ENV] = previous
            os.unlink(path)
        if failure:
            raise failure[0]
        return answer

    @staticmethod
    def _show(path, shown, host):
        """Print the lines added since ``shown`` (a byte offset); the new offset. Only whole lines are printed."""
        with open(path, "rb") as handle:
            handle.seek(shown)
            added = handle.read()
        complete = added[: added.rfind(b"\n") + 1]
        for line in complete.decode("utf-8", "replace").splitlines():
            display.display(f"{host}: {line}")
        return shown + len(complete)
