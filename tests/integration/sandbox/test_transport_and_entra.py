"""HTTPS transport, the Entra token endpoint and ARM's authentication, with azure-identity."""

from __future__ import annotations

import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import certifi
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox import jwt


def test_plain_http_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sandbox.url.replace("https://", "http://") + "/_sandbox/health", timeout=5)


def test_clients_must_trust_the_sandbox_ca(sandbox: Sandbox) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        # The public CA bundle, not REQUESTS_CA_BUNDLE (which the session points at the sandbox CA).
        requests.get(sandbox.url + "/_sandbox/health", verify=certifi.where(), timeout=10)
    context = ssl.create_default_context(cafile=sandbox.ca)
    port = int(sandbox.url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_two_hundred_concurrent_requests(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.resource_group("rg-load")

    def one(_index: int) -> int:
        response = requests.get(
            f"{sandbox.url}/subscriptions/{sandbox.subscription_id}/resourcegroups/rg-load?api-version=2022-09-01",
            headers={"Authorization": f"Bearer {token}"},
            verify=sandbox.ca,
            timeout=60,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200


def test_missing_api_version_is_rejected(sandbox: Sandbox) -> None:
    response = sandbox.raw("GET", f"/subscriptions/{sandbox.subscription_id}/resourcegroups", api_version=None)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


def test_openid_configuration(sandbox: Sandbox) -> None:
    doc = requests.get(
        f"{sandbox.url}/{sandbox.tenant_id}/v2.0/.well-known/openid-configuration", verify=sandbox.ca, timeout=10
    ).json()
    assert doc["token_endpoint"] == f"{sandbox.url}/{sandbox.tenant_id}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{sandbox.url}/{sandbox.tenant_id}/v2.0"
    unknown = requests.get(
        f"{sandbox.url}/00000000-0000-0000-0000-000000000001/v2.0/.well-known/openid-configuration",
        verify=sandbox.ca,
        timeout=10,
    )
    assert unknown.status_code == 400 and "AADSTS90002" in unknown.json()["error_description"]


def test_client_secret_token_carries_the_claims(sandbox: Sandbox) -> None:
    token = sandbox.credential().get_token(sandbox.url + "/.default")
    keys = requests.get(f"{sandbox.url}/{sandbox.tenant_id}/discovery/v2.0/keys", verify=sandbox.ca, timeout=10).json()
    claims = jwt.verify(token.token, jwt.public_from_jwk(keys["keys"][0]))
    assert claims["tid"] == sandbox.tenant_id
    assert claims["appid"] == sandbox.env["AZURE_CLIENT_ID"]
    assert claims["oid"] and claims["aud"] == sandbox.url
    assert claims["exp"] > time.time() + 3000
    assert token.expires_on == claims["exp"] or abs(token.expires_on - claims["exp"]) < 5


def test_wrong_secret_is_invalid_client(sandbox: Sandbox) -> None:
    raw = requests.post(
        f"{sandbox.url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        verify=sandbox.ca,
        timeout=10,
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.env["AZURE_CLIENT_ID"],
            "client_secret": "nope",
            "scope": sandbox.url + "/.default",
        },
    )
    assert raw.status_code == 401
    assert raw.json()["error"] == "invalid_client" and raw.json()["error_codes"] == [7000215]
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        sandbox.credential(secret="wrong").get_token(sandbox.url + "/.default")


def test_unknown_client_and_bad_scope(sandbox: Sandbox) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        sandbox.credential(client_id="11111111-2222-3333-4444-555555555555").get_token(sandbox.url + "/.default")
    with pytest.raises(ClientAuthenticationError, match="AADSTS1002012"):
        sandbox.credential().get_token(sandbox.url)


def test_arm_rejects_missing_foreign_and_expired_tokens(sandbox: Sandbox) -> None:
    path = f"/subscriptions/{sandbox.subscription_id}/resourcegroups"
    missing = sandbox.raw("GET", path, token="")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in missing.headers
    now = int(time.time())
    foreign = jwt.sign({"aud": sandbox.url, "tid": sandbox.tenant_id, "oid": "x", "exp": now + 600}, jwt.new_key())
    response = sandbox.raw("GET", path, token=foreign)
    assert response.status_code == 401 and response.json()["error"]["code"] == "InvalidAuthenticationToken"
    sandbox.control.configure({"token_lifetime_seconds": 1})
    short = (
        ClientSecretCredential(
            sandbox.tenant_id,
            sandbox.env["AZURE_CLIENT_ID"],
            sandbox.env["AZURE_CLIENT_SECRET"],
            authority=sandbox.url,
            disable_instance_discovery=True,
            connection_verify=sandbox.ca,
        )
        .get_token(sandbox.url + "/.default")
        .token
    )
    time.sleep(1.5)
    expired = sandbox.raw("GET", path, token=short)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "ExpiredAuthenticationToken"


def test_metadata_endpoints_for_cloud_registration(sandbox: Sandbox) -> None:
    cloud = requests.get(
        f"{sandbox.url}/metadata/endpoints?api-version=2022-09-01", verify=sandbox.ca, timeout=10
    ).json()
    assert cloud["resourceManager"] == sandbox.url + "/"
    assert cloud["authentication"]["loginEndpoint"] == sandbox.url + "/"
    assert isinstance(cloud["suffixes"], dict)
    all_clouds = requests.get(
        f"{sandbox.url}/metadata/endpoints?api-version=2019-05-01", verify=sandbox.ca, timeout=10
    ).json()
    assert isinstance(all_clouds, list) and all_clouds[0]["resourceManager"] == sandbox.url + "/"


def test_subscriptions_and_tenants(sandbox: Sandbox) -> None:
    subs = sandbox.raw("GET", "/subscriptions", api_version="2022-12-01").json()["value"]
    assert [s["subscriptionId"] for s in subs] == [sandbox.subscription_id]
    assert subs[0]["tenantId"] == sandbox.tenant_id and subs[0]["state"] == "Enabled"
    tenants = sandbox.raw("GET", "/tenants", api_version="2022-12-01").json()["value"]
    assert tenants[0]["tenantId"] == sandbox.tenant_id
    # A principal with no role anywhere sees no subscription.
    nobody = sandbox.control.create_principal()
    token = sandbox.credential(nobody["client_id"], nobody["client_secret"]).get_token(sandbox.url + "/.default").token
    assert sandbox.raw("GET", "/subscriptions", token=token, api_version="2022-12-01").json()["value"] == []
