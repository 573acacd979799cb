#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: workload_identities_info
short_description: The workload list that declares what a cluster and its subscription already have
version_added: 0.1.0
description:
  - Takes what M(workload_identity.aks.service_accounts_info) read from a cluster and finds the Azure object behind
    each client id, then answers the C(workload_identity_workloads) entries that
    M(workload_identity.aks.workload_identities) and M(workload_identity.aks.service_accounts) adopt as they are.
  - A client id is looked up among the user-assigned identities of O(identity_resource_groups) (or of the whole
    subscription), then among app registrations by appId (Microsoft Graph).
  - Each workload declares its identity (C(identity_name) and C(identity_resource_group), or C(identity_type)
    application with C(application_id) for an app registration made elsewhere), the subjects its identity trusts
    from O(issuer_url) (the account's own first, the others as C(extra_subjects)), every role assignment its
    principal holds (by role name when the name is unambiguous, else by GUID), its entries on key vaults with access
    policies, its Cosmos DB SQL role assignments, its database role on each PostgreSQL flexible server this run
    administers (its memberships, in the server's one application database), its token expiration and the
    controllers that run as it.
  - Each AAD Pod Identity binding becomes a migration proposal; the same identity (by C(resourceID), or the
    service principal's appId), a ServiceAccount (the one its controllers already share, else one named after the
    binding), and the controllers its selector matches; its notes say how to run both side by side.
  - What cannot be declared (a client id that matches nothing, an identity in another subscription, an identity
    this collection made for the cluster that nothing is bound to any more) is listed in RV(findings).
  - Read only.
options:
  cluster_name:
    description: The cluster's name, as the inventory names it.
    type: str
    required: true
  issuer_url:
    description: The cluster's OIDC issuer URL. Unset (issuer off), no credential is found trusting it.
    type: str
  cluster_resource_group:
    description:
      - The cluster's resource group. With it, what this collection made for another cluster of the same name (in
        another resource group) is told apart from this cluster's.
    type: str
  identity_resource_groups:
    description: Where to look for identities. Empty, the whole subscription is listed (one request).
    type: list
    elements: str
    default: []
  service_accounts:
    description: The RV(workload_identity.aks.service_accounts_info#module:service_accounts) result.
    type: list
    elements: dict
    default: []
  pod_identity:
    description: The RV(workload_identity.aks.service_accounts_info#module:pod_identity) result.
    type: list
    elements: dict
    default: []
  unbound_pod_identity_controllers:
    description: The RV(workload_identity.aks.service_accounts_info#module:unbound_pod_identity_controllers) result.
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.INFO_ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: What aks-prod binds today
  workload_identity.aks.service_accounts_info:
    cluster_name: aks-prod
    context: aks-prod
  register: bound

- name: The inventory that declares it
  workload_identity.aks.workload_identities_info:
    cluster_name: aks-prod
    issuer_url: "{{ issuer.issuer_url }}"
    identity_resource_groups: [rg-identities-prod]
    service_accounts: "{{ bound.service_accounts }}"
    pod_identity: "{{ bound.pod_identity }}"
  register: discovered
"""

RETURN = r"""
workloads:
  description: The workload declarations, as C(workload_identity_workloads) holds them.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "payments-sa", "namespace": "payments", "service_account": "payments-sa",
            "identity_name": "payments-identity", "identity_resource_group": "rg-payments",
            "roles": [{"role": "Storage Blob Data Reader", "scope": "/subscriptions/.../stpayments"}],
            "controllers": [{"kind": "Deployment", "name": "payments"}]}]
notes:
  description: Per workload name, what a reader of the inventory should know (adopted, a migration, a credential
    that the first run will create).
  returned: always
  type: dict
findings:
  description: What was found but not declared, and why.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_application import ApplicationApi
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_cosmos import CosmosApi
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_discovery import Discovery
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_federated_credential import (
    FederatedCredentialApi,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_identity import IdentityApi
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_key_vault import KeyVaultApi
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_postgres import DatabaseClient, PostgresApi
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import RoleAssignmentApi
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, DatabaseError
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import cluster_scope


def main() -> None:
    module = AzureModule(
        argument_spec={
            "cluster_name": {"type": "str", "required": True},
            "issuer_url": {"type": "str"},
            "cluster_resource_group": {"type": "str"},
            "identity_resource_groups": {"type": "list", "elements": "str", "default": []},
            "service_accounts": {"type": "list", "elements": "dict", "default": []},
            "pod_identity": {"type": "list", "elements": "dict", "default": []},
            "unbound_pod_identity_controllers": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    subscription = module.connection.subscription_id or ""
    policy = module.retry_policy
    apis = AzureApis(
        IdentityApi(module.client("msi"), policy),
        FederatedCredentialApi(module.client("msi"), policy),
        RoleAssignmentApi(module.client("authorization"), policy),
        subscription,
        vaults=KeyVaultApi(module.client("authorization"), policy),
        cosmos=CosmosApi(module.client("authorization"), policy),
        postgres=PostgresApi(module.client("authorization"), policy),
        databases=DatabaseClient(module.connection.credential()),
    )
    discovery = Discovery(
        apis,
        ApplicationApi(module.client("graph")),
        p["cluster_name"],
        p["issuer_url"],
        p["identity_resource_groups"],
        cluster_scope(subscription, p["cluster_resource_group"]),
    )
    estate = {
        "service_accounts": p["service_accounts"],
        "pod_identity": p["pod_identity"],
        "unbound_pod_identity_controllers": p["unbound_pod_identity_controllers"],
        "requests": 0,
    }
    try:
        found = discovery.run(estate)  # type: ignore[arg-type]
    except (AzureApiError, DatabaseError) as exc:
        module.fail_error(exc)
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
