# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report files written on the controller, each replaced whole (the ``reports`` and ``rollout_report`` actions)."""

from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail

FILE_MODE = 0o644
DIR_MODE = 0o755


def write_files(folder: object, files: object) -> list[str]:
    """Each ``{name, content}`` written in ``folder`` (made if missing); the paths written. Bad arguments and an
    unwritable folder are an AnsibleActionFail naming them."""
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
        return [_replace(os.path.join(folder, f["name"]), f["content"]) for f in files]
    except OSError as exc:
        raise AnsibleActionFail(f"writing the reports in {folder}: {exc}") from exc


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
