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

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._abac import CONDITION_ACTIONS, CONDITION_DATA_ACTIONS, condition_actions
from ._azure_errors import azure_call
from ._errors import AzureApiError, ValidationError
from ._ids import assignment_name, canonical, parse_role, parse_scope, role_guid, same_scope
from ._ownership_assignments import made_by_collection_assignment, marked_description, read_mark
from ._results import Outcome, RoleAssignmentState
from ._retry import RetryPolicy

PRINCIPAL_TYPES = ("ServicePrincipal", "User", "Group", "ForeignGroup", "Device")


# Permission blocks as (actions, notActions, dataActions), one per role definition (or per role held, as ARM's
# permissions API answers).
Blocks = tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]


@dataclass(frozen=True)
class Role:
    id: str  # as read at the scope
    guid: str
    name: str | None  # None when only the GUID is known (an assignment listed, its role not looked up)
    # Its permission blocks, as (actions, notActions, dataActions): empty when not read.
    permissions: Blocks = ()

    @classmethod
    def of(cls, model: Any) -> Role:
        """From a role definition as the SDK returns it."""
        blocks = tuple(
            (tuple(p.actions or ()), tuple(p.not_actions or ()), tuple(p.data_actions or ()))
            for p in getattr(model, "permissions", None) or ()
        )
        return cls(model.id, role_guid(model.id), model.role_name, blocks)

    def allows(self, action: str) -> bool:
        """Whether a permission block allows a control-plane action (its actions, less its notActions)."""
        return self._permits(action, data=False)

    def grants(self, action: str) -> bool:
        """Whether a permission block grants an action of either plane (its actions and dataActions, less its
        notActions)."""
        return self._permits(action, data=True)

    def _permits(self, action: str, data: bool) -> bool:
        return any(
            any(action_matches(g, action) for g in (*actions, *(data_actions if data else ())))
            and not any(action_matches(g, action) for g in denied)
            for actions, denied, data_actions in self.permissions
        )

    @property
    def data_actions(self) -> tuple[str, ...]:
        return tuple(a for _actions, _denied, data in self.permissions for a in data)


def condition_role_problem(role: Role, condition: str) -> str | None:
    """Why ARM would refuse this (parsable) condition on this role (400 InvalidRoleAssignmentCondition): the role's
    actions take no condition, or the condition names an action the role does not grant. A role read without its
    permissions is not judged."""
    if not role.permissions:
        return None
    name = role.name or role.guid
    data_prefixes = tuple(p.lower() for p in CONDITION_DATA_ACTIONS)
    if not (
        any(a.lower().startswith(data_prefixes) for a in role.data_actions) or any(map(role.allows, CONDITION_ACTIONS))
    ):
        return (
            f"{name} takes no condition: Azure accepts conditions only on roles with storage blob or queue data "
            "actions, or that write or delete role assignments (remove condition, or choose such a role)"
        )
    for named in condition_actions(condition):
        if "*" not in named and not role.grants(named):
            return f"names the action {named}, which {name} does not grant (Azure refuses such a condition)"
    return None


def action_matches(pattern: str, action: str) -> bool:
    """Azure's action wildcards: '*' matches any run of characters; case does not matter."""
    regex = ".*".join(re.escape(part) for part in pattern.lower().split("*"))
    return re.fullmatch(regex, action.lower()) is not None


def assignment_state(model: Any, role_name: str | None = None) -> RoleAssignmentState:
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


PERMISSIONS_API = "2022-04-01"


def read_permissions(client: Any, scope: str, policy: RetryPolicy) -> list[dict[str, Any]]:
    """What the client's caller may do at ``scope`` (ARM's permissions API): one block per role it holds there or
    above (actions, notActions, dataActions, notDataActions), every page. Sent through the SDK client's pipeline (its
    credential, the collection's user agent); the operation is not in every API version the SDK carries."""
    from azure.core.rest import HttpRequest

    pipeline = client._client  # pylint: disable=protected-access
    url: str | None = pipeline.format_url(
        f"{scope}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API}"
    )
    blocks: list[dict[str, Any]] = []
    while url:

        def get(page_url: str = url) -> dict[str, Any]:
            response = pipeline.send_request(HttpRequest("GET", page_url))
            response.raise_for_status()
            return dict(response.json())

        page = azure_call(f"read the permissions at {scope}", get, policy)
        blocks.extend(page.get("value") or [])
        url = page.get("nextLink")
    return blocks


def permission_blocks(blocks: list[dict[str, Any]]) -> Blocks:
    """The permissions API's blocks as a :class:`Role`'s (actions, notActions, dataActions)."""
    return tuple(
        (tuple(b.get("actions") or ()), tuple(b.get("notActions") or ()), tuple(b.get("dataActions") or ()))
        for b in blocks
    )


class RoleAssignmentApi:
    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.assignments = client.role_assignments
        self.definitions = client.role_definitions
        self.policy = policy or RetryPolicy()

    def permissions(self, scope: str) -> Blocks:
        """What the automation principal holds at ``scope``, inherited included (ARM's permissions API)."""
        return permission_blocks(read_permissions(self.client, scope, self.policy))

    def resolve_role(self, scope: str, role: str) -> Role:
        """A role name, GUID or full definition id -> the one definition assignable at ``scope``."""
        guid = parse_role(role).guid
        if guid is not None:
            try:
                model = azure_call(
                    f"get role definition {guid}", lambda: self.definitions.get(scope, guid), self.policy
                )
            except AzureApiError as exc:
                if exc.status in (400, 404):
                    raise ValidationError([f"role: no role definition {guid} is assignable at {scope}"]) from exc
                raise
            return Role.of(model)
        escaped = role.replace("'", "''")
        found = azure_call(
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
        return Role.of(exact[0])

    def list_definitions(self, scope: str) -> list[Role]:
        """Every role definition visible at the scope (at a subscription: all built-in and custom roles)."""
        models = azure_call(
            f"list role definitions at {scope}", lambda: list(self.definitions.list(scope)), self.policy
        )
        return [Role.of(m) for m in models]

    def list_at(self, scope: str, filter: str | None = None) -> list[Any]:
        """A scope's role assignments, whole (ARM answers them in one response), or as ``filter`` narrows."""
        return azure_call(
            f"list role assignments at {scope}",
            lambda: list(self.assignments.list_for_scope(scope, filter=filter)),
            self.policy,
        )

    def at_scope_for(self, scope: str, principal_id: str) -> list[Any]:
        """The principal's assignments at the scope and above it: one request, however big the subscription."""
        return azure_call(
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
        return azure_call(
            f"create role assignment {name} at {scope}", lambda: self.assignments.create(scope, name, body), self.policy
        )

    def delete(self, scope: str, name: str) -> None:
        azure_call(
            f"delete role assignment {name} at {scope}", lambda: self.assignments.delete(scope, name), self.policy
        )


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
    exact: bool = False,
    mark: str | None = None,
    shared: bool = False,
) -> Outcome[RoleAssignmentState]:
    """``listed``: the principal's assignments at the scope when the caller already has them (batch path).

    ``shared``: the principal is shared with other clusters, whose runs may grant the same assignment at the same
    moment: one that ``listed`` did not have is read afresh before it is created, and found rather than made again.

    ``exact``: the principal is the caller's own (made by this collection), so a condition it does not declare is
    removed (a dropped one, or one added by hand); otherwise only what is declared is compared.

    ``mark`` (``_ownership_assignments``): ends the description of an assignment this collection grants, so that it
    can be found again once its principal is gone. An assignment it made keeps the mark it has (another cluster's, on
    a shared identity) or gets this one; one an operator made (another name, no mark) is adopted as it is: never
    marked, its description left alone unless the inventory declares one.
    """
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
    problem = condition_role_problem(resolved, condition) if condition else None
    if problem:
        raise ValidationError([f"condition: {problem}"])
    if condition and not condition_version:
        condition_version = "2.0"
    declared = _Declared(condition, condition_version, description, exact, mark)
    if before is None and shared and listed is not None and not check_mode:
        # Another cluster sharing the principal may have made it since it was listed (its runs go in parallel).
        existing = api.find(scope, principal_id, resolved.guid)
        before = assignment_state(existing, resolved.name) if existing is not None else None
    if before is not None:
        return ensure_existing_assignment(
            api, scope, resolved, principal_id, principal_type, before, declared, name, check_mode
        )
    return ensure_new_assignment(api, scope, resolved, principal_id, principal_type, declared, name, check_mode)


class _Declared(NamedTuple):
    """What the caller declares of an assignment besides its scope, role and principal."""

    condition: str | None
    condition_version: str | None
    description: str | None
    exact: bool
    mark: str | None


def ensure_existing_assignment(
    api: RoleAssignmentApi,
    scope: str,
    resolved: Role,
    principal_id: str,
    principal_type: str,
    before: RoleAssignmentState,
    declared: _Declared,
    name: str | None,
    check_mode: bool,
) -> Outcome[RoleAssignmentState]:
    """An existing assignment: compare only what the user set; an adopted assignment keeps its own name."""
    updated = before.copy()
    if declared.condition is not None or declared.exact:
        updated["condition"] = declared.condition
    if declared.condition_version is not None or declared.exact:
        updated["condition_version"] = declared.condition_version
    if declared.mark is not None and made_by_collection_assignment(
        before["name"], before["description"], scope, resolved.guid, principal_id
    ):
        kept = read_mark(before["description"])
        updated["description"] = marked_description(declared.description, kept.text if kept else declared.mark)
    elif declared.description is not None or (declared.exact and declared.mark is None):
        updated["description"] = declared.description
    if updated == before:
        notes = [f"adopted existing assignment {before['name']}"] if name and before["name"] != name else []
        return Outcome(False, "unchanged", before, before, notes)
    if not check_mode:
        body = _body(
            resolved,
            principal_id,
            before["principal_type"] or principal_type,
            updated["condition"],
            updated["condition_version"],
            updated["description"],
        )
        updated = assignment_state(api.create(scope, before["name"], body), resolved.name)
    return Outcome(True, "updated", before, updated)


def ensure_new_assignment(
    api: RoleAssignmentApi,
    scope: str,
    resolved: Role,
    principal_id: str,
    principal_type: str,
    declared: _Declared,
    name: str | None,
    check_mode: bool,
) -> Outcome[RoleAssignmentState]:
    """A new assignment, named deterministically (never a duplicate); one made concurrently is adopted."""
    name = name or assignment_name(scope, resolved.guid, principal_id)
    description = declared.description
    if declared.mark is not None:
        description = marked_description(description, declared.mark)
    condition, condition_version = declared.condition, declared.condition_version
    body = _body(resolved, principal_id, principal_type, condition, condition_version, description)
    after: RoleAssignmentState = {
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
