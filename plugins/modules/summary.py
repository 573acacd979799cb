#!/usr/bin/python
# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the summary action (plugins/action/summary.py does the work, on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: summary
short_description: Print a summary as plain lines
version_added: 0.1.0
author: workload_identity.aks maintainers (@workload-identity)
description:
  - Prints the given lines as they are, one block per host, whatever the stdout callback's result format (the
    default callback would print a list as JSON, and a string's line breaks as C(\n)).
  - The rollout, teardown and verify roles end with it; their lines come from
    P(workload_identity.aks.rollout_lines#filter) and P(workload_identity.aks.verify_lines#filter).
  - Runs on the controller; nothing is sent to the host. In AWX the lines are part of the job's output.
options:
  lines:
    description: The lines to print.
    type: list
    elements: str
    required: true
  warnings:
    description: Warnings to show with the lines (as Ansible shows a module's warnings).
    type: list
    elements: str
    default: []
    version_added: 0.2.0
attributes:
  check_mode:
    support: full
    description: Prints the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no difference to show.
extends_documentation_fragment: []
notes:
  - An action plugin; this file holds its documentation.
"""

EXAMPLES = r"""
- name: Summary
  workload_identity.aks.summary:
    lines: "{{ report | workload_identity.aks.rollout_lines }}"
"""

RETURN = r"""
lines:
  description: The lines printed.
  returned: always
  type: list
  elements: str
  sample: ["aks-dev: webhook helm, issuer https://oidc.example/", "  1 workload(s): 1 was created"]
"""
