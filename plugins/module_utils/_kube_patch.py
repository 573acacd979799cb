# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): JSON merge patch arithmetic (RFC 7386).

The Kubernetes engine writes merge patches of only the fields it owns, and predicts their result
by applying the same patch to what it read, as the API server does: check mode is exact.
"""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies it: the plan is this applied to what was read."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def combine(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two patches as one; unlike applying one to the other, the nulls (deletions) of both are kept."""
    result = dict(first)
    for key, value in second.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = combine(result[key], value)
        else:
            result[key] = value
    return result


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return dict(value)
