# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's workload_identity_* values as the collection's type checks get them: nothing secret in them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

WORKLOADS = "workload_identity_workloads"


def checkable_values(values: Any) -> dict[str, Any]:
    """Each value as it is, but a mapping's content left out (credentials, a kubeconfig): being a mapping is what
    the check needs. The workload list is left out too: it is validated, entry by entry, on its own."""
    if not isinstance(values, Mapping):
        raise AnsibleFilterError(f"checkable_values expects a mapping of variable names to values, got {values!r}")
    return {
        str(name): {} if isinstance(value, Mapping) else value for name, value in values.items() if name != WORKLOADS
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"checkable_values": checkable_values}
