"""discovered_host_vars writes plain YAML whatever string type Ansible hands it."""

from __future__ import annotations

import yaml
from ansible_collections.workload_identity.aks.plugins.filter.discovery import discovered_host_vars


class UnsafeLike(str):
    """As ansible-core 2.16's unsafe text: ``str()`` of it returns itself, a type no safe dumper represents."""

    def __str__(self) -> str:  # pylint: disable=invalid-str-returned  # it is one: the subclass, as 2.16's is
        return self


def test_keys_and_values_of_a_str_subclass_are_written_as_plain_strings() -> None:
    workload = {UnsafeLike("name"): UnsafeLike("orders-api"), UnsafeLike("namespace"): UnsafeLike("orders")}
    text = discovered_host_vars({"workloads": [workload], "notes": {}}, "aks-dev")
    assert yaml.safe_load(text)["workload_identity_workloads"] == [{"name": "orders-api", "namespace": "orders"}]
