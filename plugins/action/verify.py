# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the verify module, printing what it still retries while it runs (plugin_utils.progress)."""

from __future__ import annotations

from ansible_collections.workload_identity.aks.plugins.plugin_utils.progress import ProgressAction


class ActionModule(ProgressAction):
    """The verify module with progress lines."""
