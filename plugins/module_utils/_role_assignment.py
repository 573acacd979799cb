# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): idempotent role assignments.

- The name, unless given, is derived from scope + role + principal, so runs never duplicate.
- An equivalent assignment under any other name (portal, az, Terraform) is adopted, not fought.
- A 409 RoleAssignmentExists that races us is resolved by reading.
- Lookups ask for one principal at one scope (``atScope() and assignedTo()``), never a whole
  subscription; a failed lookup is an error, never "absent".
- Role names resolve to exactly one definition at the scope, or a clear error listing what matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import AzureApiError, ValidationError
from ._identity import Outcome
from ._ids import assignment_name, canonical, is_guid, parse_scope, role_guid, same_scope
from ._retry import RetryPolicy, call

DEFINITION_MARKER = "/providers/microsoft.authorization/roledefinitions/"
PRINCIPAL_TYPES = ("ServicePrincipal", "User", "Group", "ForeignGroup", "Device")
# Roles that can grant access or change anything; refused at broad scopes unless allowed (batch path).
PRIVILEGED_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
}


@dataclass(frozen=True)
class Role:
    id: str  # as read at the scope
    guid: str
    name: str


def assignment_state(model: Any, role_name: str | None = None) -> dict[str, Any]:
    return {
        "id": canonical(model.id),
        "name": model.name,
        "scope": model.scope,
        "role_definition_id": model.role_definition_id,
        "role_definition_guid": role_guid(model.role_definition_id),
        "role": role_name,
        "principal_id": model.principal_id,
        "principal_type": model.principal_type,
        "condition": model.condition,
        "condition_version": model.condition_version,
        "description": model.description,
    }


class RoleAssignmentApi:
    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.assignments = client.role_assignments
        self.definitions = client.role_definitions
        self.policy = policy or RetryPolicy()

    def resolve_role(self, scope: str, role: str) -> Role:
        """A role name, GUID or full definition id -> the one definition assignable at ``scope``."""
        guid = role_guid(role) if DEFINITION_MARKER in role.lower() else role if is_guid(role) else None
        if guid is not None:
            try:
                model = call(f"get role definition {guid}", lambda: self.definitions.get(scope, guid), self.policy)
            except AzureApiError as exc:
                if exc.status in (400, 404):
                    raise ValidationError([f"role: no role definition {guid} is assignable at {scope}"]) from exc
                raise
            return Role(model.id, role_guid(model.id), model.role_name)
        escaped = role.replace("'", "''")
        found = call(
            f"find role '{role}'",
            lambda: list(self.definitions.list(scope, filter=f"roleName eq '{escaped}'")),
            self.policy,
        )
        exact = [d for d in found if d.role_name == role] or found
        if len(exact) != 1:
            listed = ", ".join(f"{d.role_name} ({role_guid(d.id)})" for d in found) or "none"
            raise ValidationError(
                [
                    f"role: '{role}' must name exactly one role definition assignable at {scope}; "
                    f"found {len(found)}: {listed}. Give the role's GUID to choose."
                ]
            )
        model = exact[0]
        return Role(model.id, role_guid(model.id), model.role_name)

    def at_scope_for(self, scope: str, principal_id: str) -> list[Any]:
        """The principal's assignments at the scope and above it: one request, however big the subscription."""
        return call(
            f"list role assignments of {principal_id} at {scope}",
            lambda: list(self.assignments.list_for_scope(scope, filter=f"atScope() and assignedTo('{principal_id}')")),
            self.policy,
        )

    def find(self, scope: str, principal_id: str, guid: str, listed: list[Any] | None = None) -> Any | None:
        """The assignment of this role to this principal exactly at this scope, under any name."""
        for model in listed if listed is not None else self.at_scope_for(scope, principal_id):
            if (
                same_scope(model.scope, scope)
                and role_guid(model.role_definition_id) == guid
                and model.principal_id.lower() == principal_id.lower()
            ):
                return model
        return None

    def create(self, scope: str, name: str, body: dict[str, Any]) -> Any:
        return call(
            f"create role assignment {name} at {scope}", lambda: self.assignments.create(scope, name, body), self.policy
        )

    def delete(self, scope: str, name: str) -> None:
        call(f"delete role assignment {name} at {scope}", lambda: self.assignments.delete(scope, name), self.policy)


def ensure_role_assignment(
    api: RoleAssignmentApi,
    *,
    scope: str,
    role: str | Role,
    principal_id: str,
    principal_type: str,
    state: str,
    check_mode: bool,
    name: str | None = None,
    condition: str | None = None,
    condition_version: str | None = None,
    description: str | None = None,
    listed: list[Any] | None = None,
) -> Outcome:
    """``listed``: the principal's assignments at the scope when the caller already has them (batch path)."""
    scope = parse_scope(scope).path
    resolved = role if isinstance(role, Role) else api.resolve_role(scope, role)
    existing = api.find(scope, principal_id, resolved.guid, listed)
    before = assignment_state(existing, resolved.name) if existing is not None else None
    if state == "absent":
        if existing is None:
            return Outcome(False, "absent", None, None)
        if not check_mode:
            api.delete(scope, existing.name)
        return Outcome(True, "deleted", before, None)
    if condition and not condition_version:
        condition_version = "2.0"
    if before is not None:
        # Compare only what the user set; an adopted assignment keeps its own name.
        wanted = {
            k: v
            for k, v in (
                ("condition", condition),
                ("condition_version", condition_version),
                ("description", description),
            )
            if v is not None
        }
        if all(before[k] == v for k, v in wanted.items()):
            notes = [f"adopted existing assignment {before['name']}"] if name and before["name"] != name else []
            return Outcome(False, "unchanged", before, before, notes)
        after = {**before, **wanted}
        if not check_mode:
            after = assignment_state(
                api.create(
                    scope,
                    before["name"],
                    _body(
                        resolved,
                        principal_id,
                        before["principal_type"],
                        after["condition"],
                        after["condition_version"],
                        after["description"],
                    ),
                ),
                resolved.name,
            )
        return Outcome(True, "updated", before, after)
    name = name or assignment_name(scope, resolved.guid, principal_id)
    body = _body(resolved, principal_id, principal_type, condition, condition_version, description)
    after = {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "name": name,
        "scope": scope,
        "role_definition_id": resolved.id,
        "role_definition_guid": resolved.guid,
        "role": resolved.name,
        "principal_id": principal_id,
        "principal_type": principal_type,
        "condition": condition,
        "condition_version": condition_version,
        "description": description,
    }
    if check_mode:
        return Outcome(True, "created", None, after)
    try:
        model = api.create(scope, name, body)
    except AzureApiError as exc:
        if exc.status != 409 or exc.code != "RoleAssignmentExists":
            raise
        # Someone made the same assignment under another name between our read and our write.
        raced = api.find(scope, principal_id, resolved.guid)
        if raced is None:
            raise
        adopted = assignment_state(raced, resolved.name)
        return Outcome(False, "unchanged", adopted, adopted, [f"adopted {raced.name}, created concurrently"])
    return Outcome(True, "created", None, assignment_state(model, resolved.name))


def _body(
    role: Role,
    principal_id: str,
    principal_type: str,
    condition: str | None,
    condition_version: str | None,
    description: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "role_definition_id": role.id,
        "principal_id": principal_id,
        "principal_type": principal_type,
    }
    if condition:
        body.update(condition=condition, condition_version=condition_version or "2.0")
    if description is not None:
        body["description"] = description
    return body
