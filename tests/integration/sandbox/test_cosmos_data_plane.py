"""Cosmos DB's data plane in the sandbox, through the real SDK (azure-cosmos) at https://<account>.documents.azure.com,
reached through the public-hostnames proxy: Entra tokens for the account's audience, authorized by the account's own
SQL role assignments (not ARM's), Cosmos DB's 403 with substatus 5301, items kept per partition key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.cosmos import CosmosClient, exceptions

from tests.integration.sandbox_helpers import Sandbox

from .test_cosmos_db import CONTRIBUTOR, READER, account, assignment
from .test_rbac import assign


@pytest.fixture
def public_hosts(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The account's public host, through the sandbox's proxy (the SDK's transport honours HTTPS_PROXY)."""
    monkeypatch.setenv("HTTPS_PROXY", sandbox.env["SANDBOX_HTTPS_PROXY"])
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca)
    yield


def items(sandbox: Sandbox, principal: dict[str, str]) -> Any:
    credential = sandbox.credential(principal["client_id"], principal["client_secret"])
    client = CosmosClient("https://cosmos-data.documents.azure.com:443/", credential, connection_verify=sandbox.ca)
    return client.get_database_client("orders").get_container_client("items")


def test_sql_roles_decide_what_a_principal_may_read_and_write_and_arm_roles_grant_nothing(
    sandbox: Sandbox, public_hosts: None
) -> None:
    client, made = account(sandbox, "cosmos-data")
    reader, writer, outsider = (sandbox.control.create_principal(display_name=n) for n in ("reader", "writer", "out"))
    assignment(
        client, "cosmos-data", f"{made.id}/sqlRoleDefinitions/{READER}", f"{made.id}/dbs/orders", reader["principal_id"]
    )
    assignment(
        client,
        "cosmos-data",
        f"{made.id}/sqlRoleDefinitions/{CONTRIBUTOR}",
        f"{made.id}/dbs/orders/colls/items",
        writer["principal_id"],
    )
    # An ARM role on the account, even Owner, reads no item.
    assign(sandbox, made.id, "Owner", outsider["principal_id"])

    written = items(sandbox, writer).create_item({"id": "order-1", "customer": "contoso", "total": 42})
    assert written["id"] == "order-1"
    container = items(sandbox, reader)
    assert container.read()["partitionKey"]["paths"] == ["/customer"]
    assert container.read_item("order-1", partition_key="contoso")["total"] == 42
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        container.read_item("order-1", partition_key="fabrikam")  # another partition's: not there
    with pytest.raises(exceptions.CosmosHttpResponseError) as refused:
        container.create_item({"id": "order-2", "customer": "contoso"})
    assert refused.value.status_code == 403 and refused.value.sub_status == 5301
    assert "does not have required RBAC permissions to perform action" in str(refused.value)
    assert "sqlDatabases/containers/items/create" in str(refused.value)
    with pytest.raises(exceptions.CosmosHttpResponseError) as outside:
        items(sandbox, outsider).read_item("order-1", partition_key="contoso")
    assert outside.value.status_code == 403 and outside.value.sub_status == 5301


def test_a_token_for_another_audience_and_a_key_are_refused(sandbox: Sandbox, public_hosts: None) -> None:
    account(sandbox, "cosmos-data")
    base = f"{sandbox.url}/dataplane/cosmos/cosmos-data/dbs/orders/colls/items"
    arm_token = sandbox.token()
    for authorization, message in (
        (f"type%3Daad%26ver%3D1.0%26sig%3D{arm_token}", "audience"),
        ("type%3Dmaster%26ver%3D1.0%26sig%3Dabc", "Local Authorization is disabled"),
        ("", "authorization is missing"),
    ):
        answer = requests.get(base, headers={"authorization": authorization}, verify=sandbox.ca, timeout=10)
        assert answer.status_code == 401 and message in answer.json()["message"], answer.text
    assert str(uuid.UUID(answer.headers["x-ms-activity-id"]))


def test_a_database_is_read_with_a_role_at_it_or_above_and_not_with_one_on_a_container(
    sandbox: Sandbox, public_hosts: None
) -> None:
    client, made = account(sandbox, "cosmos-data")
    at_db, at_container = (sandbox.control.create_principal(display_name=n) for n in ("db", "container"))
    reader = f"{made.id}/sqlRoleDefinitions/{READER}"
    assignment(client, "cosmos-data", reader, f"{made.id}/dbs/orders", at_db["principal_id"])
    assignment(client, "cosmos-data", reader, f"{made.id}/dbs/orders/colls/items", at_container["principal_id"])
    database = items(sandbox, at_db).client_connection.ReadDatabase("dbs/orders")
    assert database["id"] == "orders"
    with pytest.raises(exceptions.CosmosHttpResponseError) as refused:
        items(sandbox, at_container).client_connection.ReadDatabase("dbs/orders")
    assert refused.value.status_code == 403 and "on resource [dbs/orders]" in str(refused.value)
