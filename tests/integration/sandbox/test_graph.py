"""Microsoft Graph in the sandbox, over plain HTTP: what a Graph client sees, status by status and body by body."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from azure.identity import WorkloadIdentityCredential

from tests.integration.sandbox_helpers import Sandbox

AUDIENCE = "api://AzureADTokenExchange"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
UPSERT = {"Prefer": "create-if-missing"}


def created(sandbox: Sandbox, name: str, token: str | None = None, **extra: Any) -> dict[str, Any]:
    response = sandbox.graph("POST", "/applications", {"displayName": name, **extra}, token=token)
    assert response.status_code == 201, response.text
    return dict(response.json())


def error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    # Graph's error shape: the request id of the header, again in innerError.
    assert body["innerError"]["request-id"] == response.headers["request-id"]
    assert body["innerError"]["date"]
    return str(body["message"])


def test_tokens_are_per_service_and_carry_graph_roles(sandbox: Sandbox) -> None:
    from tests.sandbox import jwt

    graph_token = sandbox.graph_token()
    _header, claims = jwt.unverified(graph_token)
    assert claims["aud"].rstrip("/") == sandbox.graph_url and claims["roles"] == ["Application.ReadWrite.All"]
    public = sandbox.credential().get_token("https://graph.microsoft.com/.default").token
    assert sandbox.graph("GET", "/applications", token=public).status_code == 200
    # An ARM token is not a Graph token, and the reverse.
    arm = sandbox.token()
    assert "Invalid audience" in error(
        sandbox.graph("GET", "/applications", token=arm), 401, "InvalidAuthenticationToken"
    )
    refused = sandbox.raw("GET", f"/subscriptions/{sandbox.subscription_id}/resourcegroups", token=graph_token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    error(sandbox.graph("GET", "/applications", token=""), 401, "InvalidAuthenticationToken")


def test_applications_crud_filter_select_and_paging(sandbox: Sandbox) -> None:
    apps = [created(sandbox, f"orders-{i}") for i in range(5)] + [created(sandbox, "billing")]
    first = apps[0]
    assert first["appId"] != first["id"] and first["uniqueName"] is None and first["signInAudience"] == "AzureADMyOrg"
    by_app_id = sandbox.graph("GET", f"/applications(appId='{first['appId']}')").json()
    assert by_app_id["id"] == first["id"] and by_app_id["@odata.context"].endswith("#applications/$entity")
    listed = sandbox.graph("GET", "/applications?$filter=startswith(displayName,'orders-')&$select=id,displayName")
    assert sorted(a["displayName"] for a in listed.json()["value"]) == [f"orders-{i}" for i in range(5)]
    assert set(listed.json()["value"][0]) == {"id", "displayName"}
    exact = sandbox.graph("GET", f"/applications?$filter=appId eq '{first['appId']}'").json()["value"]
    assert [a["id"] for a in exact] == [first["id"]]
    # Paging: $top pages, @odata.nextLink carries an opaque $skiptoken, the last page has none.
    seen, url = [], "/applications?$top=4"
    while url:
        body = sandbox.graph("GET", url).json()
        seen += [a["id"] for a in body["value"]]
        url = body.get("@odata.nextLink")
        assert len(body["value"]) <= 4
    assert sorted(seen) == sorted(a["id"] for a in apps)
    error(sandbox.graph("GET", "/applications?$top=1000"), 400, "Request_BadRequest")
    error(sandbox.graph("GET", "/applications?$filter=notes eq 'x'"), 400, "Request_UnsupportedQuery")
    assert sandbox.graph("PATCH", f"/applications/{first['id']}", {"notes": "owned by team orders"}).status_code == 204
    assert sandbox.graph("GET", f"/applications/{first['id']}").json()["notes"] == "owned by team orders"
    error(sandbox.graph("PATCH", f"/applications/{first['id']}", {"appId": "x"}), 400, "Request_BadRequest")
    missing = sandbox.graph("GET", "/applications/00000000-0000-0000-0000-000000000001")
    assert "does not exist" in error(missing, 404, "Request_ResourceNotFound")


def test_upsert_by_unique_name_creates_once_then_updates(sandbox: Sandbox) -> None:
    path = "/applications(uniqueName='aks-dev-orders-orders-api')"
    error(sandbox.graph("PATCH", path, {"displayName": "orders-api"}), 404, "Request_ResourceNotFound")
    made = sandbox.graph("PATCH", path, {"displayName": "orders-api"}, headers=UPSERT)
    assert made.status_code == 201 and made.json()["uniqueName"] == "aks-dev-orders-orders-api"
    again = sandbox.graph("PATCH", path, {"displayName": "orders-api", "notes": "n"}, headers=UPSERT)
    assert again.status_code == 204 and not again.content
    assert len(sandbox.graph("GET", "/applications?$filter=displayName eq 'orders-api'").json()["value"]) == 1
    own = made.json()["id"]
    error(sandbox.graph("PATCH", f"/applications/{own}", {"uniqueName": "other"}), 400, "Request_BadRequest")
    clash = sandbox.graph("POST", "/applications", {"displayName": "x", "uniqueName": "aks-dev-orders-orders-api"})
    error(clash, 409, "Request_MultipleObjectsWithSameKeyValue")


def test_service_principals_one_per_app_found_the_ways_clients_look(sandbox: Sandbox) -> None:
    app = created(sandbox, "orders-api")
    sp = sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert sp.status_code == 201 and sp.json()["servicePrincipalType"] == "Application"
    error(
        sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]}),
        409,
        "Request_MultipleObjectsWithSameKeyValue",
    )
    error(
        sandbox.graph("POST", "/servicePrincipals", {"appId": "5c8bd1a6-0000-4000-8000-000000000000"}),
        400,
        "Request_BadRequest",
    )
    by_key = sandbox.graph("GET", f"/servicePrincipals(appId='{app['appId']}')").json()
    assert by_key["id"] == sp.json()["id"]
    # How `az role assignment create --assignee <appId>` resolves it.
    spn = sandbox.graph("GET", f"/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{app['appId']}')")
    assert [s["id"] for s in spn.json()["value"]] == [by_key["id"]]
    # Upsert by appId: updates the existing one (204), creates for an app without one (201).
    assert (
        sandbox.graph(
            "PATCH", f"/servicePrincipals(appId='{app['appId']}')", {"tags": ["t"]}, headers=UPSERT
        ).status_code
        == 204
    )
    other = created(sandbox, "billing")
    assert (
        sandbox.graph("PATCH", f"/servicePrincipals(appId='{other['appId']}')", {}, headers=UPSERT).status_code == 201
    )
    # A managed identity's service principal is in the same directory.
    sandbox.resource_group("rg-ids")
    identity = sandbox.msi().user_assigned_identities.create_or_update(
        "rg-ids", "id-orders", {"location": "westeurope"}
    )
    mi = sandbox.graph("GET", f"/servicePrincipals(appId='{identity.client_id}')").json()
    assert mi["id"] == identity.principal_id and mi["servicePrincipalType"] == "ManagedIdentity"
    assert mi["alternativeNames"][1].lower().endswith("/userassignedidentities/id-orders")


def test_soft_delete_restore_and_permanent_delete(sandbox: Sandbox) -> None:
    app = created(sandbox, "orders-api", uniqueName="orders")
    sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert sandbox.graph("DELETE", f"/applications/{app['id']}").status_code == 204
    error(sandbox.graph("GET", f"/applications/{app['id']}"), 404, "Request_ResourceNotFound")
    # Deleting the application takes its service principal with it.
    error(sandbox.graph("GET", f"/servicePrincipals(appId='{app['appId']}')"), 404, "Request_ResourceNotFound")
    deleted = sandbox.graph("GET", "/directory/deletedItems/microsoft.graph.application").json()["value"]
    assert [d["id"] for d in deleted] == [app["id"]] and deleted[0]["deletedDateTime"]
    restored = sandbox.graph("POST", f"/directory/deletedItems/{app['id']}/restore")
    assert restored.status_code == 200 and restored.json()["appId"] == app["appId"]
    assert sandbox.graph("GET", "/applications(uniqueName='orders')").json()["id"] == app["id"]
    # The service principal is restored on its own, as in Entra.
    principals = sandbox.graph("GET", "/directory/deletedItems/microsoft.graph.servicePrincipal").json()["value"]
    assert [p["appId"] for p in principals] == [app["appId"]]
    assert sandbox.graph("POST", f"/directory/deletedItems/{principals[0]['id']}/restore").status_code == 200
    assert sandbox.graph("DELETE", f"/applications/{app['id']}").status_code == 204
    assert sandbox.graph("DELETE", f"/directory/deletedItems/{app['id']}").status_code == 204
    error(sandbox.graph("POST", f"/directory/deletedItems/{app['id']}/restore"), 404, "Request_ResourceNotFound")


def test_federated_credentials_on_applications(sandbox: Sandbox) -> None:
    app = created(sandbox, "orders-api")
    base = f"/applications/{app['id']}/federatedIdentityCredentials"
    fic = {
        "name": "aks-dev",
        "issuer": "https://oidc.example/t/c/",
        "subject": "system:serviceaccount:o:a",
        "audiences": [AUDIENCE],
    }
    made = sandbox.graph("POST", base, fic)
    assert made.status_code == 201 and made.json()["name"] == "aks-dev" and made.json()["id"]
    assert sandbox.graph("GET", f"{base}/{made.json()['id']}").json()["subject"] == fic["subject"]
    assert sandbox.graph("GET", f"{base}/aks-dev").json()["id"] == made.json()["id"]  # by name, as az asks
    dup_name = sandbox.graph("POST", base, {**fic, "subject": "system:serviceaccount:o:b"})
    assert "with name aks-dev already exists" in error(dup_name, 409, "Request_MultipleObjectsWithSameKeyValue")
    dup_trust = sandbox.graph("POST", base, {**fic, "name": "other"})
    assert "must be unique for the application" in error(dup_trust, 400, "InvalidFederatedIdentityCredentialValue")
    for field, bad in (("name", "a/b"), ("issuer", "http://oidc.example/"), ("subject", ""), ("audiences", ["a", "b"])):
        message = error(
            sandbox.graph("POST", base, {**fic, "name": "n-" + field, field: bad}), 400, "Request_BadRequest"
        )
        assert f"property '{field}'" in message
    # Upsert by name, and an update that keeps the name.
    by_name = f"/applications/{app['id']}/federatedIdentityCredentials(name='aks-prod')"
    error(
        sandbox.graph("PATCH", by_name, {**fic, "name": "aks-prod", "subject": "s2"}), 404, "Request_ResourceNotFound"
    )
    upserted = sandbox.graph("PATCH", by_name, {**fic, "subject": "system:serviceaccount:o:p"}, headers=UPSERT)
    assert upserted.status_code == 201 and upserted.json()["name"] == "aks-prod"
    assert sandbox.graph("PATCH", by_name, {"subject": "system:serviceaccount:o:q"}).status_code == 204
    assert sandbox.graph("GET", by_name).json()["subject"] == "system:serviceaccount:o:q"
    listed = sandbox.graph("GET", base).json()["value"]
    assert sorted(f["name"] for f in listed) == ["aks-dev", "aks-prod"]
    for i in range(18):
        assert sandbox.graph("POST", base, {**fic, "name": f"c{i:02}", "subject": f"s{i}"}).status_code == 201
    error(sandbox.graph("POST", base, {**fic, "name": "c99", "subject": "s99"}), 400, "Request_BadRequest")
    assert sandbox.graph("DELETE", f"{base}/{made.json()['id']}").status_code == 204
    error(sandbox.graph("GET", f"{base}/aks-dev"), 404, "Request_ResourceNotFound")


def test_least_privilege_owned_by(sandbox: Sandbox) -> None:
    admin_app = created(sandbox, "someone-elses")
    owned_by = sandbox.control.create_principal(
        display_name="automation", graph_roles=["Application.ReadWrite.OwnedBy"]
    )
    token = sandbox.graph_token(owned_by["client_id"], owned_by["client_secret"])
    mine = created(sandbox, "mine", token=token)
    owners = sandbox.graph("GET", f"/applications/{mine['id']}/owners", token=token).json()["value"]
    assert [o["appId"] for o in owners] == [owned_by["client_id"]]
    assert sandbox.graph("PATCH", f"/applications/{mine['id']}", {"notes": "n"}, token=token).status_code == 204
    fic = {"name": "fic-1", "issuer": "https://i.example/", "subject": "s", "audiences": [AUDIENCE]}
    assert (
        sandbox.graph("POST", f"/applications/{mine['id']}/federatedIdentityCredentials", fic, token=token).status_code
        == 201
    )
    assert sandbox.graph("POST", "/servicePrincipals", {"appId": mine["appId"]}, token=token).status_code == 201
    # Someone else's application: neither readable nor writable, and not listed.
    error(sandbox.graph("GET", f"/applications/{admin_app['id']}", token=token), 403, "Authorization_RequestDenied")
    error(
        sandbox.graph("PATCH", f"/applications/{admin_app['id']}", {"notes": "x"}, token=token),
        403,
        "Authorization_RequestDenied",
    )
    error(
        sandbox.graph("POST", "/servicePrincipals", {"appId": admin_app["appId"]}, token=token),
        403,
        "Authorization_RequestDenied",
    )
    listed = sandbox.graph("GET", "/applications", token=token).json()["value"]
    assert [a["id"] for a in listed] == [mine["id"]]
    # No Graph permission at all: refused.
    nothing = sandbox.control.create_principal(display_name="nothing")
    bare = sandbox.graph_token(nothing["client_id"], nothing["client_secret"])
    error(sandbox.graph("GET", "/applications", token=bare), 403, "Authorization_RequestDenied")
    error(sandbox.graph("POST", "/applications", {"displayName": "x"}, token=bare), 403, "Authorization_RequestDenied")
    # Read-only: reads everything, writes nothing.
    sandbox.control.set_graph_roles(nothing["principal_id"], ["Application.Read.All"])
    reader = sandbox.graph_token(nothing["client_id"], nothing["client_secret"])
    assert sandbox.graph("GET", f"/applications/{admin_app['id']}", token=reader).status_code == 200
    error(sandbox.graph("DELETE", f"/applications/{admin_app['id']}", token=reader), 403, "Authorization_RequestDenied")


def test_throttling_and_replication_lag(sandbox: Sandbox) -> None:
    sandbox.control.configure({"throttling": True, "buckets": {"graph": [3, 0.5]}})
    token = sandbox.graph_token()
    answers = [sandbox.graph("GET", "/applications", token=token) for _attempt in range(5)]
    throttled = [a for a in answers if a.status_code == 429]
    assert throttled and int(throttled[0].headers["Retry-After"]) >= 1
    error(throttled[0], 429, "TooManyRequests")
    # A window no loaded machine outruns for the reads that must land inside it...
    sandbox.control.configure({"throttling": False, "graph_replication_seconds": 120})
    app = created(sandbox, "just-made")
    error(sandbox.graph("GET", f"/applications/{app['id']}"), 404, "Request_ResourceNotFound")
    assert sandbox.graph("GET", "/applications?$filter=displayName eq 'just-made'").json()["value"] == []
    # Its service principal cannot be made yet either (Graph's own answer to this race).
    early = sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert "does not reference a valid application object" in error(early, 400, "Request_BadRequest")
    # ...then a short one, polled until it has passed: the object is there once replicated.
    sandbox.control.configure({"graph_replication_seconds": 1.0})
    deadline = time.monotonic() + 60
    while sandbox.graph("GET", f"/applications/{app['id']}").status_code == 404:
        assert time.monotonic() < deadline, "still not replicated after 60 s"
        time.sleep(0.2)
    assert sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]}).status_code == 201


def test_a_new_service_principal_is_unknown_to_arm_until_replicated(sandbox: Sandbox) -> None:
    app = created(sandbox, "orders-api")
    sp = sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]}).json()
    rg = sandbox.resource_group("rg-app")
    body = {
        "properties": {
            "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            "principalId": sp["id"],
        }
    }
    path = f"{rg}/providers/Microsoft.Authorization/roleAssignments/1b8f6d3e-8e9f-4d69-9f3a-5b8c0e1d2f31"
    early = sandbox.raw("PUT", path, body, api_version="2022-04-01")
    assert early.status_code == 400 and early.json()["error"]["code"] == "PrincipalNotFound"
    body["properties"]["principalType"] = "ServicePrincipal"
    assert sandbox.raw("PUT", path, body, api_version="2022-04-01").status_code == 201


def test_an_application_signs_in_with_its_federated_credential(sandbox: Sandbox, tmp_path: Path) -> None:
    cluster = sandbox.control.seed_cluster("rg-aks", "aks-dev", oidc_issuer_enabled=True)
    app = created(sandbox, "orders-api")
    sp = sandbox.graph("POST", "/servicePrincipals", {"appId": app["appId"]}).json()
    subject = "system:serviceaccount:orders:orders-api"
    fic = {"name": "aks-dev", "issuer": cluster["issuer_url"], "subject": subject, "audiences": [AUDIENCE]}
    assert sandbox.graph("POST", f"/applications/{app['id']}/federatedIdentityCredentials", fic).status_code == 201
    sandbox.resource_group("rg-app")
    sandbox.authz().role_assignments.create(
        sandbox.rg_id("rg-app"),
        "2c6f9a0e-1d2b-4c3d-8e4f-5a6b7c8d9e0f",
        {
            "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": sp["id"],
            "principal_type": "ServicePrincipal",
        },
    )
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.sign_assertion(cluster["signing_key_pem"], cluster["issuer_url"], subject))
    credential = WorkloadIdentityCredential(
        tenant_id=sandbox.tenant_id,
        client_id=app["appId"],
        token_file_path=str(token_file),
        authority=sandbox.url,
        connection_verify=sandbox.ca,
    )
    from tests.sandbox import jwt

    _header, claims = jwt.unverified(credential.get_token(sandbox.url + "/.default").token)
    assert claims["oid"] == sp["id"] and claims["appid"] == app["appId"]
    assert list(sandbox.msi(credential).user_assigned_identities.list_by_resource_group("rg-app")) == []
    # Another subject is not trusted (AADSTS70021), as for managed identities.
    token_file.write_text(
        sandbox.sign_assertion(cluster["signing_key_pem"], cluster["issuer_url"], "system:serviceaccount:orders:x")
    )
    with pytest.raises(Exception, match="AADSTS70021"):
        WorkloadIdentityCredential(
            tenant_id=sandbox.tenant_id,
            client_id=app["appId"],
            token_file_path=str(token_file),
            authority=sandbox.url,
            connection_verify=sandbox.ca,
        ).get_token(sandbox.url + "/.default")
