# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what every module of the collection shares.

One way to fail: with every problem found (bad input) or with the one translated API error (what
failed, status, code, message, request id), never with a raw client exception.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule

from ._errors import bug_result, error_result, problems_result


class CollectionModule(AnsibleModule):  # type: ignore[misc]  # AnsibleModule is untyped
    def fail_problems(self, problems: list[str], where: str = "", **result: Any) -> NoReturn:
        """Fail with every problem found, before anything was changed."""
        self.fail_json(**problems_result(problems, where), **result)
        raise AssertionError("fail_json returned")  # pragma: no cover (it exits)

    def fail_error(self, error: BaseException, where: str = "", **result: Any) -> NoReturn:
        """Fail once, with what a human needs: what failed, status, code, message, request id."""
        self.fail_json(**error_result(error, where), **result)
        raise AssertionError("fail_json returned")  # pragma: no cover (it exits)

    def fail_bug(self, error: BaseException) -> NoReturn:
        """An exception no code path expects (a bug): its type, message and traceback, and where to report it."""
        self.fail_json(**bug_result(error))
        raise AssertionError("fail_json returned")  # pragma: no cover (it exits)
