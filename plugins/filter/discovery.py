# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory discovery writes: host_vars YAML that declares what a cluster has, with its notes as comments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

HEADER = "# Written by workload_identity.aks playbooks/discover.yml"


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key (as yamllint's default wants), keys in declaration order."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _text(value: Any) -> str:
    """An exact ``str``: ansible-core 2.16's unsafe text returns itself from ``str()``, which no safe dumper knows."""
    return str.__str__(str(value))


def _plain(value: Any) -> Any:
    """Ansible's tagged strings, lists and dicts as the plain types a safe dumper knows."""
    if isinstance(value, Mapping):
        return {_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return _text(value)


def _dump(value: Any) -> str:
    plain = _plain(value)
    return yaml.dump(plain, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1000, allow_unicode=True)


def _comment(lines: list[str], indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in lines]


def discovered_host_vars(discovered: dict[str, Any], cluster: str) -> str:
    """The host_vars file for one cluster: ``workload_identity_workloads`` and what discovery noted."""
    if not isinstance(discovered, dict) or "workloads" not in discovered:
        raise AnsibleFilterError(
            "discovered_host_vars: expects the result of workload_identity.aks.workload_identities_info"
        )
    workloads = [dict(w) for w in discovered.get("workloads") or []]
    notes: dict[str, list[str]] = discovered.get("notes") or {}
    out = [
        "---",
        f"{HEADER} for cluster {cluster}.",
        "# It declares what the cluster and its subscription already have: site.yml adopts all of it as it is.",
        "# Review it (above all the MIGRATION entries), then keep it as this cluster's inventory.",
    ]
    findings = discovered.get("findings") or []
    if findings:
        out.append("#")
        out.append("# Found but not declared:")
        out.extend(_comment([f"- {f}" for f in findings], ""))
    if not workloads:
        out.append("workload_identity_workloads: []")
        return "\n".join(out) + "\n"
    out.append("workload_identity_workloads:")
    for workload in workloads:
        out.extend(_comment(notes.get(str(workload.get("name")), []), "  "))
        body = _dump([workload]).rstrip("\n").split("\n")
        out.extend(f"  {line}" for line in body)
    return "\n".join(out) + "\n"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"discovered_host_vars": discovered_host_vars}
