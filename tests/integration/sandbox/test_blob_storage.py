"""Blob storage's data plane in the sandbox, through a real client: azure-storage-blob at
https://<account>.blob.core.windows.net (through the public-hostnames proxy), with Entra tokens only, authorized by
the data actions of the caller's role assignments; plain requests for what the SDK hides."""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from tests.integration.sandbox_helpers import Sandbox
from tests.sandbox.demo import ensure_resource_chain

from .test_rbac import assign


def container(sandbox: Sandbox, account: str, name: str) -> str:
    sandbox.resource_group("rg-blobs")
    scope = f"{sandbox.rg_id('rg-blobs')}/providers/Microsoft.Storage/storageAccounts/{account}"
    scope += f"/blobServices/default/containers/{name}"
    ensure_resource_chain(sandbox.url, sandbox.ca, sandbox.token(), scope)
    return scope


def blobs(sandbox: Sandbox, principal: dict[str, str], account: str, name: str) -> list[str]:
    service = BlobServiceClient(
        f"https://{account}.blob.core.windows.net",
        sandbox.credential(principal["client_id"], principal["client_secret"]),
        connection_verify=sandbox.ca,
        proxies={"https": sandbox.env["SANDBOX_HTTPS_PROXY"]},
    )
    return [b.name for b in service.get_container_client(name).list_blobs()]


def test_a_containers_blobs_are_listed_by_a_role_on_it_and_refused_elsewhere(sandbox: Sandbox) -> None:
    orders = container(sandbox, "storders", "orders")
    container(sandbox, "storders", "audit")
    reader = sandbox.control.create_principal(display_name="reader")
    assign(sandbox, orders, "Storage Blob Data Reader", reader["principal_id"])
    assert blobs(sandbox, reader, "storders", "orders") == []
    with pytest.raises(HttpResponseError) as refused:
        blobs(sandbox, reader, "storders", "audit")
    assert refused.value.status_code == 403 and refused.value.error_code == "AuthorizationPermissionMismatch"
    with pytest.raises(ResourceNotFoundError):
        blobs(sandbox, reader, "storders", "nothere")
    # A role at the account covers its containers; a control-plane role (Reader) covers no data.
    account = orders.partition("/blobServices/")[0]
    outsider = sandbox.control.create_principal(display_name="reader-of-arm")
    assign(sandbox, account, "Reader", outsider["principal_id"])
    with pytest.raises(HttpResponseError):
        blobs(sandbox, outsider, "storders", "orders")
    assign(sandbox, account, "Storage Blob Data Reader", outsider["principal_id"])
    assert blobs(sandbox, outsider, "storders", "audit") == []


def test_no_token_another_audience_or_an_old_version_is_refused(sandbox: Sandbox) -> None:
    container(sandbox, "stauth", "data")
    url = f"{sandbox.url}/dataplane/blob/stauth/data?restype=container&comp=list"
    anonymous = requests.get(url, verify=sandbox.ca, timeout=30, headers={"x-ms-version": "2025-01-05"})
    assert anonymous.status_code == 401 and anonymous.headers["x-ms-error-code"] == "NoAuthenticationInformation"
    assert "resource_id=https://storage.azure.com" in anonymous.headers["WWW-Authenticate"]
    arm = {"Authorization": f"Bearer {sandbox.token()}", "x-ms-version": "2025-01-05"}
    assert requests.get(url, verify=sandbox.ca, timeout=30, headers=arm).status_code == 401
    token = sandbox.credential().get_token("https://storage.azure.com/.default").token
    old = {"Authorization": f"Bearer {token}", "x-ms-version": "2017-04-17"}
    assert (
        requests.get(url, verify=sandbox.ca, timeout=30, headers=old).headers["x-ms-error-code"]
        == "AuthenticationFailed"
    )
    # The subscription's Owner manages the account and reads none of its data (no data action).
    owner = {"Authorization": f"Bearer {token}", "x-ms-version": "2025-01-05"}
    denied = requests.get(url, verify=sandbox.ca, timeout=30, headers=owner)
    assert denied.status_code == 403 and "<Code>AuthorizationPermissionMismatch</Code>" in denied.text
