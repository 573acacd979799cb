"""The identity_peers filter: what the inventory's other clusters declare that may share an identity with this one."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable
from ansible_collections.workload_identity.aks.plugins.filter.inventory import cluster_aliases, identity_peers


class Vars(dict[str, Any]):
    """A host's variables as hostvars gives them: a variable that cannot be templated raises when read."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if value == "{{ undefined }}":
            raise AnsibleUndefinedVariable("'undefined' is undefined")
        return value


def test_other_hosts_workloads_that_name_an_identity_or_an_application_and_whether_they_run() -> None:
    named = {"name": "orders", "identity_name": "id-orders"}
    app = {"name": "cart", "identity_type": "application", "application_unique_name": "wi-cart"}
    hostvars = {
        "blue": Vars(workload_identity_workloads=[named]),
        "green": Vars(
            workload_identity_workloads=[named, app, {"name": "default-name"}, "not a workload"],
            workload_identity_cluster_name="aks-green",
            workload_identity_cluster_resource_group="rg-green",
            workload_identity_identity_resource_group="rg-ids",
            workload_identity_azure_auth={"subscription_id": "sub-2", "secret": "x"},
            oidc_issuer_url="https://issuer/green/",
        ),
        "teal": Vars(workload_identity_workloads=[{"name": "default-name"}]),
        "broken": Vars(workload_identity_workloads="{{ undefined }}"),
    }
    peers = identity_peers(hostvars, ["blue", "green", "teal", "broken", "gone"], ["blue", "green"], "blue")
    assert peers == [
        {
            "cluster_name": "aks-green",
            "cluster_resource_group": "rg-green",
            "identity_resource_group": "rg-ids",
            "subscription_id": "sub-2",
            "issuer_url": "https://issuer/green/",
            "in_run": True,
            "workloads": [named, app],
        }
    ]
    limited = identity_peers(hostvars, ["blue", "green"], ["green"], "green")
    assert [(p["cluster_name"], p["in_run"], p["subscription_id"]) for p in limited] == [("blue", False, None)]


def test_it_says_what_it_expects() -> None:
    with pytest.raises(AnsibleFilterError, match="identity_peers expects"):
        identity_peers({}, "all", [], "blue")


def test_hosts_that_stand_for_one_cluster_are_found_as_azure_compares_names() -> None:
    sub = {"workload_identity_azure_auth": {"subscription_id": "S-1"}}
    hostvars = {
        "aks-bad": {**sub, "workload_identity_cluster_resource_group": "rg-aks"},
        "aks-bad-alias": {
            "workload_identity_azure_auth": {"subscription_id": "s-1"},
            "workload_identity_cluster_resource_group": "RG-AKS",
            "workload_identity_cluster_name": "AKS-bad",
        },
        "aks-bad-elsewhere": {
            **sub,
            "workload_identity_cluster_resource_group": "rg-other",
            "workload_identity_cluster_name": "aks-bad",
        },
        "aks-bad-other-sub": {
            "workload_identity_azure_auth": {"subscription_id": "s-2"},
            "workload_identity_cluster_resource_group": "rg-aks",
            "workload_identity_cluster_name": "aks-bad",
        },
        "aks-good": {**sub, "workload_identity_cluster_resource_group": "rg-aks"},
    }
    hosts = list(hostvars)
    assert cluster_aliases(hostvars, hosts, "aks-bad") == ["aks-bad-alias"]
    assert cluster_aliases(hostvars, hosts, "aks-bad-alias") == ["aks-bad"]
    assert cluster_aliases(hostvars, hosts, "aks-good") == []
    assert cluster_aliases(hostvars, hosts, "aks-bad-elsewhere") == []  # another resource group: another cluster
