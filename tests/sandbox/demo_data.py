"""The data the demo's workloads are granted, and what they read of it on the services themselves.

The platform team's own grants and data, made before the rollout (a secret in a vault with access policies, an item
in a Cosmos DB container, each through the service's data plane as its own principal), and what a workload's pod
reads there with its own token, through the same SDKs an application uses (azure-keyvault-secrets, azure-cosmos),
at the services' public hosts through the sandbox's proxy.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from azure.identity import WorkloadIdentityCredential

from . import jwt

COSMOS_API = "2024-11-15"
POSTGRES_API = "2024-08-01"
POSTGRES_AUDIENCE = "https://ossrdbms-aad.database.windows.net/.default"
PLATFORM_ADMIN = "platform-automation"  # the automation's role on the servers: its Entra administrator's name
COSMOS_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"
ORDER_ID, CUSTOMER = "order-1001", "contoso"  # the item, and its partition key value
ORDER: dict[str, Any] = {"id": ORDER_ID, "customer": CUSTOMER, "total": 42}


def arm_put(url: str, ca: str, token: str, path: str, body: dict[str, Any], api_version: str = "2022-09-01") -> None:
    response = requests.put(
        f"{url}{path}?api-version={api_version}",
        json=body,
        verify=ca,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()


def seed_secret(url: str, ca: str, admin: Any, vault_id: str, name: str) -> None:
    """The platform team's own access policy entry on a vault with access policies (which the rollout must leave as
    it is), and a secret it keeps there."""
    principal = jwt.unverified(admin.get_token(url + "/.default").token)[1]
    entry = {"tenantId": principal["tid"], "objectId": principal["oid"], "permissions": {"secrets": ["get", "set"]}}
    response = requests.put(
        f"{url}{vault_id}/accessPolicies/add?api-version=2023-07-01",
        json={"properties": {"accessPolicies": [entry]}},
        verify=ca,
        timeout=30,
        headers={"Authorization": f"Bearer {admin.get_token(url + '/.default').token}"},
    )
    response.raise_for_status()
    vault_token = admin.get_token("https://vault.azure.net/.default").token
    response = requests.put(
        f"{url}/dataplane/vault/{vault_id.rsplit('/', 1)[1]}/secrets/{name}?api-version=7.4",
        json={"value": secrets.token_urlsafe(24)},
        verify=ca,
        timeout=30,
        headers={"Authorization": f"Bearer {vault_token}"},
    )
    response.raise_for_status()


def ensure_cosmos_account(url: str, ca: str, token: str, scope: str) -> None:
    """A Cosmos DB account as Cosmos DB requires it (offer type, a location), its orders database, and its items and
    payments containers."""
    account = {
        "location": "westeurope",
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "westeurope", "failoverPriority": 0}],
        },
    }
    arm_put(url, ca, token, scope, account, api_version="2024-11-15")
    database = {"properties": {"resource": {"id": "orders"}}}
    arm_put(url, ca, token, f"{scope}/sqlDatabases/orders", database, api_version="2024-11-15")
    for name in ("items", "payments"):  # the workload reads the first; the second is another team's
        container = {"properties": {"resource": {"id": name, "partitionKey": {"paths": ["/customer"], "kind": "Hash"}}}}
        arm_put(url, ca, token, f"{scope}/sqlDatabases/orders/containers/{name}", container, api_version="2024-11-15")


def ensure_postgres_server(env: dict[str, str], admin: Any, scope: str) -> None:
    """A flexible server that takes Entra sign-ins only, the automation's principal its Entra administrator (as a
    platform team sets it), and the orders database with an orders table the platform team keeps (one order)."""
    url, ca = env["SANDBOX_URL"], env["AZURE_CA_BUNDLE"]
    token = admin.get_token(url + "/.default").token
    server = {
        "location": "westeurope",
        "sku": {"name": "Standard_B1ms", "tier": "Burstable"},
        "properties": {"version": "16", "authConfig": {"activeDirectoryAuth": "Enabled", "passwordAuth": "Disabled"}},
    }
    arm_put(url, ca, token, scope, server, POSTGRES_API)
    oid = jwt.unverified(token)[1]["oid"]
    entry = {"properties": {"principalType": "ServicePrincipal", "principalName": PLATFORM_ADMIN}}
    arm_put(url, ca, token, f"{scope}/administrators/{oid}", entry, POSTGRES_API)
    arm_put(url, ca, token, f"{scope}/databases/orders", {"properties": {"charset": "UTF8"}}, POSTGRES_API)
    with _database(env, scope.rsplit("/", 1)[1], PLATFORM_ADMIN, admin.get_token(POSTGRES_AUDIENCE).token) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, customer text, total int)")
        conn.execute("INSERT INTO orders VALUES (%s, %s, 42) ON CONFLICT DO NOTHING", (ORDER_ID, CUSTOMER))


def read_order(
    env: dict[str, str], assertion: str, client_id: str, where: tuple[str, str], authority: str | None
) -> str:
    """What the workload's PostgreSQL driver (psycopg) gets signing in to the orders database as the role ``where``
    names on the server (``where``: the server, the role) with its own token: the order and a refused write, or the
    server's refusal."""
    import psycopg

    server, role = where
    with pod_credential(env, assertion, client_id, authority) as credential:
        token = credential.get_token(POSTGRES_AUDIENCE).token
    try:
        with _database(env, server, role, token) as conn:
            total = conn.execute("SELECT total FROM orders WHERE id = %s", (ORDER_ID,)).fetchone()
            try:
                conn.execute("UPDATE orders SET total = 0 WHERE id = %s", (ORDER_ID,))
                write = "and may write it"
            except psycopg.errors.InsufficientPrivilege:
                write = "a write refused (permission denied)"
    except psycopg.OperationalError as exc:
        return f"refused: {str(exc).strip().rsplit('FATAL:', maxsplit=1)[-1].strip()}"
    return f"reads {ORDER_ID} (total {total[0] if total else '?'}); {write}"


@contextmanager
def _database(env: dict[str, str], server: str, user: str, token: str) -> Iterator[Any]:
    """A session on the server's orders database over TLS (verify-full), through the sandbox's gateway."""
    import psycopg

    with psycopg.connect(
        host=f"{server}.postgres.database.azure.com",
        hostaddr=env["PGHOSTADDR"],
        port=env["PGPORT"],
        sslrootcert=env["PGSSLROOTCERT"],
        sslmode="verify-full",
        user=user,
        password=token,
        dbname="orders",
        autocommit=True,
    ) as conn:
        yield conn


def read_vault(env: dict[str, str], assertion: str, client_id: str, vault: str, authority: str | None) -> str:
    """What the workload's Key Vault SDK gets from a vault's data plane with its own token: the secrets' names, or
    the vault's refusal (never a value)."""
    from azure.core.exceptions import HttpResponseError
    from azure.keyvault.secrets import SecretClient

    with pod_credential(env, assertion, client_id, authority) as credential:
        client = SecretClient(
            f"https://{vault}.vault.azure.net",
            credential,
            connection_verify=env["AZURE_CA_BUNDLE"],
            proxies={"https": env["SANDBOX_HTTPS_PROXY"]},
        )
        try:
            names = [s.name for s in client.list_properties_of_secrets()]
        except HttpResponseError as exc:
            body = json.loads(exc.response.text() or "{}") if exc.response is not None else {}
            inner = ((body.get("error") or {}).get("innererror") or {}).get("code")
            return f"refused: {exc.status_code} ({inner or exc.reason})"
    return f"lists its secrets: {', '.join(str(n) for n in names) or '(none)'}"


@contextmanager
def pod_credential(env: dict[str, str], assertion: str, client_id: str, authority: str | None) -> Iterator[Any]:
    """The credential the pod's SDK builds from what the webhook injected: its projected token in a file (removed
    after), its client id, the authority host."""
    with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as handle:
        handle.write(assertion)
    try:
        yield WorkloadIdentityCredential(
            tenant_id=env["AZURE_TENANT_ID"],
            client_id=client_id,
            token_file_path=handle.name,
            authority=authority or env["SANDBOX_URL"],
            connection_verify=env["AZURE_CA_BUNDLE"],
        )
    finally:
        os.unlink(handle.name)


def seed_item(url: str, ca: str, admin: Any, account_id: str) -> None:
    """The platform team's SQL role on the account (Data Contributor), and an order it keeps in the items container,
    written on Cosmos DB's data plane with its Entra token (a second run finds both)."""
    oid = jwt.unverified(admin.get_token(url + "/.default").token)[1]["oid"]
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{account_id.lower()}|{oid}"))
    role = {
        "properties": {
            "roleDefinitionId": f"{account_id}/sqlRoleDefinitions/{COSMOS_CONTRIBUTOR}",
            "scope": account_id,
            "principalId": oid,
        }
    }
    arm_put(
        url, ca, admin.get_token(url + "/.default").token, f"{account_id}/sqlRoleAssignments/{name}", role, COSMOS_API
    )
    account = account_id.rsplit("/", 1)[1]
    token = admin.get_token(f"https://{account}.documents.azure.com/.default").token
    response = requests.post(
        f"{url}/dataplane/cosmos/{account}/dbs/orders/colls/items/docs",
        json=ORDER,
        verify=ca,
        timeout=30,
        headers={
            "Authorization": f"type=aad&ver=1.0&sig={token}",
            "x-ms-documentdb-partitionkey": json.dumps([CUSTOMER]),
            "x-ms-version": "2018-12-31",
        },
    )
    if response.status_code != 409:  # there from an earlier run
        response.raise_for_status()


def read_item(
    env: dict[str, str], assertion: str, client_id: str, where: tuple[str, str], authority: str | None
) -> str:
    """What the workload's Cosmos DB SDK gets from a container (``where``: the account and the container) with its own
    token: the order, or Cosmos DB's refusal."""
    account, container_name = where
    from azure.cosmos import CosmosClient, exceptions

    with pod_credential(env, assertion, client_id, authority) as credential, through_proxy(env):
        try:
            # The client reads the account first: a principal without any SQL role there is refused already.
            client = CosmosClient(f"https://{account}.documents.azure.com:443/", credential)
            container = client.get_database_client("orders").get_container_client(container_name)
            item = container.read_item(ORDER_ID, partition_key=CUSTOMER)
        except exceptions.CosmosHttpResponseError as exc:
            return f"refused: {exc.status_code} (substatus {exc.sub_status})"
    return f"reads {item['id']} (total {item['total']})"


@contextmanager
def through_proxy(env: dict[str, str]) -> Iterator[None]:
    """The SDK's transport honours HTTPS_PROXY, as a pod behind a corporate proxy does, and trusts the CA bundle
    REQUESTS_CA_BUNDLE names (azure-cosmos's client does not pass ``connection_verify`` to its first read): set for
    the read only."""
    names = ("HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE")
    saved = {k: os.environ.get(k) for k in names}
    values = (env["SANDBOX_HTTPS_PROXY"], "127.0.0.1,localhost", env["AZURE_CA_BUNDLE"])
    os.environ.update(dict(zip(names, values, strict=True)))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
