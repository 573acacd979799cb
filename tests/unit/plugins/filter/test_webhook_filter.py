"""chart_changes: what installing the webhook chart changes, read from the release as it is."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.workload_identity.aks.plugins.filter.webhook import chart_changes

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
RELEASE = {"chart": "workload-identity-webhook-1.6.0", "values": {"azureTenantID": TENANT, "logLevel": "info"}}


def test_nothing_changes_when_the_release_is_what_the_role_installs() -> None:
    wanted = {"azureTenantID": TENANT, "logLevel": "info"}
    assert chart_changes(RELEASE, "workload-identity-webhook", "1.6.0", wanted) == []


def test_no_release_yet_is_no_change_to_describe() -> None:
    assert chart_changes({}, "workload-identity-webhook", "1.6.0", {"azureTenantID": TENANT}) == []


def test_version_tenant_and_value_names_are_each_said_but_not_value_contents() -> None:
    wanted = {"azureTenantID": "other-tenant", "replicaCount": 3}
    changes = chart_changes(RELEASE, "oci://registry.example/helm/workload-identity-webhook", "1.7.0", wanted)
    assert changes == [
        "chart workload-identity-webhook-1.6.0 -> workload-identity-webhook-1.7.0",
        f"webhook tenant (azureTenantID) {TENANT} -> other-tenant",
        "values logLevel, replicaCount change",
    ]
    assert "3" not in changes[2] and "info" not in changes[2]


def test_an_unpinned_version_is_not_compared() -> None:
    assert chart_changes(RELEASE, "./chart", "", {"azureTenantID": TENANT, "logLevel": "info"}) == []


def test_wrong_input_is_a_clear_error() -> None:
    with pytest.raises(AnsibleFilterError, match="helm_info status"):
        chart_changes("installed", "c", "1", {})


def test_pod_client_ids_are_what_the_webhook_injected_into_any_container() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.webhook import pod_client_ids

    def pod(*containers: list[dict[str, str]], init: list[dict[str, str]] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"name": f"c{n}", "env": env} for n, env in enumerate(containers)]}
        if init is not None:
            spec["initContainers"] = [{"name": "init", "env": init}]
        return {"spec": spec}

    pods = [
        pod([{"name": "AZURE_CLIENT_ID", "value": "c1"}, {"name": "OTHER", "value": "x"}]),
        pod([{"name": "AZURE_CLIENT_ID", "value": "c1"}], init=[{"name": "AZURE_CLIENT_ID", "value": "c0"}]),
        pod([]),
        {"spec": {"containers": [{"name": "bare"}]}},
    ]
    assert pod_client_ids(pods) == ["c1", "c0"]
    with pytest.raises(AnsibleFilterError, match="list of pods"):
        pod_client_ids({"resources": []})
