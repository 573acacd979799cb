# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the reports action (plugins/action/reports.py does the work, on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: reports
short_description: Write a run's report files on the controller, in one task
version_added: 0.2.0
author: workload_identity.aks maintainers (@workload-identity)
description:
  - Writes each given file in O(dir) (made if missing), replacing it whole (written beside it, then renamed over it,
    so a reader never sees half a report), mode C(0644).
  - The rollout, plan and verify reports use it; one task, with no module process, where a C(file) and a C(copy) per
    file cost a process each.
  - A report is the run's record, not a change to the cluster. It is written in check mode too (then it is the plan),
    and the task never reports a change.
options:
  dir:
    description: The folder to write the files in.
    type: path
    required: true
  files:
    description: The files, by name (no folder) and content.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The file's name in O(dir).
        type: str
        required: true
      content:
        description: What it holds.
        type: str
        required: true
attributes:
  check_mode:
    support: full
    description: Writes the same in check mode; a report is not a change to the cluster.
  diff_mode:
    support: none
    description: The files are the run's record; there is no difference to show.
extends_documentation_fragment: []
notes:
  - An action plugin; this file holds its documentation. It runs on the controller; nothing is sent to the host.
"""

EXAMPLES = r"""
# report: what the workload_identity.aks.rollout_report filter builds from the batch modules' results.
- name: Write the JSON and Markdown reports
  workload_identity.aks.reports:
    dir: "{{ playbook_dir }}/workload-identity-reports"
    files:
      - {name: "{{ inventory_hostname }}.json", content: "{{ report | to_nice_json }}"}
      - {name: "{{ inventory_hostname }}.md", content: "{{ report | workload_identity.aks.rollout_markdown }}"}
"""

RETURN = r"""
written:
  description: The paths written.
  returned: always
  type: list
  elements: str
  sample: ["reports/aks-dev.json", "reports/aks-dev.md"]
"""
