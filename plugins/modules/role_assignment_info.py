#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: role_assignment_info
short_description: Read role assignments at a scope
version_added: 0.1.0
description:
  - Lists the role assignments that apply at a scope (made there or inherited from above it), optionally
    only those of one principal and of one role. One request to ARM, scoped; never a whole subscription.
options:
  scope:
    description: A management group, subscription, resource group or resource id.
    type: str
    required: true
  principal_id:
    description: Only this principal's assignments.
    type: str
  role:
    description: Only this role (a name, GUID or role definition id).
    type: str
  exact_scope:
    description: Only assignments made at O(scope) itself, not those inherited from above it.
    type: bool
    default: false
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.INFO_ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: What the orders identity holds on its storage account
  workload_identity.aks.role_assignment_info:
    scope: "{{ orders_account_id }}"
    principal_id: "{{ identity.identity.principal_id }}"
"""

RETURN = r"""
assignments:
  description: The assignments found.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Resource id of the assignment.
      type: str
    name:
      description: Its name.
      type: str
    scope:
      description: Where it was made.
      type: str
    role:
      description: The role's name, when O(role) was given.
      type: str
    role_definition_id:
      description: The role definition id.
      type: str
    role_definition_guid:
      description: The role definition's GUID.
      type: str
    principal_id:
      description: The principal.
      type: str
    principal_type:
      description: The principal's type.
      type: str
    condition:
      description: ABAC condition, if any.
      type: str
    condition_version:
      description: Condition version, if any.
      type: str
    description:
      description: Description, if any.
      type: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import (
    RoleAssignmentApi,
    assignment_state,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import (
    InvalidScope,
    is_guid,
    parse_scope,
    same_scope,
)


def main() -> None:
    module = AzureModule(
        argument_spec={
            "scope": {"type": "str", "required": True},
            "principal_id": {"type": "str"},
            "role": {"type": "str"},
            "exact_scope": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        scope = parse_scope(p["scope"]).path
    except InvalidScope as exc:
        module.fail_json(msg=f"scope: {exc}")
        return
    if p["principal_id"] and not is_guid(p["principal_id"]):
        module.fail_json(msg=f"principal_id: '{p['principal_id']}' is not an object id (GUID)")
    api = RoleAssignmentApi(module.client("authorization"), module.retry_policy)
    try:
        role = api.resolve_role(scope, p["role"]) if p["role"] else None
        if p["principal_id"]:
            models = api.at_scope_for(scope, p["principal_id"])
        else:
            models = api.list_at(scope, filter="atScope()")
    except (AzureApiError, ValidationError) as exc:
        module.fail_error(exc)
    found = [assignment_state(m, role.name if role else None) for m in models]
    if role:
        found = [a for a in found if a["role_definition_guid"] == role.guid]
    if p["exact_scope"]:
        found = [a for a in found if same_scope(a["scope"], scope)]
    module.exit_json(changed=False, assignments=found)


if __name__ == "__main__":
    main()
