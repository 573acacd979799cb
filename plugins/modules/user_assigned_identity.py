#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: user_assigned_identity
short_description: Create, update or delete a user-assigned managed identity
version_added: 0.1.0
description:
  - Ensures a user-assigned managed identity exists with the given tags, or does not exist.
  - Returns the identity's client id and principal id, which federated credentials, role assignments and
    Kubernetes service-account annotations need.
  - Deleting an identity does not delete its role assignments (Azure keeps them); remove those first with
    M(workload_identity.aks.role_assignment).
options:
  name:
    description:
      - The identity's name (3 to 128 letters, digits, hyphens and underscores, starting with a letter or digit).
    type: str
    required: true
  resource_group:
    description: The resource group that holds the identity.
    type: str
    required: true
  location:
    description:
      - The Azure region, required to create the identity. An existing identity cannot move.
    type: str
  tags:
    description:
      - Tags to set. Unset, the identity's tags are left alone.
      - An existing identity's tags are changed by name, through ARM's Tags API (C(Merge) of those added or changed,
        C(Delete) of those removed), so that tags another writer sets at the same moment stay. That needs
        C(Microsoft.Resources/tags/write) (I(Tag Contributor)), which I(Managed Identity Contributor) does not grant;
        refused it, the module writes the identity's tags whole, as one PUT, and warns.
    type: dict
  purge_tags:
    description:
      - Remove tags not listed in O(tags). Without O(tags) nothing is removed.
    type: bool
    default: true
  state:
    description: Whether the identity should exist.
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
- name: An identity for the orders API
  workload_identity.aks.user_assigned_identity:
    name: id-orders-api-prod
    resource_group: rg-identities-prod
    location: westeurope
    tags:
      app: orders-api

- name: Remove it
  workload_identity.aks.user_assigned_identity:
    name: id-orders-api-prod
    resource_group: rg-identities-prod
    state: absent
"""

RETURN = r"""
identity:
  description:
    - The identity after the task (in check mode, as it would be; ids Azure assigns on creation are null).
    - Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: The identity's resource id.
      type: str
      sample: /subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Managed...
    name:
      description: The identity's name.
      type: str
      sample: id-orders
    resource_group:
      description: Its resource group.
      type: str
      sample: rg-identities-prod
    location:
      description: Its region, as Azure writes it.
      type: str
      sample: westeurope
    tags:
      description: Its tags.
      type: dict
      sample: {app: orders-api}
    client_id:
      description: The client (application) id, for C(azure.workload.identity/client-id).
      type: str
      sample: 6d2b7244-d1d6-44d7-a6ff-51778f314a7c
    principal_id:
      description: The service principal's object id, for role assignments.
      type: str
      sample: 26fc24dc-33de-4c60-8ae9-0ac87fdbe06c
    tenant_id:
      description: The Entra tenant.
      type: str
      sample: 72f988bf-86f1-41af-91ab-2d7cd011db47
action:
  description: What the task did (or would do in check mode).
  returned: always
  type: str
  sample: created
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_identity import IdentityApi, ensure_identity
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef
from ansible_collections.workload_identity.aks.plugins.module_utils._limits import IDENTITY_NAME


def main() -> None:
    module = AzureModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "resource_group": {"type": "str", "required": True},
            "location": {"type": "str"},
            "tags": {"type": "dict"},
            "purge_tags": {"type": "bool", "default": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not IDENTITY_NAME.match(p["name"]):
        module.fail_json(
            msg=f"name: '{p['name']}' is not a valid identity name (3-128 letters, digits, '-' and '_', "
            "starting with a letter or digit)"
        )
    try:
        ref = IdentityRef(module.connection.subscription_id or "", p["resource_group"], p["name"])
        api = IdentityApi(module.client("msi"), module.retry_policy)
        tags = {str(k): str(v) for k, v in p["tags"].items()} if p["tags"] is not None else None
        outcome = ensure_identity(
            api,
            ref,
            state=p["state"],
            location=p["location"],
            tags=tags,
            purge_tags=p["purge_tags"],
            check_mode=module.check_mode,
        )
    except (AzureApiError, ValidationError) as exc:
        module.fail_error(exc)
    warning = api.whole_tags_warning(f"identity {ref.name}", "a tag another writer set at the same moment")
    if warning:
        module.warn(warning)
    module.exit_outcome(outcome, "identity")


if __name__ == "__main__":
    main()
