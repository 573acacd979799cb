"""Cosmos DB's control plane in the sandbox, through a real client (azure-mgmt-cosmosdb): an account, its database and
container, its own role system (the two built-in SQL role definitions, custom ones, SQL role assignments at the
account, a database or a container), long-running writes polled as Cosmos DB's are, and the provider's own errors."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.cosmosdb import CosmosDBManagementClient

from tests.integration.sandbox_helpers import Sandbox

READER = "00000000-0000-0000-0000-000000000001"
CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


def cosmos(sandbox: Sandbox) -> CosmosDBManagementClient:
    return CosmosDBManagementClient(sandbox.credential(), sandbox.subscription_id, **sandbox.arm_kwargs())


def account(sandbox: Sandbox, name: str) -> tuple[CosmosDBManagementClient, Any]:
    sandbox.resource_group("rg-cosmos")
    client = cosmos(sandbox)
    body = {
        "location": "westeurope",
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "westeurope", "failoverPriority": 0}],
        },
    }
    made = client.database_accounts.begin_create_or_update("rg-cosmos", name, body, polling_interval=0).result()
    database = {"properties": {"resource": {"id": "orders"}}}
    client.sql_resources.begin_create_update_sql_database("rg-cosmos", name, "orders", database).result()
    container = {"properties": {"resource": {"id": "items", "partitionKey": {"paths": ["/customer"], "kind": "Hash"}}}}
    client.sql_resources.begin_create_update_sql_container("rg-cosmos", name, "orders", "items", container).result()
    return client, made


def assignment(client: CosmosDBManagementClient, name: str, role_id: str, scope: str, principal: str) -> Any:
    body = {"properties": {"roleDefinitionId": role_id, "scope": scope, "principalId": principal}}
    return client.sql_resources.begin_create_update_sql_role_assignment(
        str(uuid.uuid4()), "rg-cosmos", name, body
    ).result()


def test_an_account_has_the_built_in_roles_and_takes_assignments_at_each_scope(sandbox: Sandbox) -> None:
    client, made = account(sandbox, "cosmos-orders")
    assert made.document_endpoint == "https://cosmos-orders.documents.azure.com:443/"
    definitions = {d.name: d for d in client.sql_resources.list_sql_role_definitions("rg-cosmos", "cosmos-orders")}
    assert definitions[READER].role_name == "Cosmos DB Built-in Data Reader"
    assert definitions[CONTRIBUTOR].role_name == "Cosmos DB Built-in Data Contributor"
    principal = str(uuid.uuid4())
    for suffix in ("", "/dbs/orders", "/dbs/orders/colls/items"):
        done = assignment(client, "cosmos-orders", definitions[READER].id, made.id + suffix, principal)
        assert done.scope == made.id + suffix and done.principal_id == principal
    listed = list(client.sql_resources.list_sql_role_assignments("rg-cosmos", "cosmos-orders"))
    assert len(listed) == 3
    client.sql_resources.begin_delete_sql_role_assignment(listed[0].name, "rg-cosmos", "cosmos-orders").result()
    assert len(list(client.sql_resources.list_sql_role_assignments("rg-cosmos", "cosmos-orders"))) == 2


def test_what_cosmos_refuses(sandbox: Sandbox) -> None:
    client, made = account(sandbox, "cosmos-refuses")
    reader_id = f"{made.id}/sqlRoleDefinitions/{READER}"
    cases = [
        (f"{made.id}/sqlRoleDefinitions/{uuid.uuid4()}", made.id, "does not exist in this account"),
        (reader_id, made.id.replace("cosmos-refuses", "cosmos-other"), "is not in the account"),
        (reader_id, f"{made.id}/databases/orders", "is not in the account"),
    ]
    for role_id, scope, expected in cases:
        with pytest.raises(HttpResponseError) as refused:
            assignment(client, "cosmos-refuses", role_id, scope, str(uuid.uuid4()))
        assert refused.value.status_code == 400 and expected in str(refused.value.message), refused.value.message
    # A custom role: a unique name, data actions Cosmos DB knows, scopes in the account.
    custom = {
        "properties": {
            "roleName": "orders reader",
            "type": "CustomRole",
            "assignableScopes": [f"{made.id}/dbs/orders"],
            "permissions": [
                {"dataActions": ["Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read"]}
            ],
        }
    }
    guid = str(uuid.uuid4())
    client.sql_resources.begin_create_update_sql_role_definition(guid, "rg-cosmos", "cosmos-refuses", custom).result()
    with pytest.raises(HttpResponseError) as narrower:  # outside its assignable scopes
        assignment(client, "cosmos-refuses", f"{made.id}/sqlRoleDefinitions/{guid}", made.id, str(uuid.uuid4()))
    assert "assignable scopes" in str(narrower.value.message)
    custom["properties"]["permissions"] = [{"dataActions": ["Microsoft.DocumentDB/databaseAccounts/listKeys/action"]}]
    with pytest.raises(HttpResponseError) as control_plane:
        client.sql_resources.begin_create_update_sql_role_definition(
            str(uuid.uuid4()),
            "rg-cosmos",
            "cosmos-refuses",
            {**custom, "properties": {**custom["properties"], "roleName": "x"}},
        ).result()
    assert "not valid Cosmos DB data actions" in str(control_plane.value.message)


def test_an_account_holds_at_most_its_limit_of_role_assignments(sandbox: Sandbox) -> None:
    client, made = account(sandbox, "cosmos-full")
    sandbox.control.configure({"cosmos_role_assignment_limit": 3})
    try:
        for _count in range(3):
            assignment(client, "cosmos-full", f"{made.id}/sqlRoleDefinitions/{READER}", made.id, str(uuid.uuid4()))
        with pytest.raises(HttpResponseError) as full:
            assignment(client, "cosmos-full", f"{made.id}/sqlRoleDefinitions/{READER}", made.id, str(uuid.uuid4()))
        assert "the most it may hold (3)" in str(full.value.message)
    finally:
        sandbox.control.configure({"cosmos_role_assignment_limit": 2000})


def test_accounts_are_listed_by_subscription_and_by_resource_group(sandbox: Sandbox) -> None:
    client, made = account(sandbox, "cosmos-listed")
    sandbox.resource_group("rg-other")
    assert [a.id for a in client.database_accounts.list()] == [made.id]
    assert [a.name for a in client.database_accounts.list_by_resource_group("rg-cosmos")] == ["cosmos-listed"]
    assert list(client.database_accounts.list_by_resource_group("rg-other")) == []
