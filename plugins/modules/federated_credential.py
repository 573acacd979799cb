#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: federated_credential
short_description: Trust a Kubernetes service account (or any OIDC subject) from an identity or an application
version_added: 0.1.0
description:
  - Ensures a federated identity credential (FIC) on a user-assigned managed identity (through ARM) or on an Entra
    application (through Microsoft Graph) trusts exactly one issuer + subject + audience, or is absent. Updates
    in place when the issuer or subject changes.
  - One engine for both parents, which checks everything before writing, naming the field that is wrong
    (name pattern, field lengths, a single audience, at most 20 FICs per identity or application, issuer +
    subject unique).
  - Writes that collide with another write on the same identity (409) are retried with backoff.
options:
  name:
    description: The credential's name (3 to 120 letters, digits, C(-) and C(_), starting with a letter or digit).
    type: str
    required: true
  identity:
    description:
      - The identity's name (with O(resource_group)) or its full resource id.
      - Exactly one of O(identity) and O(application) is required.
    type: str
  application:
    description:
      - The appId (client id) of the application whose credential this is (see M(workload_identity.aks.application)).
      - Exactly one of O(identity) and O(application) is required.
    type: str
  resource_group:
    description: The identity's resource group, when O(identity) is a name.
    type: str
  issuer:
    description:
      - The OIDC issuer URL, exactly as the token's C(iss) claim says it (Entra compares it as a string;
        an AKS issuer ends with C(/)). Required with O(state=present).
    type: str
  subject:
    description:
      - The token's subject; for a Kubernetes service account C(system:serviceaccount:<namespace>:<name>).
        Required with O(state=present).
    type: str
  audiences:
    description:
      - The accepted audience. Azure supports exactly one. Compared without regard to order.
    type: list
    elements: str
    default: [api://AzureADTokenExchange]
  state:
    description: Whether the credential should exist.
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
- name: Let orders/orders-api on aks-prod sign in as the orders identity
  workload_identity.aks.federated_credential:
    name: aks-prod-orders-orders-api
    identity: id-orders-api-prod
    resource_group: rg-identities-prod
    issuer: "{{ oidc_issuer_url }}"
    subject: system:serviceaccount:orders:orders-api

- name: The same trust on an app registration
  workload_identity.aks.federated_credential:
    name: aks-prod-orders-orders-api
    application: "{{ orders_app.application.app_id }}"
    issuer: "{{ oidc_issuer_url }}"
    subject: system:serviceaccount:orders:orders-api
"""

RETURN = r"""
federated_credential:
  description: The credential after the task (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
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
action:
  description: What the task did (or would do in check mode).
  returned: always
  type: str
  sample: created
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_application import (
    ApplicationApi,
    ApplicationFicApi,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_federated_credential import (
    FederatedCredentialApi,
    IdentityFicApi,
    ensure_federated_credential,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._limits import DEFAULT_AUDIENCE


def main() -> None:
    module = AzureModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "identity": {"type": "str"},
            "application": {"type": "str"},
            "resource_group": {"type": "str"},
            "issuer": {"type": "str"},
            "subject": {"type": "str"},
            "audiences": {"type": "list", "elements": "str", "default": [DEFAULT_AUDIENCE]},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        required_if=[("state", "present", ("issuer", "subject"))],
        mutually_exclusive=[("identity", "application")],
        required_one_of=[("identity", "application")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        parent: IdentityFicApi | ApplicationFicApi
        if p["application"]:
            api = ApplicationApi(module.client("graph"))
            app = api.by_app_id(p["application"])
            if app is None:
                raise ValidationError([f"application: no application with appId {p['application']}"])
            parent = ApplicationFicApi(api, str(app["id"]), str(app.get("displayName")))
        else:
            ref = module.identity_ref(p["identity"], p["resource_group"])
            parent = IdentityFicApi(FederatedCredentialApi(module.client("msi"), module.retry_policy), ref)
        outcome = ensure_federated_credential(
            parent,
            p["name"],
            state=p["state"],
            issuer=p["issuer"],
            subject=p["subject"],
            audiences=p["audiences"],
            check_mode=module.check_mode,
        )
    except (AzureApiError, ValidationError) as exc:
        module.fail_error(exc)
    module.exit_outcome(outcome, "federated_credential")


if __name__ == "__main__":
    main()
