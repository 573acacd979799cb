"""Throttling, injected faults and latency, the request log and stats, and what the SDK makes of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from tests.integration.sandbox_helpers import Sandbox


def identities_path(sandbox: Sandbox, rg: str) -> str:
    return sandbox.rg_id(rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"


def test_read_bucket_throttles_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-t")
    token = sandbox.token()
    sandbox.control.configure({"throttling": True, "buckets": {"reads": [5, 1], "writes": [3, 1]}})
    remaining = []
    for _request in range(5):
        response = sandbox.raw("GET", identities_path(sandbox, "rg-t"), token=token)
        assert response.status_code == 200
        remaining.append(int(response.headers["x-ms-ratelimit-remaining-subscription-reads"]))
    assert remaining == [4, 3, 2, 1, 0]
    throttled = sandbox.raw("GET", identities_path(sandbox, "rg-t"), token=token)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert int(throttled.headers["Retry-After"]) >= 1
    # Writes have their own bucket.
    write = sandbox.raw("PUT", identities_path(sandbox, "rg-t") + "/writer", {"location": "westeurope"}, token=token)
    assert write.status_code == 201 and write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "2"


def test_sdk_rides_out_throttling(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-t")
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-t", "xid-1", {"location": "westeurope"})
    sandbox.control.configure({"throttling": True, "buckets": {"reads": [3, 4]}})
    sandbox.control.reset_stats()
    for _request in range(8):
        msi.user_assigned_identities.get("rg-t", "xid-1")
    statuses = sandbox.control.stats()["operations"]["userAssignedIdentities.get"]["by_status"]
    assert statuses["200"] == 8 and statuses.get("429", 0) >= 1


def test_injected_500_burst_then_success(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-f")
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-f", "xid-1", {"location": "westeurope"})
    sandbox.control.add_fault(operation="userAssignedIdentities.get", status=500, count=2)
    sandbox.control.reset_stats()
    assert msi.user_assigned_identities.get("rg-f", "xid-1").name == "xid-1"
    statuses = sandbox.control.stats()["operations"]["userAssignedIdentities.get"]["by_status"]
    assert statuses == {"500": 2, "200": 1}


def test_sdk_waits_the_retry_after_it_is_given(sandbox: Sandbox) -> None:
    """Counted, not timed: one token refilled every 2 s. A client that waits the Retry-After (2) before retrying
    is throttled once per read beyond the bucket; one that retried sooner would be throttled again."""
    sandbox.resource_group("rg-f")
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-f", "xid-1", {"location": "westeurope"})
    msi.user_assigned_identities.get("rg-f", "xid-1")  # the SDK's token is fetched before the bucket is set
    sandbox.control.configure({"throttling": True, "buckets": {"reads": [1, 0.5]}})
    sandbox.control.reset_stats()
    for _read in range(3):
        assert msi.user_assigned_identities.get("rg-f", "xid-1").name == "xid-1"
    statuses = sandbox.control.stats()["operations"]["userAssignedIdentities.get"]["by_status"]
    assert statuses == {"200": 3, "429": 2}


def test_persistent_fault_surfaces_to_the_client(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-f")
    sandbox.control.add_fault(operation="userAssignedIdentities.put", status=503, count=-1, retry_after=0)
    with pytest.raises(HttpResponseError) as failed:
        sandbox.msi().user_assigned_identities.create_or_update("rg-f", "xid-1", {"location": "westeurope"})
    assert failed.value.status_code == 503


def test_connection_reset(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-f")
    token = sandbox.token()
    sandbox.control.add_fault(path="/userAssignedIdentities/", reset=True, count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        sandbox.raw("GET", identities_path(sandbox, "rg-f") + "/xid-1", token=token)
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-f", "xid-1", {"location": "westeurope"})
    sandbox.control.add_fault(operation="userAssignedIdentities.get", reset=True, count=1)
    assert msi.user_assigned_identities.get("rg-f", "xid-1").name == "xid-1"  # the SDK retries one reset
    # Both resets (the raw call and the one the SDK retried) are counted under the operation they hit.
    assert sandbox.control.stats()["operations"]["userAssignedIdentities.get"]["by_status"].get("reset") == 2
    sandbox.control.add_fault(operation="userAssignedIdentities.put", reset=True, count=-1)
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        msi.user_assigned_identities.create_or_update("rg-f", "xid-1", {"location": "westeurope"})


def test_latency(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.control.configure({"latency_ms": 300})
    sandbox.raw("GET", "/subscriptions", token=token, api_version="2022-12-01")
    # What the sandbox itself recorded for the request (its log's "ms"), not a clock in the test.
    log = (Path(sandbox.state_dir) / "requests.jsonl").read_text().splitlines()
    listed = [json.loads(line) for line in log if '"subscriptions.list"' in line]
    assert listed[-1]["ms"] >= 300


def test_request_log_and_stats_never_hold_secrets(sandbox: Sandbox) -> None:
    sandbox.control.reset_stats()
    sandbox.resource_group("rg-log")
    credential = sandbox.credential()
    token = credential.get_token(sandbox.url + "/.default").token
    sandbox.msi(credential).user_assigned_identities.create_or_update("rg-log", "xid-1", {"location": "westeurope"})
    log = (Path(sandbox.state_dir) / "requests.jsonl").read_text()
    entries = [json.loads(line) for line in log.splitlines()]
    puts = [e for e in entries if e["operation"] == "userAssignedIdentities.put"]
    assert puts and puts[-1]["status"] == 201 and puts[-1]["principal"]
    assert sandbox.env["AZURE_CLIENT_SECRET"] not in log and token not in log
    stats = sandbox.control.stats()
    assert stats["operations"]["userAssignedIdentities.put"]["by_status"] == {"201": 1}
    assert stats["totals"]["arm"] >= 2 and stats["totals"]["entra"] >= 1
