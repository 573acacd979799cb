#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: user_assigned_identity_info
short_description: Read user-assigned managed identities
version_added: 0.1.0
description:
  - Reads one identity by name, or lists the identities of a resource group or of the whole subscription.
options:
  name:
    description: The identity to read. Requires O(resource_group).
    type: str
  resource_group:
    description: The resource group to read from. Unset, the whole subscription is listed.
    type: str
  tags:
    description: Only identities carrying all of these tags (compared as strings).
    type: dict
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.INFO_ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: The orders API's identity
  workload_identity.aks.user_assigned_identity_info:
    name: id-orders-api-prod
    resource_group: rg-identities-prod
  register: found

- name: Every identity this collection made for cluster aks-prod
  workload_identity.aks.user_assigned_identity_info:
    resource_group: rg-identities-prod
    tags:
      managed-by: workload_identity.aks
      cluster: aks-prod
"""

RETURN = r"""
identities:
  description: The identities found (an empty list when the named one does not exist).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Resource id.
      type: str
    name:
      description: Name.
      type: str
    resource_group:
      description: Resource group.
      type: str
    location:
      description: Region.
      type: str
    tags:
      description: Tags.
      type: dict
    client_id:
      description: Client (application) id.
      type: str
    principal_id:
      description: Service principal object id.
      type: str
    tenant_id:
      description: Tenant id.
      type: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_identity import IdentityApi
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef


def main() -> None:
    module = AzureModule(
        argument_spec={
            "name": {"type": "str"},
            "resource_group": {"type": "str"},
            "tags": {"type": "dict"},
        },
        required_by={"name": "resource_group"},
        supports_check_mode=True,
    )
    p = module.params
    api = IdentityApi(module.client("msi"), module.retry_policy)
    try:
        if p["name"]:
            one = api.get(IdentityRef(module.connection.subscription_id or "", p["resource_group"], p["name"]))
            found = [one] if one else []
        else:
            found = api.list_all(p["resource_group"])
    except AzureApiError as exc:
        module.fail_error(exc)
    wanted = {str(k): str(v) for k, v in (p["tags"] or {}).items()}
    found = [i for i in found if all(i["tags"].get(k) == v for k, v in wanted.items())]
    module.exit_json(changed=False, identities=found)


if __name__ == "__main__":
    main()
