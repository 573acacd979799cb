#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: federated_credential_info
short_description: Read the federated identity credentials of a user-assigned identity
version_added: 0.1.0
description:
  - Lists the federated credentials of one identity, or reads one of them by name.
options:
  identity:
    description: The identity's name (with O(resource_group)) or its full resource id.
    type: str
    required: true
  resource_group:
    description: The identity's resource group, when O(identity) is a name.
    type: str
  name:
    description: Only this credential.
    type: str
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.INFO_ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Which service accounts may sign in as the orders identity
  workload_identity.aks.federated_credential_info:
    identity: id-orders-api-prod
    resource_group: rg-identities-prod
  register: trusted
"""

RETURN = r"""
federated_credentials:
  description: The credentials found.
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
    identity:
      description: The identity's name.
      type: str
    issuer:
      description: Trusted issuer.
      type: str
    subject:
      description: Trusted subject.
      type: str
    audiences:
      description: Accepted audiences.
      type: list
      elements: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_federated_credential import (
    FederatedCredentialApi,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError


def main() -> None:
    module = AzureModule(
        argument_spec={
            "identity": {"type": "str", "required": True},
            "resource_group": {"type": "str"},
            "name": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    ref = module.identity_ref(p["identity"], p["resource_group"])
    api = FederatedCredentialApi(module.client("msi"), module.retry_policy)
    try:
        if p["name"]:
            one = api.get(ref, p["name"])
            found = [one] if one else []
        else:
            found = api.list_all(ref)
    except AzureApiError as exc:
        module.fail_error(exc)
    module.exit_json(changed=False, federated_credentials=found)


if __name__ == "__main__":
    main()
