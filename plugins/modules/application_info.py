#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: application_info
short_description: Read an Entra app registration, its service principal and its federated credentials
version_added: 0.1.0
description:
  - Reads one application by O(unique_name) or O(application_id), with its service principal and its federated
    identity credentials, through Microsoft Graph. Changes nothing.
options:
  unique_name:
    description: The application's unique name. Mutually exclusive with O(application_id).
    type: str
  application_id:
    description: The application's appId (client id). Mutually exclusive with O(unique_name).
    type: str
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.INFO_ATTRIBUTES
notes:
  - Needs C(Application.Read.All), or C(Application.ReadWrite.OwnedBy) for applications the principal owns.
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: What the collection made for the orders API
  workload_identity.aks.application_info:
    unique_name: wi-aks-prod-orders-orders-api
  register: orders_app
"""

RETURN = r"""
exists:
  description: Whether the application exists.
  returned: always
  type: bool
application:
  description: The application (as M(workload_identity.aks.application) returns it), or empty.
  returned: always
  type: dict
federated_credentials:
  description: Its federated identity credentials (name, issuer, subject, audiences).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_application import (
    ApplicationApi,
    application_state,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError


def main() -> None:
    module = AzureModule(
        argument_spec={"unique_name": {"type": "str"}, "application_id": {"type": "str"}},
        mutually_exclusive=[("unique_name", "application_id")],
        required_one_of=[("unique_name", "application_id")],
        supports_check_mode=True,
    )
    p = module.params
    api = ApplicationApi(module.client("graph"))
    try:
        app = api.by_app_id(p["application_id"]) if p["application_id"] else api.by_unique_name(p["unique_name"])
        if app is None:
            module.exit_json(changed=False, exists=False, application={}, federated_credentials=[])
        principal = api.principal(str(app["appId"]))
        fics = api.list_fics(str(app["id"]), str(app.get("displayName")))
    except AzureApiError as exc:
        module.fail_error(exc)
    module.exit_json(
        changed=False, exists=True, application=application_state(app, principal), federated_credentials=fics
    )


if __name__ == "__main__":
    main()
