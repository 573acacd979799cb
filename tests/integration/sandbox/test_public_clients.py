"""What clients with fixed endpoints and default options meet: Azure's public hostnames through the sandbox's
proxy, gzip request bodies (kiota), Graph's own rules for an application's credential name, role definitions
read at the root scope, and the tenant read from ARM's 401 challenge.

azwi, a real client of this kind, runs against all of it in tests/integration/kube/test_unmodified_azwi.py; these tests
pin each behaviour on its own, with plain requests.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import ssl
from typing import Any

import pytest
import requests

from tests.integration.sandbox_helpers import Sandbox

AZWI_NAME = "jETJYPvGx2qXOtJVh0M92JW1G7hELl0O4sVHX-hn9mo="  # base64url(sha256(...)) with '=' padding
ISSUER = "https://issuer.example/"


def through_proxy(sandbox: Sandbox) -> dict[str, str]:
    return {"https": sandbox.env["SANDBOX_HTTPS_PROXY"]}


def test_the_public_hostnames_answer_through_the_proxy(sandbox: Sandbox) -> None:
    proxies = through_proxy(sandbox)
    tenant = sandbox.tenant_id
    # Entra at login.microsoftonline.com: discovery, then a token for Graph's public audience.
    discovery = requests.get(
        f"https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration",
        proxies=proxies,
        verify=sandbox.ca,
        timeout=30,
    )
    assert discovery.status_code == 200 and discovery.json()["token_endpoint"].endswith("/oauth2/v2.0/token")
    token = requests.post(
        f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.env["AZURE_CLIENT_ID"],
            "client_secret": sandbox.env["AZURE_CLIENT_SECRET"],
            "scope": "https://graph.microsoft.com/.default",
        },
        proxies=proxies,
        verify=sandbox.ca,
        timeout=30,
    ).json()["access_token"]
    # Graph at graph.microsoft.com/v1.0 (the sandbox's /graph/v1.0).
    created = requests.post(
        "https://graph.microsoft.com/v1.0/applications",
        json={"displayName": "through-the-proxy"},
        headers={"Authorization": f"Bearer {token}"},
        proxies=proxies,
        verify=sandbox.ca,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert sandbox.graph("GET", f"/applications/{created.json()['id']}").json()["displayName"] == "through-the-proxy"
    # ARM at management.azure.com, with a token for its public audience.
    arm = requests.get(
        f"https://management.azure.com/subscriptions/{sandbox.subscription_id}?api-version=2022-12-01",
        headers={
            "Authorization": f"Bearer {sandbox.credential().get_token('https://management.azure.com/.default').token}"
        },
        proxies=proxies,
        verify=sandbox.ca,
        timeout=30,
    )
    assert arm.status_code == 200 and arm.json()["subscriptionId"] == sandbox.subscription_id


def test_the_proxy_presents_each_public_host_under_the_sandbox_ca_and_refuses_other_hosts(sandbox: Sandbox) -> None:
    proxy_port = int(sandbox.env["SANDBOX_HTTPS_PROXY"].rsplit(":", 1)[1])
    for host in ("management.azure.com", "graph.microsoft.com", "login.microsoftonline.com", "login.windows.net"):
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as raw:
            raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
            assert raw.recv(4096).startswith(b"HTTP/1.1 200")
            context = ssl.create_default_context(cafile=sandbox.ca)
            with context.wrap_socket(raw, server_hostname=host) as tls:  # verifies the name against the certificate
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://example.com/", proxies=through_proxy(sandbox), timeout=10)
    # Loopback is tunnelled, for clients that proxy it (the sandbox's own URL here).
    health = requests.get(
        sandbox.url + "/_sandbox/health", proxies=through_proxy(sandbox), verify=sandbox.ca, timeout=10
    )
    assert health.status_code == 200


def test_the_tenant_is_read_from_arms_401_challenge(sandbox: Sandbox) -> None:
    # azwi's way (and the Go SDK's tenant discovery): an unauthenticated read of the subscription.
    response = requests.get(
        f"https://management.azure.com/subscriptions/{sandbox.subscription_id}?api-version=2021-01-01",
        headers={"Authorization": "Bearer "},
        proxies=through_proxy(sandbox),
        verify=sandbox.ca,
        timeout=30,
    )
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    found = re.search(r'authorization_uri=".*/([0-9a-f\-]+)"', challenge)
    assert found and found.group(1) == sandbox.tenant_id
    assert f'authorization_uri="https://login.windows.net/{sandbox.tenant_id}"' in challenge


def gzipped(body: Any) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def test_graph_takes_gzip_request_bodies(sandbox: Sandbox) -> None:
    headers = {
        "Authorization": f"Bearer {sandbox.graph_token()}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    created = requests.post(
        f"{sandbox.graph_url}/v1.0/applications",
        data=gzipped({"displayName": "compressed"}),
        headers=headers,
        verify=sandbox.ca,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.json()["displayName"] == "compressed"
    # Another encoding: 415, what kiota resends a plain body on.
    other = requests.post(
        f"{sandbox.graph_url}/v1.0/applications",
        data=b"not-brotli",
        headers={**headers, "Content-Encoding": "br"},
        verify=sandbox.ca,
        timeout=30,
    )
    assert other.status_code == 415 and other.json()["error"]["code"] == "UnsupportedMediaType"
    # A body that is no JSON: Graph's own 400 (with innerError), not ARM's InvalidRequestContent.
    garbled = requests.post(
        f"{sandbox.graph_url}/v1.0/applications",
        data=gzip.compress(b"{not json"),
        headers=headers,
        verify=sandbox.ca,
        timeout=30,
    )
    error = garbled.json()["error"]
    assert garbled.status_code == 400 and error["code"] == "BadRequest" and "innerError" in error
    assert error["message"].startswith("Unable to read JSON request payload.")


def test_arm_and_the_token_endpoint_answer_415_to_gzip_bodies(sandbox: Sandbox) -> None:
    rg = requests.put(
        f"{sandbox.url}/subscriptions/{sandbox.subscription_id}/resourcegroups/rg-gzip?api-version=2022-09-01",
        data=gzipped({"location": "westeurope"}),
        headers={
            "Authorization": f"Bearer {sandbox.token()}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        verify=sandbox.ca,
        timeout=30,
    )
    assert rg.status_code == 415 and rg.json()["error"]["code"] == "UnsupportedMediaType"
    assert sandbox.raw("GET", f"/subscriptions/{sandbox.subscription_id}/resourcegroups/rg-gzip").status_code == 404
    form = (
        f"grant_type=client_credentials&client_id={sandbox.env['AZURE_CLIENT_ID']}"
        f"&client_secret={sandbox.env['AZURE_CLIENT_SECRET']}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
    )
    token = requests.post(
        f"{sandbox.url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data=gzip.compress(form.encode()),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"},
        verify=sandbox.ca,
        timeout=30,
    )
    assert token.status_code == 415


def test_an_application_credential_takes_graphs_name_rule_not_the_managed_identity_pattern(sandbox: Sandbox) -> None:
    app = sandbox.graph("POST", "/applications", {"displayName": "named-like-azwi"}).json()
    path = f"/applications/{app['id']}/federatedIdentityCredentials"

    def create(name: str, subject: str) -> requests.Response:
        body = {"name": name, "issuer": ISSUER, "subject": subject, "audiences": ["api://AzureADTokenExchange"]}
        return sandbox.graph("POST", path, body)

    assert create(AZWI_NAME, "system:serviceaccount:a:a").status_code == 201
    assert create("x" * 120, "system:serviceaccount:b:b").status_code == 201
    assert create("ab", "system:serviceaccount:c:c").status_code == 201  # shorter than ARM's three
    for refused in ("x" * 121, "", "has space", "a/b", "q?x", "hash#", "per%20cent"):
        response = create(refused, f"system:serviceaccount:r:{len(refused)}")
        assert response.status_code == 400, refused
        assert response.json()["error"]["message"] == (
            "Invalid value specified for property 'name' of resource 'FederatedIdentityCredential'."
        )
    assert sandbox.graph("GET", f"{path}/{AZWI_NAME}").json()["name"] == AZWI_NAME
    # A managed identity keeps ARM's pattern: the same name is refused there.
    sandbox.resource_group("rg-names")
    identity = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg-names/providers/Microsoft.ManagedIdentity"
    assert sandbox.raw("PUT", f"{identity}/userAssignedIdentities/id-names", {"location": "westeurope"}).ok
    refused = sandbox.raw(
        "PUT",
        f"{identity}/userAssignedIdentities/id-names/federatedIdentityCredentials/{AZWI_NAME}",
        {
            "properties": {
                "issuer": ISSUER,
                "subject": "system:serviceaccount:a:a",
                "audiences": ["api://AzureADTokenExchange"],
            }
        },
    )
    assert refused.status_code == 400


def test_role_definitions_are_read_at_the_root_scope_by_a_principal_scoped_to_a_subscription(sandbox: Sandbox) -> None:
    sub = f"/subscriptions/{sandbox.subscription_id}"
    contributor = sandbox.control.create_principal(
        display_name="sub-only", roles=[{"role": "Contributor", "scope": sub}]
    )
    token = sandbox.credential(contributor["client_id"], contributor["client_secret"]).get_token(
        sandbox.url + "/.default"
    )
    listed = sandbox.raw(
        "GET",
        "/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Storage Blob Data Reader'",
        token=token.token,
        api_version="2022-04-01",
    )
    assert listed.status_code == 200, listed.text
    [definition] = listed.json()["value"]
    assert definition["id"] == (
        "/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
    )
    one = sandbox.raw("GET", definition["id"], token=token.token, api_version="2022-04-01")
    assert one.status_code == 200 and one.json()["properties"]["roleName"] == "Storage Blob Data Reader"
    # Writing there still takes the permission.
    custom = sandbox.raw(
        "PUT",
        "/providers/Microsoft.Authorization/roleDefinitions/5c8e1d3a-4b2f-4e6a-9c7d-0a1b2c3d4e5f",
        {"properties": {"roleName": "custom", "permissions": [{"actions": []}], "assignableScopes": ["/"]}},
        token=token.token,
        api_version="2022-04-01",
    )
    assert custom.status_code == 403
