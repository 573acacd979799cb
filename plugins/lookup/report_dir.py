# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the rollout's and verify's reports go: an absolute path, never inside a collection."""

from __future__ import annotations

DOCUMENTATION = r"""
name: report_dir
short_description: The directory the rollout and verify write their reports to
version_added: 0.1.0
author: workload_identity.aks maintainers (@workload-identity)
description:
  - Returns one absolute path, resolved on the controller before anything is changed.
  - A relative path (the requested one, or the default C(workload-identity-reports)) is taken relative to the
    directory C(ansible-playbook) runs in (in AWX and ansible-runner, the project folder), not to the playbook's
    folder, which may be an installed, read-only collection.
  - With no path requested, when the working directory is not writable (an execution environment's read-only
    image, say), the default falls back to C(workload-identity-reports) under C(ANSIBLE_HOME) (C(~/.ansible)),
    then under the system's temporary directory.
  - A path inside an C(ansible_collections) tree is refused (an installed collection is not the place for an
    operator's reports, and in an execution environment it is read-only); so is a requested path that cannot be
    created or written. Both errors name the variable C(workload_identity_report_dir).
options:
  _terms:
    description: The requested directory (C(workload_identity_report_dir)); empty or omitted for the default.
    type: list
    elements: str
    required: false
"""

EXAMPLES = r"""
- name: Where this run's reports go
  ansible.builtin.debug:
    msg: "{{ lookup('workload_identity.aks.report_dir', workload_identity_report_dir | default('')) }}"
"""

RETURN = r"""
_raw:
  description: The absolute path of the report directory (it exists and is writable when returned).
  type: list
  elements: str
"""

import os
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DEFAULT_NAME = "workload-identity-reports"
VARIABLE = "workload_identity_report_dir"


def _inside_collection(path: str) -> bool:
    return "ansible_collections" in path.split(os.sep)


def _writable_dir(path: str) -> str | None:
    """None when ``path`` is (now) a writable directory, else why not."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as error:
        return f"it cannot be created ({error.strerror})"
    if not os.access(path, os.W_OK | os.X_OK):
        return "it is not writable"
    return None


def resolve(requested: str, cwd: str, ansible_home: str, temp: str) -> str:
    """The report directory for ``requested`` ('' for the default), made if missing."""
    if requested:
        path = os.path.normpath(os.path.join(cwd, os.path.expanduser(requested)))
        if _inside_collection(path):
            raise AnsibleLookupError(
                f"{VARIABLE}: {path} is inside an ansible_collections tree (an installed collection, read-only in an "
                "execution environment); set it to a folder of your project or an absolute path elsewhere"
            )
        problem = _writable_dir(path)
        if problem:
            raise AnsibleLookupError(f"{VARIABLE}: {path}: {problem}; set it to a writable folder")
        return path
    tried = []
    for base in (cwd, ansible_home, temp):
        path = os.path.normpath(os.path.join(base, DEFAULT_NAME))
        if _inside_collection(path):
            tried.append(f"{path} (inside a collection)")
            continue
        problem = _writable_dir(path)
        if problem is None:
            return path
        tried.append(f"{path} ({problem})")
    raise AnsibleLookupError(f"{VARIABLE}: no writable default for the reports ({'; '.join(tried)}); set it")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        requested = str(terms[0]).strip() if terms and terms[0] else ""
        ansible_home = os.path.expanduser(getattr(C, "ANSIBLE_HOME", None) or "~/.ansible")
        return [resolve(requested, os.getcwd(), ansible_home, tempfile.gettempdir())]
