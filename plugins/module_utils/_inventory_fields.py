# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the checks of one workload's fields.

Each appends every problem it finds to ``problems``, naming the field; ``_inventory`` runs them over
the whole list, so one run reports every mistake at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._ids import is_guid, parse_role
from ._limits import (
    ACCESS_ADMIN_ROLES,
    BROAD_ROLES,
    FIC_FIELD_MAX,
    FICS_PER_IDENTITY,
    PRIVILEGED_SCOPE_KINDS,
    TOKEN_EXPIRATION,
)
from ._ownership import default_application_unique_name

UNIQUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


@dataclass
class Seen:
    names: dict[str, int] = field(default_factory=dict)
    accounts: dict[tuple[str, str], str] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    controllers: dict[tuple[str, str, str], str] = field(default_factory=dict)


def privileged_problem(role: str, scope_kind: str, scope: str, at: str) -> str | None:
    """Owner and the like anywhere (a workload could grant itself anything), Contributor at broad scopes."""
    ref = parse_role(role)

    def named(table: dict[str, str]) -> str | None:
        found = table.get(ref.guid) if ref.guid else None
        return found or next((n for n in table.values() if n.lower() == role.lower()), None)

    admin = named(ACCESS_ADMIN_ROLES)
    if admin:
        return (
            f"{at}: role: {admin} lets the workload grant roles, itself included: refused for a workload identity at "
            f"any scope ({scope}) (set allow_privileged_roles to allow it)"
        )
    broad = named(BROAD_ROLES)
    if broad and scope_kind in PRIVILEGED_SCOPE_KINDS:
        return (
            f"{at}: role: {broad} at {scope_kind} scope {scope} is refused for a workload identity "
            "(set allow_privileged_roles to allow it)"
        )
    return None


def _subjects(raw: Any, subject: str, label: str, problems: list[str]) -> list[str]:
    extra = raw or []
    if not isinstance(extra, list) or not all(isinstance(s, str) and 0 < len(s) <= FIC_FIELD_MAX for s in extra):
        problems.append(f"{label}: extra_subjects: must be a list of subjects of 1-{FIC_FIELD_MAX} characters")
        extra = []
    subjects = [subject, *extra]
    if len(set(subjects)) != len(subjects):
        problems.append(f"{label}: extra_subjects: repeats a subject")
    if len(subjects) > FICS_PER_IDENTITY:
        problems.append(
            f"{label}: extra_subjects: {len(subjects)} federated credentials on one identity; "
            f"Azure allows {FICS_PER_IDENTITY}"
        )
    return subjects


def _token_expiration(raw: Any, label: str, problems: list[str]) -> int | None:
    if raw is None:
        return None
    low, high = TOKEN_EXPIRATION
    # ASCII digits only: str.isdigit() also takes superscripts and other scripts' digits, which int() refuses.
    if isinstance(raw, bool) or not re.fullmatch(r"[0-9]+", str(raw)) or not low <= int(raw) <= high:
        problems.append(f"{label}: token_expiration: must be seconds between {low} and {high} (got {raw!r})")
        return None
    return int(raw)


def _once(seen: Seen, key: str, what: str, workload: str, problems: list[str]) -> None:
    """One identity (or application) per workload."""
    if key.lower() in seen.identities:
        problems.append(
            f"{what} is already used by workload '{seen.identities[key.lower()]}' (one identity per workload)"
        )
    seen.identities[key.lower()] = workload


def _application(
    raw: dict[str, Any], label: str, cluster: str, namespace: str, name: str, seen: Seen, problems: list[str]
) -> tuple[str | None, str | None, str | None]:
    """(unique name, appId, display name) of an application workload."""
    for key in ("identity_name", "identity_resource_group", "tags"):
        if key in raw:
            problems.append(f"{label}: {key}: only for identity_type user_assigned")
    app_id, unique = raw.get("application_id"), raw.get("application_unique_name")
    display = raw.get("application_display_name")
    if app_id is not None:
        if unique is not None or display is not None:
            problems.append(
                f"{label}: application_id: an existing application is used as it is; "
                "give no application_unique_name or application_display_name with it"
            )
        if not isinstance(app_id, str) or not is_guid(app_id):
            problems.append(f"{label}: application_id: must be an application (client) id, a GUID (got {app_id!r})")
        _once(seen, f"app:{app_id}", f"{label}: application_id: application {app_id}", name, problems)
        return None, str(app_id), None
    unique = unique or default_application_unique_name(cluster, namespace, name)
    if not isinstance(unique, str) or not UNIQUE_NAME.fullmatch(unique):
        problems.append(f"{label}: application_unique_name: '{unique}' must be 1-120 letters, digits, '.', '_' and '-'")
    if display is not None and (
        not isinstance(display, str) or not display.strip() or len(display) > 256 or not display.isprintable()
    ):
        problems.append(f"{label}: application_display_name: must be 1-256 characters, none a control character")
    _once(seen, f"app:{unique}", f"{label}: application_unique_name: application {unique}", name, problems)
    return str(unique), None, str(display) if display else None
