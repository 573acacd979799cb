"""userAssignedIdentities and federatedIdentityCredentials through azure-mgmt-msi."""

from __future__ import annotations

import threading
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.integration.sandbox_helpers import Sandbox

ISSUER = "https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111-1111-1111-1111-111111111111/"
AUDIENCE = ["api://AzureADTokenExchange"]
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def fic(subject: str, issuer: str = ISSUER) -> dict[str, object]:
    return {"issuer": issuer, "subject": subject, "audiences": AUDIENCE}


def test_identity_lifecycle(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-id")
    msi = sandbox.msi()
    created = msi.user_assigned_identities.create_or_update(
        "rg-id", "orders-api", {"location": "West Europe", "tags": {"team": "orders"}}
    )
    assert created.location == "westeurope" and created.tags == {"team": "orders"}
    assert uuid.UUID(created.client_id) and uuid.UUID(created.principal_id)
    assert created.tenant_id == sandbox.tenant_id
    assert created.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    again = msi.user_assigned_identities.create_or_update(
        "rg-id", "orders-api", {"location": "westeurope", "tags": {"team": "x"}}
    )
    assert (again.client_id, again.principal_id, again.tags) == (created.client_id, created.principal_id, {"team": "x"})
    patched = msi.user_assigned_identities.update("rg-id", "orders-api", {"tags": {"env": "dev"}})
    assert patched.tags == {"env": "dev"}
    assert msi.user_assigned_identities.get("rg-id", "ORDERS-API").client_id == created.client_id
    first = sandbox.raw(
        "DELETE",
        f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg-id/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/orders-api",
    )
    second = sandbox.raw(
        "DELETE",
        f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg-id/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/orders-api",
    )
    assert (first.status_code, second.status_code) == (200, 204)
    with pytest.raises(ResourceNotFoundError) as missing:
        msi.user_assigned_identities.get("rg-id", "orders-api")
    assert missing.value.error.code == "ResourceNotFound"


def test_identity_errors(sandbox: Sandbox) -> None:
    msi = sandbox.msi()
    with pytest.raises(ResourceNotFoundError) as no_rg:
        msi.user_assigned_identities.create_or_update("rg-missing", "a-b-c", {"location": "westeurope"})
    assert no_rg.value.error.code == "ResourceGroupNotFound"
    sandbox.resource_group("rg-id")
    with pytest.raises(HttpResponseError) as bad_name:
        msi.user_assigned_identities.create_or_update("rg-id", "-bad", {"location": "westeurope"})
    assert bad_name.value.status_code == 400 and bad_name.value.error.code == "InvalidResourceName"
    no_location = sandbox.raw(
        "PUT", sandbox.rg_id("rg-id") + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/abc", {"tags": {}}
    )
    assert no_location.status_code == 400 and no_location.json()["error"]["code"] == "LocationRequired"
    msi.user_assigned_identities.create_or_update("rg-id", "abc", {"location": "westeurope"})
    with pytest.raises(HttpResponseError) as moved:
        msi.user_assigned_identities.create_or_update("rg-id", "abc", {"location": "eastus"})
    assert moved.value.error.code == "InvalidResourceLocation"


def test_identity_lists_page_with_next_link(sandbox: Sandbox) -> None:
    sandbox.control.configure({"page_size": 5})
    sandbox.resource_group("rg-a")
    sandbox.resource_group("rg-b")
    msi = sandbox.msi()
    for index in range(12):
        msi.user_assigned_identities.create_or_update(
            "rg-a" if index < 8 else "rg-b", f"id-{index:02d}", {"location": "westeurope"}
        )
    first_page = sandbox.raw(
        "GET", sandbox.rg_id("rg-a") + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    ).json()
    assert len(first_page["value"]) == 5 and "nextLink" in first_page
    assert len(list(msi.user_assigned_identities.list_by_resource_group("rg-a"))) == 8
    assert len(list(msi.user_assigned_identities.list_by_subscription())) == 12


def test_fic_lifecycle_and_update_in_place(sandbox: Sandbox) -> None:
    sandbox.resource_group("rg-id")
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-id", "orders-api", {"location": "westeurope"})
    fics = msi.federated_identity_credentials
    created = fics.create_or_update("rg-id", "orders-api", "aks-dev", fic("system:serviceaccount:orders:api"))
    assert created.type == "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    assert created.issuer == ISSUER and created.audiences == AUDIENCE
    updated = fics.create_or_update("rg-id", "orders-api", "aks-dev", fic("system:serviceaccount:orders:api2"))
    assert updated.subject == "system:serviceaccount:orders:api2"
    assert [f.name for f in fics.list("rg-id", "orders-api")] == ["aks-dev"]
    assert fics.get("rg-id", "orders-api", "aks-dev").subject == "system:serviceaccount:orders:api2"
    fics.delete("rg-id", "orders-api", "aks-dev")
    fics.delete("rg-id", "orders-api", "aks-dev")  # 204 the second time, no error
    with pytest.raises(ResourceNotFoundError):
        fics.get("rg-id", "orders-api", "aks-dev")
    with pytest.raises(ResourceNotFoundError):
        fics.create_or_update("rg-id", "no-such-identity", "aks-dev", fic("s"))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("ab", fic("s")),  # too short
        ("ends-with=", fic("s")),
        ("-leading", fic("s")),
        ("x" * 121, fic("s")),
        ("long-subject", fic("s" * 601)),
        ("long-issuer", fic("s", "https://" + "i" * 600)),
        ("http-issuer", fic("s", "http://insecure/")),
        ("two-audiences", {"issuer": ISSUER, "subject": "s", "audiences": ["a", "b"]}),
        ("no-audience", {"issuer": ISSUER, "subject": "s", "audiences": []}),
    ],
)
def test_fic_validation(sandbox: Sandbox, name: str, body: dict[str, object]) -> None:
    sandbox.resource_group("rg-id")
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-id", "orders-api", {"location": "westeurope"})
    with pytest.raises(HttpResponseError) as rejected:
        msi.federated_identity_credentials.create_or_update("rg-id", "orders-api", name, body)
    assert rejected.value.status_code == 400


def test_fic_limit_and_uniqueness(sandbox: Sandbox) -> None:
    sandbox.control.configure({"fic_write_seconds": 0})
    sandbox.resource_group("rg-id")
    msi = sandbox.msi()
    msi.user_assigned_identities.create_or_update("rg-id", "busy", {"location": "westeurope"})
    fics = msi.federated_identity_credentials
    for index in range(20):
        fics.create_or_update("rg-id", "busy", f"fic-{index:02d}", fic(f"system:serviceaccount:ns:sa{index}"))
    with pytest.raises(HttpResponseError) as full:
        fics.create_or_update("rg-id", "busy", "fic-20", fic("system:serviceaccount:ns:sa20"))
    assert full.value.status_code == 400 and "at most 20" in full.value.error.message
    # Updating one of the twenty is still allowed.
    fics.create_or_update("rg-id", "busy", "fic-00", fic("system:serviceaccount:ns:renamed"))
    with pytest.raises(HttpResponseError) as duplicate:
        fics.create_or_update("rg-id", "busy", "fic-01", fic("system:serviceaccount:ns:sa2"))
    assert duplicate.value.status_code == 400 and "unique" in duplicate.value.error.message
    assert len(list(fics.list("rg-id", "busy", top=7))) == 20


def test_concurrent_fic_writes_on_one_identity_conflict(sandbox: Sandbox) -> None:
    sandbox.control.configure({"fic_write_seconds": 1.0})
    sandbox.resource_group("rg-id")
    msi = sandbox.msi()
    for name in ("one", "two"):
        msi.user_assigned_identities.create_or_update("rg-id", name, {"location": "westeurope"})
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def write(identity: str, fic_name: str) -> None:
        client = sandbox.msi()
        client.user_assigned_identities.get("rg-id", identity)  # token + connection ready before the race
        barrier.wait()
        try:
            client.federated_identity_credentials.create_or_update(
                "rg-id", identity, fic_name, fic(f"system:serviceaccount:ns:{fic_name}")
            )
            outcomes[fic_name] = "ok"
        except ResourceExistsError as exc:
            outcomes[fic_name] = exc.error.code

    threads = [threading.Thread(target=write, args=("one", n)) for n in ("a-1", "a-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity", "ok"]
    # Different identities in parallel are fine, and so are sequential writes on one identity.
    outcomes.clear()
    barrier.reset()
    threads = [threading.Thread(target=write, args=args) for args in (("one", "b-1"), ("two", "b-2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {"b-1": "ok", "b-2": "ok"}
    sandbox.control.configure({"fic_write_seconds": 0.2})
    for index in range(3):
        msi.federated_identity_credentials.create_or_update(
            "rg-id", "two", f"seq-{index}", fic(f"system:serviceaccount:ns:seq{index}")
        )


def test_deleting_identity_removes_fics_and_principal_but_keeps_assignments(sandbox: Sandbox) -> None:
    rg = sandbox.resource_group("rg-id")
    msi = sandbox.msi()
    identity = msi.user_assigned_identities.create_or_update("rg-id", "gone", {"location": "westeurope"})
    msi.federated_identity_credentials.create_or_update("rg-id", "gone", "aks", fic("system:serviceaccount:a:b"))
    authz = sandbox.authz()
    authz.role_assignments.create(
        rg,
        str(uuid.uuid4()),
        {
            "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": identity.principal_id,
            "principal_type": "ServicePrincipal",
        },
    )
    msi.user_assigned_identities.delete("rg-id", "gone")
    left = list(authz.role_assignments.list_for_scope(rg, filter=f"principalId eq '{identity.principal_id}'"))
    assert len(left) == 1
    msi.user_assigned_identities.create_or_update("rg-id", "gone", {"location": "westeurope"})
    assert list(msi.federated_identity_credentials.list("rg-id", "gone")) == []
