"""A tenant with several subscriptions, as a fleet spread over them has: each its own resources, its own role
assignments (the admin principal is Owner of each), and its own ARM token buckets per principal, so that a run over
two subscriptions is throttled per subscription, as ARM throttles (AZURE-FACTS.md)."""

from __future__ import annotations

from azure.mgmt.msi import ManagedServiceIdentityClient

from tests.integration.sandbox_helpers import TEST_SETTINGS, Sandbox

from .test_rbac import assign


def test_a_second_subscription_has_its_own_resources_roles_and_buckets(sandbox: Sandbox) -> None:
    other = sandbox.control.add_subscription("Fleet subscription B")
    listed = sandbox.raw("GET", "/subscriptions", api_version="2022-12-01").json()["value"]
    assert sorted(s["subscriptionId"] for s in listed) == sorted([sandbox.subscription_id, other])
    assert next(s for s in listed if s["subscriptionId"] == other)["displayName"] == "Fleet subscription B"

    # Its own resource groups and identities, through the unmodified SDK.
    group = f"/subscriptions/{other}/resourceGroups/rg-fleet-b"
    assert sandbox.raw("PUT", group, {"location": "westeurope"}, api_version="2022-09-01").status_code == 201
    msi = ManagedServiceIdentityClient(sandbox.credential(), other, **sandbox.arm_kwargs())
    made = msi.user_assigned_identities.create_or_update("rg-fleet-b", "id-b", {"location": "westeurope"})
    assert made.id.lower().startswith(f"/subscriptions/{other}/".lower())
    assert [i.name for i in sandbox.msi().user_assigned_identities.list_by_subscription()] == []
    # A cluster seeded there is there.
    cluster = sandbox.control.seed_cluster("rg-aks-b", "aks-fleet-b1", subscription_id=other)
    assert cluster["id"].lower().startswith(f"/subscriptions/{other}/".lower())
    assert sandbox.raw("GET", cluster["id"], api_version="2025-01-01").status_code == 200

    # A principal that holds a role in the first subscription only neither sees the second nor reads in it.
    reader = sandbox.control.create_principal(display_name="reader-a")
    assign(sandbox, f"/subscriptions/{sandbox.subscription_id}", "Reader", reader["principal_id"])
    token = str(
        sandbox.credential(reader["client_id"], reader["client_secret"]).get_token(sandbox.url + "/.default").token
    )
    seen = sandbox.raw("GET", "/subscriptions", token=token, api_version="2022-12-01").json()["value"]
    assert [s["subscriptionId"] for s in seen] == [sandbox.subscription_id]
    refused = sandbox.raw("GET", f"/subscriptions/{other}/resourcegroups", token=token, api_version="2022-09-01")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"

    # Buckets per subscription and principal: the first's reads spent, the second's are whole.
    limits = sandbox.control.call("GET", "/_sandbox/config")["buckets"]
    sandbox.control.configure({"throttling": True, "buckets": {"reads": [5, 0.01]}})
    try:
        first = [sandbox.raw("GET", sandbox.rg_id("rg-none-a"), api_version="2022-09-01") for _attempt in range(6)]
        assert [r.status_code for r in first][-1] == 429
        assert first[-1].json()["error"]["code"] == "SubscriptionRequestsThrottled"
        second = sandbox.raw("GET", group, api_version="2022-09-01")
        assert second.status_code == 200
        assert second.headers["x-ms-ratelimit-remaining-subscription-reads"] == "4"
    finally:
        sandbox.control.configure({**TEST_SETTINGS, "buckets": limits})

    # Gone with a reset, as every resource is; the sandbox's own subscription stays.
    sandbox.control.reset()
    listed = sandbox.raw("GET", "/subscriptions", api_version="2022-12-01").json()["value"]
    assert [s["subscriptionId"] for s in listed] == [sandbox.subscription_id]
