#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: service_accounts_info
short_description: Read what a cluster already binds to Azure identities, workload identity and AAD Pod Identity
version_added: 0.1.0
description:
  - Lists every ServiceAccount annotated with C(azure.workload.identity/client-id), whoever annotated it, with the
    pod controllers (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs) whose pod templates run as it.
  - Lists AAD Pod Identity's C(AzureIdentityBinding) objects with the C(AzureIdentity) each names (its type,
    C(resourceID) and C(clientID)) and the controllers whose pod templates carry C(aadpodidbinding) with the
    binding's selector. A cluster without AAD Pod Identity's CRDs simply has none.
  - Read only, with a fixed number of requests whatever the cluster holds (one list per kind of object).
  - Its result is what M(workload_identity.aks.workload_identities_info) turns into inventory; C(discover.yml)
    chains the two.
options:
  cluster_name:
    description: The cluster's name, as the inventory names it; tells this collection's own bindings apart.
    type: str
    required: true
extends_documentation_fragment:
  - workload_identity.aks.kube
  - workload_identity.aks.azure.INFO_ATTRIBUTES
requirements:
  - python >= 3.10
  - kubernetes >= 24.2 (the Python client)
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: What aks-prod binds today
  workload_identity.aks.service_accounts_info:
    cluster_name: aks-prod
    context: aks-prod
  register: bound
"""

RETURN = r"""
service_accounts:
  description: Each ServiceAccount bound to a client id.
  returned: always
  type: list
  elements: dict
  sample: [{"namespace": "payments", "service_account": "payments-sa", "client_id": "6f1c...",
            "tenant_id": null, "token_expiration": null, "workload": null, "cluster": null,
            "controllers": [{"namespace": "payments", "kind": "Deployment", "name": "payments",
                             "service_account": "payments-sa", "use_label": true}]}]
  contains:
    workload:
      description: The workload this collection bound it for (its C(workload-identity.aks/workload) label), if any.
      type: str
    cluster:
      description: The cluster this collection bound it on (its C(workload-identity.aks/cluster) label), if any.
      type: str
    controllers:
      description: The controllers whose pod templates run as it; C(use_label) says whether the template already
        carries C(azure.workload.identity/use=true).
      type: list
      elements: dict
pod_identity:
  description: Each AAD Pod Identity binding, with its identity and the controllers its selector matches.
  returned: always
  type: list
  elements: dict
  sample: [{"namespace": "legacy", "name": "reports-binding", "selector": "reports", "identity": "reports-id",
            "identity_type": "user_assigned", "resource_id": "/subscriptions/.../reports-id", "client_id": "0b5e...",
            "controllers": []}]
  contains:
    identity_type:
      description: C(user_assigned), C(service_principal) or C(service_principal_certificate); null when the
        C(AzureIdentity) it names does not exist.
      type: str
unbound_pod_identity_controllers:
  description: Controllers labelled C(aadpodidbinding) with a selector that no binding has.
  returned: always
  type: list
  elements: dict
requests:
  description: How many requests the API server answered.
  returned: always
  type: int
"""

from importlib.util import find_spec

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import aks_kube_module
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import KubeApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_discovery import discover

HAS_KUBERNETES = find_spec("kubernetes") is not None


def main() -> None:
    module = aks_kube_module(
        argument_spec={"cluster_name": {"type": "str", "required": True}}, supports_check_mode=True
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    cluster = module.params["cluster_name"]
    try:
        estate = discover(module.client(f"cluster {cluster}"))
    except KubeApiError as exc:
        module.fail_error(exc, f"cluster {cluster}")
    module.exit_json(changed=False, **estate)


if __name__ == "__main__":
    main()
