#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: service_accounts
short_description: Bind every workload of a cluster to its identity on the Kubernetes side, in one task
version_added: 0.1.0
description:
  - For each workload, ensures its namespace, its ServiceAccount annotated with C(azure.workload.identity/client-id)
    and C(azure.workload.identity/tenant-id) (and C(azure.workload.identity/service-account-token-expiration) when
    C(token_expiration) is set), and binds the pod controllers it lists (Deployments, StatefulSets, DaemonSets, Jobs,
    CronJobs) so their pod templates use that ServiceAccount and carry the label
    C(azure.workload.identity/use=true).
  - Reads everything first and plans every change before the first write, so a listed controller that does not
    exist fails the task before anything is changed (or, with O(missing_workloads=warn), is skipped with a warning).
  - Writes JSON merge patches of only the fields it owns; nothing else in a pod template is touched. Check mode
    applies the same patches to what it read, so its plan is exactly what a real run does.
  - What it touches is labelled C(workload-identity.aks/cluster) and C(workload-identity.aks/workload); what it
    creates is also labelled C(app.kubernetes.io/managed-by=workload_identity.aks). A bound controller remembers its
    previous service account in the annotation C(workload-identity.aks/previous-service-account).
  - An object that existed before is adopted. The first time the module touches it, it records the values that
    the fields it sets already had (client id, tenant id, token expiration, the pod template's
    C(azure.workload.identity/use) label) in the annotation C(workload-identity.aks/adopted). A controller that
    was already bound by hand only gets these marks; its pod template, and so its pods, stay as they are.
  - With O(prune=true), service accounts and controllers it bound for workloads no longer listed are released.
    Controllers get their previous service account back. ServiceAccounts it created are deleted. Adopted
    ServiceAccounts and pod templates get back the values recorded when they were adopted, and lose the
    rest of what it added.
  - With O(state=absent), the same release for the listed workloads (or, with O(prune=true), for everything it did
    on the cluster), controllers first; then namespaces it created are deleted when nothing else is left in them.
    "Nothing else" is checked across every namespaced kind the API server serves, found by discovery (custom
    resources and aggregated APIs included). Controllers are only unbound, never deleted, so one keeps its namespace;
    a kind the credentials may not list keeps the namespace too (the result's note says which).
  - A namespace being deleted (Terminating) that a listed workload is in is a problem found by the plan, before any
    change.
  - A Job's pod template is immutable; a Job that is not already bound fails the task with what to do instead.
options:
  cluster_name:
    description: The cluster's name, as in M(workload_identity.aks.workload_identities); used in the labels.
    type: str
    required: true
  tenant_id:
    description:
      - The tenant of the identities, for the C(azure.workload.identity/tenant-id) annotation.
      - Defaults to the C(tenant_id) of the identities in O(identities).
    type: str
  identities:
    description:
      - The C(workloads) result of M(workload_identity.aks.workload_identities) for the same list, from which each
        workload's identity client id is taken.
      - In check mode, before an identity exists, its client id is shown as a placeholder.
    type: list
    elements: dict
    default: []
  identities_from:
    description:
      - The names of registered results of M(workload_identity.aks.workload_identities), read on the controller in
        place of O(identities) (which it excludes); each workload's identity is taken from the first result that
        lists it, so a converge's result, then its plan's, covers the workloads the converge reused from its plan.
      - A result without workloads (a skipped task, or a plan that found problems) gives none.
      - Read as registered, the rows are not copied through Ansible's templating, which costs about 0.2 s of CPU at
        200 workloads.
    type: list
    elements: str
    version_added: 0.2.0
  state:
    description: V(present) binds the listed workloads; V(absent) releases them.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - With O(state=present), release what this module bound for workloads no longer listed.
      - With O(state=absent), release everything this module did on the cluster, whatever is listed.
    type: bool
    default: false
  prune_max:
    description:
      - With O(prune=true), a plan that releases more than this many workloads (their ServiceAccounts and
        controllers) and namespaces is refused before any change, every object listed, unless O(prune_confirm)
        names the cluster.
      - So is a plan that releases everything this collection bound on the cluster (O(prune=true) with no workload
        listed, or with O(state=absent)), whatever its size.
    type: int
    default: 5
  prune_confirm:
    description: The cluster's name, to confirm a release O(prune_max) would refuse (for this run only).
    type: str
  missing_workloads:
    description: What to do when a listed pod controller does not exist.
    type: str
    choices: [fail, warn]
    default: fail
  rebind:
    description:
      - What to do with a ServiceAccount an operator bound by hand to another client id, for a workload that does not
        say C(rebind) itself.
      - V(refuse) stops the plan before any change, naming the client id found and how to adopt or move it.
      - V(warn) moves it to the workload's identity with a warning naming the client id it had (recorded, and put back
        by teardown); its pods sign in as the new identity once restarted.
    type: str
    choices: [refuse, warn]
    default: refuse
  read_release:
    description:
      - Also read a Helm release from Helm's own storage in its namespace (Secrets, or ConfigMaps with
        C(HELM_DRIVER=configmap)), in one request, and return it as RV(release), shaped as
        M(kubernetes.core.helm_info)'s C(status) (its latest revision, when deployed or failed, as C(helm list) shows
        it; without the manifest, notes and hooks). No C(helm) binary is run.
      - The roles' plan reads the webhook chart's release this way, for the C(webhook) role to reuse.
    type: dict
    suboptions:
      name:
        description: The release's name.
        type: str
        required: true
      namespace:
        description: The release's namespace.
        type: str
        required: true
extends_documentation_fragment:
  - workload_identity.aks.workloads
  - workload_identity.aks.kube
  - workload_identity.aks.azure.ATTRIBUTES
requirements:
  - python >= 3.10
  - kubernetes >= 24.2 (the Python client)
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Every workload of aks-prod, on the Azure side
  workload_identity.aks.workload_identities:
    cluster_name: aks-prod
    issuer_url: "{{ issuer.issuer_url }}"
    location: westeurope
    identity_resource_group: rg-identities-prod
    workloads: "{{ workload_identity_workloads }}"
  register: azure_side

- name: And on the Kubernetes side
  workload_identity.aks.service_accounts:
    cluster_name: aks-prod
    context: aks-prod
    workloads: "{{ workload_identity_workloads }}"
    identities: "{{ azure_side.workloads }}"
    prune: true

- name: Release everything bound on aks-old (controllers get their previous service account back)
  workload_identity.aks.service_accounts:
    cluster_name: aks-old
    context: aks-old
    workloads: []
    state: absent
    prune: true
    prune_confirm: aks-old  # releasing everything is refused unless the cluster is named here
"""

RETURN = r"""
namespaces:
  description: Each namespace and what was done to it (C(created), C(unchanged), C(deleted), C(kept)); one kept has a
    C(note) saying what still holds it.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "Namespace", "name": "orders", "action": "unchanged", "namespace": null}]
service_accounts:
  description: Each service account, its workload and what was done (C(created), C(updated), C(adopted) for an
    account that existed before and is now marked, with the values it had recorded, C(unchanged), C(deleted),
    C(released) for an adopted one given back as it was).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "ServiceAccount", "namespace": "orders", "name": "orders-api", "workload": "orders-api",
            "action": "created"}]
controllers:
  description: Each pod controller, its workload and what was done (C(bound), C(adopted) for one already bound
    by hand, whose pod template is left as it is, C(unchanged), C(missing), C(unbound)), with a C(note) where there
    is more to say; a bound or unbound one says what happens to its pods (they restart; with C(updateStrategy)
    C(OnDelete) they keep the old template until deleted; a CronJob's next runs use it), and a bound one that ran as
    another ServiceAccount names it.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "Deployment", "namespace": "orders", "name": "orders-api", "workload": "orders-api",
            "action": "bound"}]
release:
  description:
    - With O(read_release), the release as M(kubernetes.core.helm_info) returns it in C(status) (C(name),
      C(namespace), C(revision), C(updated), C(status), C(chart), C(app_version), and C(values), the user-supplied
      values); empty when there is no deployed or failed release of that name.
    - Absent when it could not be read here (another Helm storage driver, no permission to list them); then
      RV(release_unreadable) says why, and M(kubernetes.core.helm_info) can read it with the C(helm) binary.
  returned: with O(read_release), when read
  type: dict
  sample: {"name": "workload-identity-webhook", "namespace": "azure-workload-identity-system", "revision": "1",
           "status": "deployed", "chart": "workload-identity-webhook-1.6.0", "app_version": "1.6.0",
           "values": {"azureTenantID": "72f988bf-86f1-41af-91ab-2d7cd011db47"}}
release_unreadable:
  description: Why the release of O(read_release) could not be read here.
  returned: with O(read_release), when it could not be read
  type: str
problems:
  description: Every problem found (when it fails before changing anything).
  returned: on failure
  type: list
  elements: str
"""

from importlib.util import find_spec

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import aks_kube_module
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import Failure
from ansible_collections.workload_identity.aks.plugins.module_utils._guard import DEFAULT_PRUNE_MAX
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_batch import (
    BINDING_OPTIONS,
    KubeRequest,
    bind_workloads,
)

# The client is imported where it is used; here only to say clearly when it is missing.
HAS_KUBERNETES = find_spec("kubernetes") is not None


def main() -> None:
    module = aks_kube_module(
        argument_spec={
            "cluster_name": {"type": "str", "required": True},
            "tenant_id": {"type": "str"},
            "workloads": {"type": "raw", "required": True},
            "identities": {"type": "list", "elements": "dict", "default": []},
            # Resolved into identities by the action (plugins/action/service_accounts.py) before the module runs.
            "identities_from": {"type": "list", "elements": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "prune": {"type": "bool", "default": False},
            "prune_max": {"type": "int", "default": DEFAULT_PRUNE_MAX},
            "prune_confirm": {"type": "str"},
            **BINDING_OPTIONS,
        },
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    p = module.params
    cluster = p["cluster_name"]
    if p["identities_from"] is not None:
        module.fail_json(msg="identities_from: read by the collection's action on the controller; pass identities")
    request = KubeRequest(
        cluster,
        p["workloads"],
        p["identities"],
        tenant_id=p["tenant_id"],
        state=p["state"],
        prune=p["prune"],
        missing_workloads=p["missing_workloads"],
        rebind=p["rebind"],
        prune_max=p["prune_max"],
        prune_confirm=p["prune_confirm"],
        read_release=p["read_release"],
    )
    try:
        result = bind_workloads(
            request,
            lambda: module.client(f"cluster {cluster}"),
            check_mode=module.check_mode,
            diff=module._diff,
            warn=module.warn,
            # The deprecated alias goes in 2.0.0 (_inventory.ALIAS_REMOVED_IN); ansible-test wants the literal here.
            on_deprecation=lambda text: module.deprecate(
                text, version="2.0.0", collection_name="workload_identity.aks"
            ),
        )
    except Failure as failure:
        module.fail_json(**failure.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
