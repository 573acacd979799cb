# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's workload_identity_* values as the collection's checks get them: nothing secret in them; and what
the inventory's other clusters declare on identities they may share with this one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

WORKLOADS = "workload_identity_workloads"


def checkable_values(values: Any) -> dict[str, Any]:
    """Each value as it is, but a mapping's content left out (credentials, a kubeconfig): being a mapping is what
    the check needs. The workload list is left out too: it is validated, entry by entry, on its own."""
    if not isinstance(values, Mapping):
        raise AnsibleFilterError(f"checkable_values expects a mapping of variable names to values, got {values!r}")
    return {
        str(name): {} if isinstance(value, Mapping) else value for name, value in values.items() if name != WORKLOADS
    }


def _read(variables: Any, name: str, default: Any = None) -> Any:
    """A host's variable, templated; its default when undefined or when templating it fails (that host's own run
    reports its inventory's mistakes)."""
    try:
        value = variables[name]
    except Exception:  # pylint: disable=broad-exception-caught  # KeyError, or Ansible's undefined-variable errors
        return default
    return default if value is None else value


def identity_peers(hostvars: Any, hosts: Any, in_run: Any, this_host: str) -> list[dict[str, Any]]:
    """Every other inventory host (cluster) whose workloads name an identity explicitly, with those workloads: the
    ones that may share an identity with this host's. ``in_run``: the hosts converging in this run."""
    if not isinstance(hosts, list) or not isinstance(in_run, list):
        raise AnsibleFilterError("identity_peers expects the inventory's hosts and the run's (lists), and this host")
    peers: list[dict[str, Any]] = []
    for host in hosts:
        if host == this_host or host not in hostvars:
            continue
        variables = hostvars[host]
        workloads = _read(variables, WORKLOADS, [])
        named = [
            dict(w)
            for w in (workloads if isinstance(workloads, list) else [])
            if isinstance(w, Mapping)
            and (
                (w.get("application_unique_name") or w.get("application_id"))
                if w.get("identity_type") == "application"
                else w.get("identity_name")
            )
        ]
        if not named:
            continue
        auth = _read(variables, "workload_identity_azure_auth", {})
        peers.append(
            {
                "cluster_name": str(_read(variables, "workload_identity_cluster_name", host)),
                "cluster_resource_group": _read(variables, "workload_identity_cluster_resource_group"),
                "identity_resource_group": _read(variables, "workload_identity_identity_resource_group"),
                "subscription_id": auth.get("subscription_id") if isinstance(auth, Mapping) else None,
                "issuer_url": _read(variables, "oidc_issuer_url") or _read(variables, "workload_identity_issuer_url"),
                "in_run": host in in_run,
                "workloads": named,
            }
        )
    return peers


def _cluster_key(variables: Any, host: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of the cluster a host stands for, compared as Azure does (any case);
    the subscription is the run's default where the host names none."""
    auth = _read(variables, "workload_identity_azure_auth", {})
    subscription = auth.get("subscription_id") if isinstance(auth, Mapping) else None
    return (
        str(subscription or "").lower(),
        str(_read(variables, "workload_identity_cluster_resource_group", "") or "").lower(),
        str(_read(variables, "workload_identity_cluster_name", host)).lower(),
    )


def cluster_aliases(hostvars: Any, hosts: Any, this_host: str) -> list[str]:
    """The other inventory hosts that stand for the same AKS cluster as this one (a second host with
    ``workload_identity_cluster_name`` set to this cluster): each would prune the other's workloads."""
    if not isinstance(hosts, list):
        raise AnsibleFilterError("cluster_aliases expects the inventory's hosts (a list) and this host")
    if this_host not in hostvars:
        return []
    mine = _cluster_key(hostvars[this_host], this_host)
    return sorted(
        str(host)
        for host in hosts
        if host != this_host and host in hostvars and _cluster_key(hostvars[host], host) == mine
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "checkable_values": checkable_values,
            "identity_peers": identity_peers,
            "cluster_aliases": cluster_aliases,
        }
