# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what every module of the collection shares.

One way to fail: with every problem found (bad input) or with the one translated API error (what
failed, status, code, message, request id), never with a raw client exception.
"""

from __future__ import annotations

import traceback
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule

from ._errors import ApiError, ValidationError, problems_message


class CollectionModule(AnsibleModule):  # type: ignore[misc]  # AnsibleModule is untyped
    def fail_problems(self, problems: list[str], where: str = "", **result: Any) -> NoReturn:
        """Fail with every problem found, before anything was changed."""
        self.fail_json(msg=problems_message(problems, where), problems=problems, **result)
        raise AssertionError("fail_json returned")  # pragma: no cover (it exits)

    def fail_error(self, error: BaseException, where: str = "", **result: Any) -> NoReturn:
        """Fail once, with what a human needs: what failed, status, code, message, request id."""
        prefix = f"{where}: " if where else ""
        if isinstance(error, ValidationError):
            self.fail_problems(error.problems, where, **result)
        if isinstance(error, ApiError):
            self.fail_json(msg=prefix + str(error), error=error.to_dict(), **result)
        self.fail_json(msg=f"{prefix}{type(error).__name__}: {error}", **result)
        raise AssertionError("fail_json returned")  # pragma: no cover (it exits)

    def fail_bug(self, error: BaseException) -> NoReturn:
        """An exception no code path expects (a bug): its type, message and traceback, and where to report it."""
        self.fail_json(
            msg=f"unexpected {type(error).__name__}: {error} (a bug in workload_identity.aks: please report it with "
            "this message)",
            exception="".join(traceback.format_exception(error)),
        )
        raise AssertionError("fail_json returned")  # pragma: no cover (it exits)
