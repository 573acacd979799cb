#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: role_assignment
short_description: Idempotently assign (or remove) an Azure role for a principal at a scope
version_added: 0.1.0
description:
  - Ensures a principal holds a role at exactly one scope, or does not.
  - Unless O(name) is given, the assignment's name is a UUID derived from scope + role + principal,
    so repeated runs, or two operators running at once, can never create duplicates.
  - An equivalent assignment that already exists under another name (made in the portal, by az or by
    Terraform) is adopted; nothing is written and its name is returned. A C(RoleAssignmentExists)
    conflict caused by a concurrent creation is resolved by reading it back.
  - The lookup asks ARM for the principal's assignments at the scope only (one request), never for
    a whole subscription; if it fails the task fails, it is never taken as "absent".
options:
  principal_id:
    description: The object id of the user, group or service principal (for a managed identity, its principal id).
    type: str
    required: true
  principal_type:
    description:
      - The principal's type. Sent to ARM so a principal created moments ago is not refused
        with C(PrincipalNotFound) while the directory replicates.
    type: str
    choices: [ServicePrincipal, User, Group, ForeignGroup, Device]
    default: ServicePrincipal
  role:
    description:
      - A role name (built-in or custom, resolved at O(scope); it must match exactly one definition),
        a role definition GUID, or a full role definition id.
    type: str
    required: true
  scope:
    description:
      - Where the role applies. A management group, subscription, resource group or resource id.
        Compared case-insensitively, without a trailing slash.
    type: str
    required: true
  name:
    description:
      - The assignment's name (a GUID). Unset, it is derived from scope, role and principal.
    type: str
  condition:
    description: An ABAC condition restricting the assignment.
    type: str
  condition_version:
    description: The condition language version; C(2.0) when a condition is given.
    type: str
  description:
    description: Why the assignment exists.
    type: str
  state:
    description: Whether the assignment should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Orders API may read and write blobs in its container, nothing else
  workload_identity.aks.role_assignment:
    principal_id: "{{ identity.identity.principal_id }}"
    role: Storage Blob Data Contributor
    scope: "{{ orders_account_id }}/blobServices/default/containers/orders"
"""

RETURN = r"""
assignment:
  description: The assignment after the task (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    id:
      description: Resource id of the assignment.
      type: str
    name:
      description: Its name (a GUID); for an adopted assignment, the existing name.
      type: str
    scope:
      description: Its scope.
      type: str
    role:
      description: The role's name.
      type: str
      sample: Storage Blob Data Contributor
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
action:
  description: What the task did (or would do in check mode).
  returned: always
  type: str
  sample: created
notes:
  description: For example that an existing assignment under another name was adopted.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._abac import condition_problem
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import (
    PRINCIPAL_TYPES,
    RoleAssignmentApi,
    ensure_role_assignment,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import InvalidScope, is_guid, parse_scope


def main() -> None:
    module = AzureModule(
        argument_spec={
            "principal_id": {"type": "str", "required": True},
            "principal_type": {"type": "str", "default": "ServicePrincipal", "choices": list(PRINCIPAL_TYPES)},
            "role": {"type": "str", "required": True},
            "scope": {"type": "str", "required": True},
            "name": {"type": "str"},
            "condition": {"type": "str"},
            "condition_version": {"type": "str"},
            "description": {"type": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    problems = []
    try:
        parse_scope(p["scope"])
    except InvalidScope as exc:
        problems.append(f"scope: {exc}")
    if not is_guid(p["principal_id"]):
        problems.append(f"principal_id: '{p['principal_id']}' is not an object id (GUID)")
    if p["name"] and not is_guid(p["name"]):
        problems.append(f"name: '{p['name']}' is not a GUID")
    if p["condition_version"] and not p["condition"]:
        problems.append("condition_version: given without a condition")
    syntax = condition_problem(p["condition"]) if p["condition"] is not None else None
    if syntax:
        problems.append(f"condition: {syntax}")
    if problems:
        module.fail_json(msg="; ".join(problems), problems=problems)
    try:
        api = RoleAssignmentApi(module.client("authorization"), module.retry_policy)
        outcome = ensure_role_assignment(
            api,
            scope=p["scope"],
            role=p["role"],
            principal_id=p["principal_id"],
            principal_type=p["principal_type"],
            state=p["state"],
            check_mode=module.check_mode,
            name=p["name"],
            condition=p["condition"],
            condition_version=p["condition_version"],
            description=p["description"],
        )
    except (AzureApiError, ValidationError) as exc:
        module.fail_error(exc)
    module.exit_outcome(outcome, "assignment", notes=outcome.notes)


if __name__ == "__main__":
    main()
