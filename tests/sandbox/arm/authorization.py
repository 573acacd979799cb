"""ARM: role definitions, role assignments and permissions (Microsoft.Authorization)."""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from .. import ids
from ..core import ApiError, Context, Response, utc_now_iso
from . import conditions
from .common import (
    PRINCIPAL_TYPES,
    ArmBase,
    _parse_filter,
    _scope,
)

if TYPE_CHECKING:
    pass


def assignment_record(
    subscription: str,
    scope: str,
    name: str,
    role_guid: str,
    principal_id: str,
    principal_type: str,
    condition: str | None,
    condition_version: str | None,
    description: str | None,
    created_by: str,
) -> dict[str, Any]:
    now = utc_now_iso()
    return {
        "scope": scope,
        "scope_key": ids.norm(scope),
        "name": name,
        "role_guid": role_guid.lower(),
        "principal_id": principal_id,
        "principal_type": principal_type,
        "condition": condition,
        "condition_version": condition_version,
        "description": description,
        "created_on": now,
        "updated_on": now,
        "created_by": created_by,
        "updated_by": created_by,
        "subscription": subscription,
    }


def role_definition_id(record: dict[str, Any]) -> str:
    scope = ids.parse_scope(record["scope"])
    prefix = "" if scope.kind in ("managementGroup", "root") else f"/subscriptions/{record['subscription']}"
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{record['role_guid']}"


def assignment_body(record: dict[str, Any]) -> dict[str, Any]:
    scope = "/" if record["scope_key"] == "/" else record["scope"]
    return {
        "properties": {
            "roleDefinitionId": role_definition_id(record),
            "principalId": record["principal_id"],
            "principalType": record["principal_type"],
            "scope": scope,
            "condition": record["condition"],
            "conditionVersion": record["condition_version"],
            "createdOn": record["created_on"],
            "updatedOn": record["updated_on"],
            "createdBy": record["created_by"],
            "updatedBy": record["updated_by"],
            "delegatedManagedIdentityResourceId": None,
            "description": record["description"],
        },
        "id": f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{record['name']}",
        "type": "Microsoft.Authorization/roleAssignments",
        "name": record["name"],
    }


class AuthorizationProvider(ArmBase):
    # -- role definitions --------------------------------------------------------------------------------
    def _definition_body(self, scope: ids.Scope, guid: str, props: dict[str, Any]) -> dict[str, Any]:
        prefix = "" if scope.kind == "root" else scope.raw
        return {
            "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "type": "Microsoft.Authorization/roleDefinitions",
            "name": guid,
            "properties": props,
        }

    def visible_definitions(self, scope: ids.Scope) -> dict[str, dict[str, Any]]:
        """Role definitions assignable at ``scope``: built-ins and custom roles scoped at or above it."""
        chain = set(ids.chain(scope, self.app.management_groups_of()))
        found = dict(self.app.builtin_roles)
        for guid, record in self.store.all("roleDefinition").items():
            if any(ids.norm(s) in chain for s in record["properties"]["assignableScopes"]):
                found[guid] = record["properties"]
        return found

    def _authorize_definition_read(self, ctx: Context, scope: ids.Scope) -> None:
        """Reading role definitions at the root scope (``/providers/...``) needs only a signed-in caller.

        That is where azwi and the az CLI look a role up by name; the built-in definitions listed there are
        the tenant's common catalogue, readable by a principal that holds roles on one subscription only.
        """
        if scope.kind != "root":
            self.app.authorize(ctx, "Microsoft.Authorization/roleDefinitions/read", scope)

    def list_definitions(self, ctx: Context, scope_segs: list[str]) -> Response:
        scope = _scope(scope_segs)
        self._require_scope_exists(scope)
        self._authorize_definition_read(ctx, scope)
        filt = _parse_filter(ctx.request.q("$filter"))
        items = []
        for guid, props in sorted(self.visible_definitions(scope).items(), key=lambda kv: kv[1]["roleName"]):
            if "roleName" in filt and props["roleName"].lower() != str(filt["roleName"]).lower():
                continue
            if "type" in filt and props["type"].lower() != str(filt["type"]).lower():
                continue
            items.append(self._definition_body(scope, guid, props))
        return Response(200, {"value": items})

    def definition(self, ctx: Context, scope_segs: list[str], guid: str) -> Response:
        method = ctx.request.method
        scope = _scope(scope_segs)
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        if action == "read":
            self._authorize_definition_read(ctx, scope)
        else:
            self.app.authorize(ctx, f"Microsoft.Authorization/roleDefinitions/{action}", scope)
        guid = guid.lower()
        with self.store.lock:
            if method == "GET":
                props = self.visible_definitions(scope).get(guid)
                if props is None:
                    raise ApiError(
                        404,
                        "RoleDefinitionDoesNotExist",
                        f"The specified role definition with ID '{guid}' does not exist.",
                    )
                return Response(200, self._definition_body(scope, guid, props))
            if guid in self.app.builtin_roles:
                raise ApiError(403, "AuthorizationFailed", "Built-in role definitions cannot be changed.")
            existing = self.store.get("roleDefinition", guid)
            if method == "DELETE":
                if existing is None:
                    return Response(204)
                if any(r["role_guid"] == guid for r in self.store.all("roleAssignment").values()):
                    raise ApiError(
                        409,
                        "RoleDefinitionHasAssignments",
                        "There are existing role assignments referencing role; delete them first.",
                    )
                self.store.delete("roleDefinition", guid)
                return Response(200, self._definition_body(scope, guid, existing["properties"]))
            if not ids.is_guid(guid):
                raise ApiError(400, "InvalidRoleDefinitionId", f"The role definition ID '{guid}' is not a GUID.")
            props = ctx.request.json_object().get("properties") or {}
            role_name = props.get("roleName")
            if not role_name:
                raise ApiError(
                    400, "RoleDefinitionNameNullOrEmpty", "The role definition name cannot be null or empty."
                )
            assignable = props.get("assignableScopes") or []
            if not assignable:
                raise ApiError(400, "MissingAssignableScopes", "The role definition must have assignable scopes.")
            for raw in assignable:
                try:
                    target = ids.parse_scope(raw)
                except ids.InvalidScope as exc:
                    raise ApiError(400, "InvalidAssignableScope", str(exc)) from exc
                self._require_scope_exists(target)
                self.app.authorize(ctx, "Microsoft.Authorization/roleDefinitions/write", target)
            for other_guid, other in {
                **self.app.builtin_roles,
                **{g: r["properties"] for g, r in self.store.all("roleDefinition").items()},
            }.items():
                if other_guid != guid and other["roleName"].lower() == str(role_name).lower():
                    raise ApiError(
                        409,
                        "RoleDefinitionWithSameNameExists",
                        f"A role definition cannot be updated with a name that already exists: '{role_name}'.",
                    )
            now = utc_now_iso()
            new = {
                "roleName": role_name,
                "type": "CustomRole",
                "description": props.get("description") or "",
                "assignableScopes": list(assignable),
                "permissions": [
                    {
                        "actions": list(p.get("actions") or []),
                        "notActions": list(p.get("notActions") or []),
                        "dataActions": list(p.get("dataActions") or []),
                        "notDataActions": list(p.get("notDataActions") or []),
                    }
                    for p in props.get("permissions") or []
                ],
                "createdOn": existing["properties"]["createdOn"] if existing else now,
                "updatedOn": now,
                "createdBy": ctx.caller.principal_id if ctx.caller else None,
                "updatedBy": ctx.caller.principal_id if ctx.caller else None,
            }
            self.store.put("roleDefinition", guid, {"properties": new})
            return Response(201, self._definition_body(scope, guid, new))

    # -- role assignments --------------------------------------------------------------------------------
    def list_assignments(self, ctx: Context, scope_segs: list[str]) -> Response:
        scope = _scope(scope_segs)
        self._require_scope_exists(scope)
        self.app.authorize(ctx, "Microsoft.Authorization/roleAssignments/read", scope)
        filt = _parse_filter(ctx.request.q("$filter"))
        chain = set(ids.chain(scope, self.app.management_groups_of()))
        principal = filt.get("principalId") or filt.get("assignedTo")
        items = []
        for record in self.store.all("roleAssignment").values():
            at_or_above = record["scope_key"] in chain
            below = ids.is_at_or_below(record["scope_key"], scope.key) and record["scope_key"] != scope.key
            if not (at_or_above or (below and not filt.get("atScope"))):
                continue
            if principal and record["principal_id"].lower() != str(principal).lower():
                continue
            if "roleDefinitionId" in filt and not str(filt["roleDefinitionId"]).lower().endswith(record["role_guid"]):
                continue
            items.append(assignment_body(record))
        items.sort(key=lambda b: b["id"].lower())
        # ARM pages role assignments only on provider-level calls ($skipToken, per the REST reference):
        # a list at a scope comes back whole.
        return Response(200, {"value": items})

    def assignment(self, ctx: Context, scope_segs: list[str], name: str) -> Response:
        method = ctx.request.method
        scope = _scope(scope_segs)
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            raise ApiError(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        self.app.authorize(ctx, f"Microsoft.Authorization/roleAssignments/{action}", scope)
        key = ids.norm(f"{scope.raw}/providers/Microsoft.Authorization/roleAssignments/{name}")
        if method == "GET":
            record = self.store.get("roleAssignment", key)
            if record is None:
                raise ApiError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
            return Response(200, assignment_body(record))
        if method == "DELETE":
            with self.store.lock:
                record = self.store.delete("roleAssignment", key)
            return Response(200, assignment_body(record)) if record else Response(204)
        return self._create_assignment(ctx, scope, name, key)

    def _create_assignment(self, ctx: Context, scope: ids.Scope, name: str, key: str) -> Response:
        if not ids.is_guid(name):
            raise ApiError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        props = ctx.request.json_object().get("properties")
        if not isinstance(props, dict):
            raise ApiError(400, "InvalidRequestContent", "The request content must contain 'properties'.")
        role_id, principal_id = props.get("roleDefinitionId"), props.get("principalId")
        if not role_id or not principal_id:
            raise ApiError(400, "InvalidRequestContent", "Both 'roleDefinitionId' and 'principalId' are required.")
        role_guid = str(role_id).rstrip("/").rsplit("/", 1)[-1].lower()
        principal_type = props.get("principalType")
        if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
            raise ApiError(400, "InvalidPrincipalType", f"The principal type '{principal_type}' is not valid.")
        condition, condition_version = props.get("condition"), props.get("conditionVersion")
        if condition_version is not None and not condition:
            raise ApiError(400, "InvalidConditionVersion", "A condition version was given without a condition.")
        if condition and condition_version is None:
            condition_version = "2.0"
        if condition and condition_version != "2.0":
            raise ApiError(
                400, "InvalidConditionVersion", f"Condition version '{condition_version}' is not supported; use '2.0'."
            )
        self._require_scope_exists(scope)
        if not ids.is_guid(role_guid) or role_guid not in self.visible_definitions(scope):
            raise ApiError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role_guid}' does not exist.",
            )
        if condition:
            conditions.check(str(condition), self.visible_definitions(scope)[role_guid])
        now = time.time()
        with self.store.lock:
            principal = self.store.get("principal", f"principal/{principal_id}")
            young = (
                principal is not None
                and now - principal["created_at"] < self.app.settings.principal_replication_seconds
            )
            if principal is None or (young and principal_type != "ServicePrincipal"):
                raise ApiError(
                    400,
                    "PrincipalNotFound",
                    f"Principal {str(principal_id).replace('-', '')} does not exist in the directory "
                    f"{self.app.tenant_id}. Check that you have the correct principal ID. If you are "
                    "creating this principal and then immediately assigning a role, this error might be "
                    "related to a replication delay. In this case, set the role assignment principalType "
                    "property to a value, such as ServicePrincipal, User, or Group.  See "
                    "https://aka.ms/docs-principaltype",
                )
            if principal_type is not None and principal_type != principal["type"]:
                raise ApiError(
                    400,
                    "UnmatchedPrincipalType",
                    f"The PrincipalId '{principal_id}' has type '{principal['type']}' , which is different "
                    f"from specified PrincipalType '{principal_type}'.",
                )
            existing = self.store.get("roleAssignment", key)
            if existing is not None:
                if existing["principal_id"] != principal_id or existing["role_guid"] != role_guid:
                    raise ApiError(
                        409,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                updated = dict(existing)
                description = props.get("description")
                if (condition, condition_version, description) != (
                    existing["condition"],
                    existing["condition_version"],
                    existing["description"],
                ):
                    updated.update(
                        condition=condition,
                        condition_version=condition_version,
                        description=description,
                        updated_on=utc_now_iso(),
                        updated_by=ctx.caller.principal_id if ctx.caller else None,
                    )
                    self.store.put("roleAssignment", key, updated)
                return Response(201, assignment_body(updated))
            for other_key, other in self.store.all("roleAssignment").items():
                if (
                    other["scope_key"] == scope.key
                    and other["principal_id"] == principal_id
                    and other["role_guid"] == role_guid
                    and other_key != key
                ):
                    raise ApiError(
                        409,
                        "RoleAssignmentExists",
                        f"The role assignment already exists. The ID of the existing role assignment is "
                        f"{other['name'].replace('-', '')}.",
                    )
            sub = scope.subscription or self.app.subscription_id
            in_sub = sum(
                1 for r in self.store.all("roleAssignment").values() if r["subscription"].lower() == sub.lower()
            )
            if in_sub >= self.app.settings.role_assignment_limit:
                raise ApiError(
                    400,
                    "RoleAssignmentLimitExceeded",
                    f"No more role assignments can be created under the current scope. The limit of "
                    f"{self.app.settings.role_assignment_limit} role assignments per subscription has "
                    "been reached.",
                )
            record = assignment_record(
                sub,
                scope.raw,
                name.lower(),
                role_guid,
                str(principal_id),
                principal_type or principal["type"],
                condition,
                condition_version,
                props.get("description"),
                ctx.caller.principal_id if ctx.caller else "",
            )
            self.store.put("roleAssignment", key, record)
            return Response(201, assignment_body(record))

    def permissions(self, ctx: Context, scope_segs: list[str]) -> Response:
        scope = _scope(scope_segs)
        self._require_scope_exists(scope)
        assert ctx.caller is not None
        value = []
        for record in self.app.assignments_applying(scope, ctx.caller.principal_id):
            role = self.app.role_definition(record["role_guid"])
            if role:
                value.extend(copy.deepcopy(role["permissions"]))
        return Response(200, {"value": value})
