#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_oidc_issuer
short_description: Enable an AKS cluster's OIDC issuer (and optionally the managed workload-identity add-on)
version_added: 0.1.0
description:
  - Ensures the OIDC issuer of an existing AKS cluster is enabled and returns its URL, which federated
    identity credentials must trust exactly (it ends with C(/)).
  - Optionally enables or disables AKS's managed workload-identity add-on
    (C(securityProfile.workloadIdentity)), which runs the mutating webhook for you.
  - Touches nothing else of the cluster. The cluster is read and written back as AKS returned it,
    with only those fields changed, and the long-running update is awaited.
  - Enabling the issuer on an existing cluster restarts its API server. AKS cannot disable an
    enabled issuer, so O(oidc_issuer=false) on such a cluster fails with that explanation.
options:
  name:
    description: The AKS cluster's name.
    type: str
    required: true
  resource_group:
    description: The cluster's resource group.
    type: str
    required: true
  oidc_issuer:
    description: Whether the OIDC issuer should be enabled.
    type: bool
    default: true
  workload_identity:
    description:
      - Whether AKS's managed workload-identity add-on should be enabled. Unset, it is left as it is.
      - Do not also install the self-managed webhook chart on a cluster with the add-on (both would mutate pods).
    type: bool
  polling_interval:
    description: Seconds between polls of the long-running update when AKS does not say (Retry-After).
    type: float
    default: 5
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Enable the issuer; keep its URL for the federated credentials
  workload_identity.aks.cluster_oidc_issuer:
    name: aks-prod
    resource_group: rg-aks-prod
  register: issuer

- name: Enable the issuer and the managed workload-identity add-on
  workload_identity.aks.cluster_oidc_issuer:
    name: aks-dev
    resource_group: rg-aks-dev
    workload_identity: true
"""

RETURN = r"""
issuer_url:
  description: The cluster's OIDC issuer URL (null in check mode while the issuer is not yet enabled).
  returned: always
  type: str
  sample: https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/4f3a2c1e-0d9b-4a8e-9f17-2c6b5e8d7a90/
cluster:
  description: The fields of the cluster this module manages, after the task.
  returned: always
  type: dict
  contains:
    id:
      description: The cluster's resource id.
      type: str
    name:
      description: The cluster's name.
      type: str
    oidc_issuer_enabled:
      description: Whether the OIDC issuer is enabled.
      type: bool
    issuer_url:
      description: The issuer URL.
      type: str
    workload_identity_enabled:
      description: Whether the managed workload-identity add-on is enabled.
      type: bool
    provisioning_state:
      description: AKS's provisioning state.
      type: str
    kubernetes_version:
      description: The cluster's Kubernetes version.
      type: str
action:
  description: What the task did (or would do in check mode).
  returned: always
  type: str
  sample: updated
exists:
  description:
    - V(false) when ARM says the cluster does not exist; the task fails then. The teardown role reads it to skip the
      Kubernetes side of a cluster deleted without a teardown, and release its Azure side by its marks.
  returned: when the cluster does not exist
  type: bool
  sample: false
  version_added: 0.2.0
notes:
  description:
    - What the update involves beyond the issuer, for the operator. A cluster whose last operation failed
      (C(provisioningState) V(Failed)) records what that operation was asked for, not what it did, so the update is
      sent again to reconcile it (as C(az aks update) does), and this says so.
  returned: always
  type: list
  elements: str
  sample: ["cluster aks-dev is Failed (its last operation failed): the update is sent again to reconcile it"]
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_cluster import (
    ClusterApi,
    ClusterNotFound,
    ensure_issuer,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError


def main() -> None:
    module = AzureModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "resource_group": {"type": "str", "required": True},
            "oidc_issuer": {"type": "bool", "default": True},
            "workload_identity": {"type": "bool"},
            "polling_interval": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        api = ClusterApi(
            # Its two requests ride the identities' SDK client (the container service SDK is not imported for them).
            module.client("msi"),
            module.connection.subscription_id or "",
            module.retry_policy,
            p["polling_interval"],
        )
        outcome = ensure_issuer(
            api,
            p["resource_group"],
            p["name"],
            oidc_issuer=p["oidc_issuer"],
            workload_identity=p["workload_identity"],
            check_mode=module.check_mode,
        )
    except ClusterNotFound as exc:
        module.fail_error(exc, exists=False)
    except (AzureApiError, ValidationError) as exc:
        module.fail_error(exc)
    if not module.check_mode:  # a real run's notes (a failed cluster reconciled) are worth a warning
        for note in outcome.notes:
            module.warn(note)
    module.exit_outcome(outcome, "cluster", issuer_url=(outcome.after or {}).get("issuer_url"), notes=outcome.notes)


if __name__ == "__main__":
    main()
