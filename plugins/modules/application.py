#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: application
short_description: Create, update or delete an Entra app registration (application and service principal)
version_added: 0.1.0
description:
  - Ensures an Entra application and its service principal exist, or do not, through Microsoft Graph.
  - An application this collection makes is found by its O(unique_name) (Graph's alternate key) and made with
    Graph's upsert, so it is never duplicated, whatever runs concurrently. The creator becomes its owner, so the
    Graph application permission C(Application.ReadWrite.OwnedBy) is enough.
  - An operator's existing application is named by O(application_id) (its appId) and used as it is; only its
    service principal is created if it has none.
  - Role assignments for an application name its service principal (RV(application.service_principal_id)); its
    workloads' ServiceAccounts carry its RV(application.app_id) as C(azure.workload.identity/client-id).
  - Deleting an application moves it, with its service principal and federated credentials, to Entra's deleted
    items for 30 days (restorable), unless O(purge=true).
options:
  unique_name:
    description:
      - The application's unique name (Graph's C(uniqueName)), set once when it is created.
      - Mutually exclusive with O(application_id).
    type: str
  application_id:
    description:
      - The appId (client id) of an existing application, used as it is.
      - Mutually exclusive with O(unique_name).
    type: str
  display_name:
    description: Its display name (default O(unique_name)). Not changed on an application named by O(application_id).
    type: str
  tags:
    description: Tags (strings) it must carry; other tags are left alone.
    type: list
    elements: str
  state:
    description: Whether the application should exist.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: With O(state=absent), also delete it from Entra's deleted items (not restorable).
    type: bool
    default: false
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.ATTRIBUTES
notes:
  - Needs the Microsoft Graph application permission C(Application.ReadWrite.OwnedBy) (for applications it
    creates) or C(Application.ReadWrite.All), granted with admin consent; a 403 names them.
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: An app registration for the orders API
  workload_identity.aks.application:
    unique_name: wi-aks-prod-orders-orders-api
    display_name: orders-api (aks-prod)

- name: An existing app registration, made by hand
  workload_identity.aks.application:
    application_id: "{{ hand_made_app_id }}"  # its appId (client id), as the portal shows it

- name: Remove one for good
  workload_identity.aks.application:
    unique_name: wi-aks-prod-orders-orders-api
    state: absent
    purge: true
"""

RETURN = r"""
application:
  description:
    - The application after the task (in check mode, as it would be; ids Entra assigns on creation are null).
    - Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: The application's object id.
      type: str
    app_id:
      description: Its appId (client id), for C(azure.workload.identity/client-id).
      type: str
    display_name:
      description: Its display name.
      type: str
    unique_name:
      description: Its unique name, if it has one.
      type: str
    tags:
      description: Its tags.
      type: list
      elements: str
    service_principal_id:
      description: Its service principal's object id, for role assignments.
      type: str
action:
  description: What the task did (or would do in check mode).
  returned: always
  type: str
  sample: created
notes:
  description: For example that a deleted application stays in Entra's deleted items.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_application import (
    ApplicationApi,
    ensure_application,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError


def main() -> None:
    module = AzureModule(
        argument_spec={
            "unique_name": {"type": "str"},
            "application_id": {"type": "str"},
            "display_name": {"type": "str"},
            "tags": {"type": "list", "elements": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "purge": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("unique_name", "application_id")],
        required_one_of=[("unique_name", "application_id")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        outcome = ensure_application(
            ApplicationApi(module.client("graph")),
            unique_name=p["unique_name"],
            app_id=p["application_id"],
            display_name=p["display_name"],
            tags=p["tags"],
            state=p["state"],
            check_mode=module.check_mode,
            purge=p["purge"],
        )
    except (AzureApiError, ValidationError) as exc:
        module.fail_error(exc)
    module.exit_outcome(outcome, "application", notes=outcome.notes)


if __name__ == "__main__":
    main()
