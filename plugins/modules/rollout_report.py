#!/usr/bin/python
# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the rollout_report action (plugins/action/rollout_report.py does the work, on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_report
short_description: Build a cluster's rollout report from the batch modules' results, print it and write it
version_added: 0.2.0
author: workload_identity.aks maintainers (@workload-identity)
description:
  - Joins the results of M(workload_identity.aks.workload_identities) and M(workload_identity.aks.service_accounts)
    into the rollout's report (the contract P(workload_identity.aks.rollout_report#filter) returns, with its
    C(schema_version)), prints its summary (P(workload_identity.aks.rollout_lines#filter)) and writes it as
    C(<cluster>.json) and C(<cluster>.md) in O(dir), each file replaced whole.
  - The results are given by the names of the variables they were registered in, and read as registered. Templating
    a cluster's rows into a task's arguments copies them node by node (0.3-0.7 s a copy for 200 workloads); this task
    reads them in place. The workloads role ends with it.
  - A plan's report (the modules run in check mode) is written as C(<cluster>.plan.json) and C(<cluster>.plan.md).
  - A report is the run's record, not a change to the cluster. It is written in check mode too (then it is the plan),
    and the task never reports a change.
options:
  dir:
    description: The folder to write the reports in (made if missing).
    type: path
    required: true
  cluster:
    description: The cluster's name, in the report and in the files' names.
    type: str
    required: true
  stage:
    description:
      - V(plan) writes the plan's report only (C(<cluster>.plan.*)), before anything is changed; nothing is printed.
      - V(result) reports the run. When O(converged) names no result (its tasks were skipped), the plan changed
        nothing or the run is in check mode, and the plan's reads are the run's result. In check mode the report is the
        plan (C(<cluster>.plan.*)); in a run that changed nothing, the plan's files are written too, with the run's.
    type: str
    choices: [plan, result]
    default: result
  planned:
    description: The variables the plan registered (both modules in check mode).
    type: dict
    required: true
    suboptions:
      azure:
        description: The name of the variable holding the result of M(workload_identity.aks.workload_identities).
        type: str
        required: true
      kube:
        description:
          - The name of the variable holding the result of M(workload_identity.aks.service_accounts).
          - Unset, the Kubernetes side's plan is the one in the Azure side's result, when that plan made it
            (M(workload_identity.aks.workload_identities)'
            O(workload_identity.aks.workload_identities#module:plan_kubernetes)).
        type: str
  converged:
    description:
      - The variables the converge registered. A workload the converge took as the plan found it (its C(reused))
        is reported with the plan's row.
      - A variable that is undefined, or holds a skipped task's result, means there was no converge.
    type: dict
    suboptions:
      azure:
        description: The name of the variable holding the result of M(workload_identity.aks.workload_identities).
        type: str
        required: true
      kube:
        description: The name of the variable holding the result of M(workload_identity.aks.service_accounts).
        type: str
  webhook_mode:
    description: How the cluster runs the webhook (V(addon) or V(helm)), as the report says it.
    type: str
  issuer_url:
    description: The cluster's OIDC issuer; unset before it is enabled.
    type: str
  webhook_tenant:
    description: The tenant the self-managed webhook injects by default (helm mode), compared with the identities'.
    type: str
  replaced_removed:
    description: The replaced identities or applications removed after their pods restarted, by name.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Writes the same in check mode, where the report is the plan.
  diff_mode:
    support: none
    description: The report is the run's record; the modules' own diffs show what changes.
extends_documentation_fragment: []
notes:
  - An action plugin; this file holds its documentation. It runs on the controller; nothing is sent to the host.
seealso:
  - plugin: workload_identity.aks.rollout_report
    plugin_type: filter
  - module: workload_identity.aks.reports
"""

EXAMPLES = r"""
- name: Plan aks-prod's workloads on the Azure side
  workload_identity.aks.workload_identities:
    cluster_name: aks-prod
    issuer_url: "{{ issuer.issuer_url }}"
    location: westeurope
    identity_resource_group: rg-identities-prod
    workloads: "{{ workload_identity_workloads }}"
  check_mode: true
  register: planned_azure

- name: And on the Kubernetes side
  workload_identity.aks.service_accounts:
    cluster_name: aks-prod
    context: aks-prod
    workloads: "{{ workload_identity_workloads }}"
    identities: "{{ planned_azure.workloads | workload_identity.aks.client_ids }}"
  check_mode: true
  register: planned_kube

# In check mode (as here) the report printed and written is the plan: aks-prod.plan.json and aks-prod.plan.md.
- name: Print and write the plan
  workload_identity.aks.rollout_report:
    dir: "{{ playbook_dir }}/workload-identity-reports"
    cluster: aks-prod
    webhook_mode: addon
    issuer_url: "{{ issuer.issuer_url }}"
    planned: {azure: planned_azure, kube: planned_kube}
  check_mode: true
"""

RETURN = r"""
written:
  description: The paths written.
  returned: always
  type: list
  elements: str
  sample: ["reports/aks-dev.json", "reports/aks-dev.md", "reports/aks-dev.plan.json", "reports/aks-dev.plan.md"]
counts:
  description: How many workloads the report shows in each status (and with no access), as in the report.
  returned: always
  type: dict
  sample: {"created": 0, "changed": 1, "adopted": 0, "unchanged": 199, "no_access": 0}
check_mode:
  description: Whether the report printed is a plan.
  returned: always
  type: bool
"""
