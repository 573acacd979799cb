"""A Helm release read from Helm's own storage, as ``helm list`` + ``helm get values`` (helm_info) show it."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_helm import (
    ReleaseUnreadable,
    decode_release,
    read_release,
    storage_of,
)

NAMESPACE, NAME = "azure-workload-identity-system", "workload-identity-webhook"


def release(version: int, status: str, chart_version: str = "1.6.0", values: Any = None) -> dict[str, Any]:
    """A release as Helm 3 marshals it (the fields this reads, and some it does not)."""
    return {
        "name": NAME,
        "namespace": NAMESPACE,
        "version": version,
        "info": {"status": status, "last_deployed": "2026-12-01T10:00:00.0Z", "description": "Install complete"},
        "chart": {"metadata": {"name": NAME, "version": chart_version, "appVersion": chart_version}},
        "config": values,
        "manifest": "---\nkind: Deployment\n",
    }


def stored(body: dict[str, Any], kind: str = "secrets", zipped: bool = True) -> dict[str, Any]:
    """Its record as Helm's driver stores it: base64 of gzipped JSON, a Secret's data base64 once more."""
    raw = json.dumps(body).encode()
    helm = base64.b64encode(gzip.compress(raw) if zipped else raw)
    data = base64.b64encode(helm).decode() if kind == "secrets" else helm.decode()
    labels = {"owner": "helm", "name": body["name"], "status": body["info"]["status"], "version": str(body["version"])}
    metadata = {"name": f"sh.helm.release.v1.{NAME}.v{body['version']}", "labels": labels}
    return {"metadata": metadata, "data": {"release": data}}


class FakeKube:
    def __init__(self, records: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.records, self.error, self.calls = records, error, []

    def list(self, path: str, operation: str, selector: str | None = None, limit: int | None = None) -> Any:
        self.calls.append((path, selector))
        if self.error is not None:
            raise self.error
        return self.records


def test_the_latest_revision_deployed_is_the_release_as_helm_info_shows_it() -> None:
    kube = FakeKube([stored(release(1, "superseded", "1.5.0")), stored(release(2, "deployed", values={"a": 1}))])
    found = read_release(kube, NAMESPACE, NAME)  # type: ignore[arg-type]
    assert found == {
        "name": NAME,
        "namespace": NAMESPACE,
        "revision": "2",
        "updated": "2026-12-01T10:00:00.0Z",
        "status": "deployed",
        "chart": f"{NAME}-1.6.0",
        "app_version": "1.6.0",
        "values": {"a": 1},
    }
    # One request: Helm's records of that release, by its labels, in its namespace.
    assert kube.calls == [(f"/api/v1/namespaces/{NAMESPACE}/secrets", f"owner=helm,name={NAME}")]


def test_revisions_are_compared_as_numbers_and_a_failed_latest_counts() -> None:
    kube = FakeKube([stored(release(10, "failed")), stored(release(9, "superseded")), stored(release(2, "superseded"))])
    found = read_release(kube, NAMESPACE, NAME)  # type: ignore[arg-type]
    assert found["revision"] == "10" and found["status"] == "failed" and found["values"] == {}


@pytest.mark.parametrize("status", ["pending-install", "pending-upgrade", "uninstalling", "uninstalled", "superseded"])
def test_a_latest_revision_helm_list_does_not_show_is_no_release(status: str) -> None:
    kube = FakeKube([stored(release(1, "deployed")), stored(release(2, status))])
    assert read_release(kube, NAMESPACE, NAME) == {}  # type: ignore[arg-type]


def test_no_record_is_no_release() -> None:
    assert read_release(FakeKube([]), NAMESPACE, NAME) == {}  # type: ignore[arg-type]


def test_the_configmap_driver_is_read_where_it_keeps_them() -> None:
    kube = FakeKube([stored(release(3, "deployed"), kind="configmaps")])
    found = read_release(kube, NAMESPACE, NAME, driver="configmap")  # type: ignore[arg-type]
    assert found["revision"] == "3"
    assert kube.calls[0][0] == f"/api/v1/namespaces/{NAMESPACE}/configmaps"


def test_an_unzipped_record_decodes_too() -> None:
    record = stored(release(1, "deployed"), zipped=False)
    assert decode_release(record["data"]["release"], base64_wrapped=True)["version"] == 1


@pytest.mark.parametrize("driver", ["sql", "memory", "etcd"])
def test_a_driver_whose_storage_is_not_the_cluster_is_unreadable(driver: str) -> None:
    with pytest.raises(ReleaseUnreadable, match=f"HELM_DRIVER={driver}"):
        storage_of(driver)


def test_a_record_that_does_not_decode_is_unreadable() -> None:
    broken = stored(release(1, "deployed"))
    broken["data"]["release"] = base64.b64encode(b"not base64 at all!").decode()
    with pytest.raises(ReleaseUnreadable, match="does not decode"):
        read_release(FakeKube([broken]), NAMESPACE, NAME)  # type: ignore[arg-type]
    empty = stored(release(1, "deployed"))
    empty["data"] = {}
    with pytest.raises(ReleaseUnreadable, match="holds no release record"):
        read_release(FakeKube([empty]), NAMESPACE, NAME)  # type: ignore[arg-type]
