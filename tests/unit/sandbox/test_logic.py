"""Pure logic of the sandbox: scopes, RBAC matching, token buckets, filters, JWTs, paging, faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import ids, jwt, rbac
from tests.sandbox.app import Sandbox
from tests.sandbox.arm.common import _parse_filter
from tests.sandbox.config import Settings
from tests.sandbox.core import ApiError, Request, Route, paged
from tests.sandbox.faults import Faults
from tests.sandbox.store import Store
from tests.sandbox.throttle import Throttle

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg-App"
CONTAINER = f"{RG}/providers/Microsoft.Storage/storageAccounts/sa/blobServices/default/containers/orders"


def test_parse_scope_kinds() -> None:
    assert ids.parse_scope("/").kind == "root"
    assert ids.parse_scope(SUB).kind == "subscription"
    assert ids.parse_scope(RG + "/").resource_group == "rg-App"
    mg = ids.parse_scope("/providers/Microsoft.Management/managementGroups/platform")
    assert (mg.kind, mg.management_group) == ("managementGroup", "platform")
    container = ids.parse_scope(CONTAINER)
    assert container.kind == "resource"
    assert container.resource_type == "Microsoft.Storage/storageAccounts/blobServices/containers"
    assert container.names == ("sa", "default", "orders")


@pytest.mark.parametrize(
    "bad",
    [
        "/subscriptions",
        "/subscriptions/x/resourceGroups",
        "/subscriptions/x/foo/bar",
        f"{RG}/providers/Microsoft.Storage",
        f"{RG}/providers/Microsoft.Storage/storageAccounts",
        "/providers/Microsoft.Management/other/x",
        "/tenants/x",
    ],
)
def test_invalid_scopes(bad: str) -> None:
    with pytest.raises(ids.InvalidScope):
        ids.parse_scope(bad)


def test_chain_walks_parents_then_management_groups() -> None:
    mg = ids.norm("/providers/Microsoft.Management/managementGroups/root")
    chain = ids.chain(ids.parse_scope(CONTAINER), {"00000000-0000-0000-0000-000000000001": [mg]})
    assert chain == [
        ids.norm(CONTAINER),
        ids.norm(f"{RG}/providers/Microsoft.Storage/storageAccounts/sa/blobServices/default"),
        ids.norm(f"{RG}/providers/Microsoft.Storage/storageAccounts/sa"),
        ids.norm(RG),
        ids.norm(SUB),
        mg,
        "/",
    ]


def test_at_or_below_is_segment_aware() -> None:
    assert ids.is_at_or_below(ids.norm(RG + "/providers/x/y/z"), ids.norm(RG))
    assert not ids.is_at_or_below(ids.norm(RG + "2"), ids.norm(RG))
    assert ids.is_at_or_below(ids.norm(RG), "/")


def test_action_matching() -> None:
    assert rbac.action_matches("*", "Microsoft.Anything/x/write")
    assert rbac.action_matches("*/read", "Microsoft.Storage/storageAccounts/read")
    assert not rbac.action_matches("*/read", "Microsoft.Storage/storageAccounts/write")
    assert rbac.action_matches("Microsoft.Authorization/*/Write", "microsoft.authorization/roleassignments/write")
    assert rbac.action_matches("Microsoft.ServiceBus/*/queues/read", "Microsoft.ServiceBus/namespaces/queues/read")


def test_permits_subtracts_not_actions() -> None:
    roles = rbac.built_in_roles()
    contributor = roles["b24988ac-6180-42a0-ab88-20f7382dd24c"]["permissions"]
    assert rbac.permits(contributor, "Microsoft.ManagedIdentity/userAssignedIdentities/write")
    assert not rbac.permits(contributor, "Microsoft.Authorization/roleAssignments/write")
    blob = roles["ba92f5b4-2d11-453d-a403-e96b0029c9fe"]["permissions"]
    assert rbac.permits(blob, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", data_action=True)
    assert not rbac.permits(blob, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read")


def test_catalog_has_the_documented_guids() -> None:
    names = {v["roleName"]: k for k, v in rbac.built_in_roles().items()}
    assert names["Owner"] == "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    assert names["Key Vault Secrets User"] == "4633458b-17de-408a-b874-0445c86b69e6"
    assert names["Managed Identity Operator"] == "f1a07417-d97a-45cb-824c-7a7467783830"
    assert len(names) == len(rbac.built_in_roles())


def test_token_bucket_refills_and_reports_retry_after() -> None:
    settings = Settings()
    settings.buckets.writes = (2, 0.5)
    bucket = Throttle(settings)
    assert bucket.take("writes", "S", "p", now=100.0)[:2] == (True, 1)
    assert bucket.take("writes", "S", "p", now=100.0)[:2] == (True, 0)
    assert bucket.take("writes", "S", "p", now=100.0) == (False, 0, 2)
    assert bucket.take("writes", "s", "other", now=100.0)[0]  # per principal
    assert bucket.take("writes", "s", "p", now=102.0)[0]  # refilled one token in 2 s, case-insensitive sub


def test_filters() -> None:
    assert _parse_filter("atScope() and assignedTo('abc')") == {"atScope": True, "assignedTo": "abc"}
    assert _parse_filter("principalId eq 'p1'") == {"principalId": "p1"}
    assert _parse_filter("roleName eq 'Storage Blob Data Reader'") == {"roleName": "Storage Blob Data Reader"}
    with pytest.raises(ApiError):
        _parse_filter("principalId ne 'x'")


def test_jwt_round_trip_and_tamper() -> None:
    key = jwt.new_key()
    token = jwt.sign({"sub": "a", "n": 1}, key)
    assert jwt.verify(token, key.public_key())["sub"] == "a"
    head, body, sig = token.split(".")
    forged_body = jwt.b64url(b'{"sub":"b","n":1}')
    with pytest.raises(jwt.InvalidToken):
        jwt.verify(f"{head}.{forged_body}.{sig}", key.public_key())
    with pytest.raises(jwt.InvalidToken):
        jwt.verify(token, jwt.new_key().public_key())
    assert jwt.public_from_jwk(jwt.jwk(key.public_key())).public_numbers() == key.public_key().public_numbers()
    assert jwt.unverified(token)[0]["kid"] == jwt.key_id(key.public_key())


def test_settings_reject_unknown_names() -> None:
    settings = Settings()
    settings.update({"latency_ms": 5, "buckets": {"reads": [10, 1]}})
    assert settings.latency_ms == 5.0 and settings.buckets.reads == (10.0, 1.0)
    with pytest.raises(ValueError, match="unknown settings: latncy"):
        settings.update({"latncy": 1})


def test_paging_keeps_the_query_and_advances() -> None:
    request = Request.build("GET", "/x?api-version=1&$top=2", {}, b"")
    page = paged([{"n": i} for i in range(5)], request, "https://h", 100)
    assert page["value"] == [{"n": 0}, {"n": 1}]
    follow = Request.build("GET", page["nextLink"].removeprefix("https://h"), {}, b"")
    assert paged([{"n": i} for i in range(5)], follow, "https://h", 100)["value"] == [{"n": 2}, {"n": 3}]
    assert "nextLink" not in paged([{"n": 1}], Request.build("GET", "/x", {}, b""), "https://h", 100)


def test_faults_match_and_run_out() -> None:
    faults = Faults()
    faults.add({"operation": "roleAssignments\\..*", "method": "PUT", "status": 500, "count": 2})
    assert faults.pick("roleAssignments.put", "GET", "/") is None
    assert faults.pick("roleAssignments.put", "PUT", "/") is not None
    assert faults.pick("roleAssignments.put", "PUT", "/") is not None
    assert faults.pick("roleAssignments.put", "PUT", "/") is None


def test_store_lists_are_snapshots_a_concurrent_write_cannot_break(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.put("roleAssignment", "a", {"n": 1})
    # Another thread's write landing mid-loop; a live dict would raise "changed size during iteration".
    for key in store.all("roleAssignment"):
        store.put("roleAssignment", key + "-next", {"n": 2})
    assert sorted(store.all("roleAssignment")) == ["a", "a-next"]
    store.close()


def test_a_crashed_handler_answers_500_and_is_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Sandbox(tmp_path, "https://127.0.0.1:1")

    def broken(_ctx: Any) -> Any:
        raise KeyError("missing")

    app.resolve = lambda _request: Route("sandbox.broken", "control", broken)  # type: ignore[method-assign]
    response, operation, _principal = app.handle(Request.build("GET", "/_sandbox/broken", {}, b""))
    assert (response.status, operation, app.internal_errors) == (500, "sandbox.broken", 1)
    assert response.body["error"]["code"] == "InternalServerError"
    assert "KeyError: 'missing'" in capsys.readouterr().err
    app.close()
