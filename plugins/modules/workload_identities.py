#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: workload_identities
short_description: Give every workload of an AKS cluster its own identity, trust and roles, in one task
version_added: 0.1.0
description:
  - For each workload, ensures a user-assigned identity, a federated credential trusting
    C(system:serviceaccount:<namespace>:<service_account>) from the cluster's issuer (plus any extra subjects
    it lists), and exactly the role assignments it declares.
  - Validates the whole list first and reports every problem at once, each naming the cluster, the workload
    and the field, before anything is read or written. Problems only Azure can reveal (a role that does not exist,
    an identity that is full or belongs to another cluster) are also found before the first write.
  - Reads in bulk (the identities of the resource group, the role definitions and role assignments of the
    subscription, and each existing identity's federated credentials), so a run that changes nothing costs
    N + 3 requests to ARM for N workloads.
  - Writes with a bounded number of workloads at a time; one workload's writes run in order, so federated
    credential writes on one identity never overlap. The same code as the single-object modules does the work.
  - Identities it creates are tagged as made by this collection for this cluster, namespace and service account.
    With O(prune=true) it removes, from identities it made for this cluster only, the federated credentials
    (of this cluster's issuer) and role assignments the list no longer declares, and the identities of workloads
    no longer listed (their role assignments first, which Azure would otherwise leave behind).
  - Refuses privileged roles (Owner, Contributor, User Access Administrator, Role Based Access Control
    Administrator) at management-group or subscription scope unless O(allow_privileged_roles=true).
options:
  cluster_name:
    description: The cluster's name; used in federated credential names and ownership tags.
    type: str
    required: true
  issuer_url:
    description:
      - The cluster's OIDC issuer URL, exactly (see M(workload_identity.aks.cluster_oidc_issuer)).
      - Required with O(state=present), unless O(validate_only=true).
    type: str
  state:
    description:
      - V(present) converges every listed workload.
      - V(absent) removes the listed workloads. An identity this collection made for this cluster goes whole (its
        role assignments first, then the identity, which takes its federated credentials with it). An identity made
        elsewhere and only used here is kept; this cluster's federated credentials on it and the role assignments
        the workload declares are removed. With O(prune=true), every other identity this collection made for this
        cluster goes too (O(workloads=[]) with O(prune=true) removes everything it made for the cluster).
    type: str
    choices: [present, absent]
    default: present
  location:
    description: Region for identities that have to be created.
    type: str
  identity_resource_group:
    description:
      - Resource group for the identities (a workload's own C(identity_resource_group) wins).
      - Always searched by O(prune), so identities of workloads no longer listed are found there.
    type: str
  workloads:
    description:
      - The workloads, each a mapping with C(name) (a DNS label), C(namespace), C(service_account), C(roles) (a list
        of mappings of C(role) as a name, GUID or role definition id, C(scope), and optionally C(condition),
        C(condition_version), C(description)), and optionally C(identity_name) (default
        C(id-<cluster_name>-<namespace>-<name>)), C(identity_resource_group), C(extra_subjects) (more subjects to
        trust from the same issuer), C(tags) (extra tags for an identity this collection makes).
      - C(workloads) (pod controllers, each a mapping of C(kind) and C(name)) and C(token_expiration) (seconds,
        3600-86400) are for M(workload_identity.aks.service_accounts); they are validated here, so one task finds
        every mistake in an inventory, but not used. Any other field is an error, so typos are caught.
      - Checked by this module rather than by Ansible's option validation, so that every problem in the list is
        reported at once, naming the workload and the field.
    type: list
    elements: dict
    required: true
  prune:
    description: Remove what this collection made for this cluster and the list no longer declares.
    type: bool
    default: false
  allow_privileged_roles:
    description: Allow privileged roles at management-group or subscription scope.
    type: bool
    default: false
  max_concurrency:
    description: How many workloads are converged at once.
    type: int
    default: 8
  validate_only:
    description: Only validate O(workloads) (no request to Azure) and report the problems.
    type: bool
    default: false
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.azure.ATTRIBUTES
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Remove everything this collection made for aks-old (identities, their credentials and role assignments)
  workload_identity.aks.workload_identities:
    cluster_name: aks-old
    identity_resource_group: rg-identities-prod
    state: absent
    prune: true
    workloads: []

- name: Every workload of aks-prod
  workload_identity.aks.workload_identities:
    cluster_name: aks-prod
    issuer_url: "{{ issuer.issuer_url }}"
    location: westeurope
    identity_resource_group: rg-identities-prod
    prune: true
    workloads:
      - name: orders-api
        namespace: orders
        service_account: orders-api
        roles:
          - role: Storage Blob Data Contributor
            scope: "{{ orders_account_id }}/blobServices/default/containers/orders"
"""

RETURN = r"""
workloads:
  description: Per workload, in the order given, what was done (or would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The workload.
      type: str
    namespace:
      description: Its namespace.
      type: str
    service_account:
      description: Its service account.
      type: str
    subject:
      description: The service account's subject.
      type: str
    identity:
      description: The identity (as M(workload_identity.aks.user_assigned_identity) returns it), with C(action)
        and C(owned) (made by this collection).
      type: dict
    federated_credentials:
      description: Each credential's name, subject and action.
      type: list
      elements: dict
    role_assignments:
      description: Each assignment's role, scope, name and action.
      type: list
      elements: dict
    changed:
      description: Whether anything changed for this workload.
      type: bool
pruned:
  description: What O(prune) removed (or would remove), by kind (C(identities), C(federated_credentials),
    C(role_assignments)).
  returned: always
  type: dict
problems:
  description: Every problem found in the list (when it fails validation).
  returned: on failure
  type: list
  elements: str
"""

from ansible_collections.workload_identity.aks.plugins.module_utils._azure import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._workloads import Batch, Workloads, validate


def main() -> None:
    module = AzureModule(
        argument_spec={
            "cluster_name": {"type": "str", "required": True},
            "issuer_url": {"type": "str"},
            "location": {"type": "str"},
            "identity_resource_group": {"type": "str"},
            "workloads": {"type": "list", "elements": "dict", "required": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "prune": {"type": "bool", "default": False},
            "allow_privileged_roles": {"type": "bool", "default": False},
            "max_concurrency": {"type": "int", "default": 8},
            "validate_only": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    workloads = [{k: v for k, v in w.items() if v is not None} for w in p["workloads"]]
    present = p["state"] == "present"
    specs, problems = validate(
        p["cluster_name"],
        p["issuer_url"],
        workloads,
        subscription_id=module.connection.subscription_id or "",
        identity_resource_group=p["identity_resource_group"],
        allow_privileged_roles=p["allow_privileged_roles"],
        # Before the issuer is enabled its URL is unknown; validating the list, or removing, does not need it.
        issuer_required=present and not p["validate_only"],
    )
    if problems:
        module.fail_json(
            msg=f"{len(problems)} problem(s) in the workloads of {p['cluster_name']}: " + "; ".join(problems),
            problems=problems,
        )
    if p["validate_only"]:
        module.exit_json(changed=False, workloads=[], pruned={}, problems=[])
    batch = Batch(
        p["cluster_name"],
        p["issuer_url"],
        p["location"],
        specs,
        p["prune"],
        p["allow_privileged_roles"],
        resource_groups=(p["identity_resource_group"],) if p["identity_resource_group"] else (),
        state=p["state"],
    )
    try:
        engine = Workloads(
            module.client("msi"),
            module.client("authorization"),
            module.retry_policy,
            module.connection.subscription_id or "",
        )
        reads = engine.read(batch)
        if present:
            result = engine.converge(batch, reads, module.check_mode, p["max_concurrency"])
        else:
            result = engine.remove(batch, reads, module.check_mode)
        if not module._diff:
            result.pop("diff")
    except ValidationError as exc:
        module.fail_json(
            msg=f"{len(exc.problems)} problem(s) in the workloads of {p['cluster_name']}: " + "; ".join(exc.problems),
            problems=exc.problems,
        )
        return
    except AzureApiError as exc:
        module.fail_error(exc)
        return
    module.exit_json(**result)


if __name__ == "__main__":
    main()
