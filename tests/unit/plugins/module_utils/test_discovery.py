"""Discovery: _kube_discovery on a fake cluster, _azure_discovery on fake Apis, the host_vars filter.

Each declaration discovery writes must validate as inventory; the integration tests run site.yml on it.
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml
from ansible_collections.workload_identity.aks.plugins.filter.discovery import discovered_host_vars
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_discovery import Discovery, dns_label
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import Role
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import KubeApiError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_discovery import discover
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import identity_marks

from .fakes import (
    BLOB,
    COSMOS_READER,
    OWNER,
    READER,
    SUB,
    TENANT,
    FakeCosmos,
    FakeFics,
    FakeIdentities,
    FakeRoles,
    FakeVaults,
    Writes,
    assignment,
)
from .test_azure_batch_apps import GraphApps
from .test_kube_bindings import FakeCluster, deployment

CLUSTER = "aks-dev"
ISSUER = "https://oidc.example/tenant/aks-dev/"
DATA = f"/subscriptions/{SUB}/resourceGroups/rg-data"
PI = "/apis/aadpodidentity.k8s.io/v1/namespaces"


def labelled(obj: dict[str, Any], **labels: str) -> dict[str, Any]:
    obj["spec"]["template"]["metadata"]["labels"].update(labels)
    return obj


def legacy_cluster(client_id: str) -> FakeCluster:
    cluster = FakeCluster()
    cluster.add(
        "/api/v1/namespaces/shop/serviceaccounts/orders-sa",
        {
            "metadata": {
                "name": "orders-sa",
                "namespace": "shop",
                "annotations": {"azure.workload.identity/client-id": client_id},
            }
        },
    )
    cluster.add("/api/v1/namespaces/shop/serviceaccounts/plain", {"metadata": {"name": "plain", "namespace": "shop"}})
    cluster.add("/apis/apps/v1/namespaces/shop/deployments/orders", deployment("shop", "orders", "orders-sa"))
    job = {"metadata": {"name": "nightly-1", "namespace": "shop", "ownerReferences": [{"controller": True}]}}
    job["spec"] = {"template": {"metadata": {}, "spec": {"serviceAccountName": "orders-sa"}}}
    cluster.add("/apis/batch/v1/namespaces/shop/jobs/nightly-1", job)  # a CronJob's: its owner is the one to bind
    for ns in ("reports", "audit"):
        cluster.add(
            f"/apis/apps/v1/namespaces/{ns}/deployments/reports",
            labelled(deployment(ns, "reports"), aadpodidbinding="reports"),
        )
    cluster.add(
        "/apis/apps/v1/namespaces/shop/deployments/stray", labelled(deployment("shop", "stray"), aadpodidbinding="gone")
    )
    return cluster


def add_pod_identity(cluster: FakeCluster, resource_id: str, client_id: str) -> None:
    cluster.add(
        f"{PI}/reports/azureidentities/reports-id",
        {
            "metadata": {"name": "reports-id", "namespace": "reports"},
            "spec": {"type": 0, "resourceID": resource_id, "clientID": client_id},
        },
    )
    cluster.add(
        f"{PI}/reports/azureidentitybindings/reports-binding",
        {
            "metadata": {"name": "reports-binding", "namespace": "reports"},
            "spec": {"azureIdentity": "reports-id", "selector": "reports"},
        },
    )


def test_kube_discovery_finds_bound_accounts_their_controllers_and_pod_identity_bindings_in_fixed_requests() -> None:
    cluster = legacy_cluster("c1")
    add_pod_identity(
        cluster, "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/r", "c2"
    )
    estate = discover(cluster)
    assert [(a["namespace"], a["service_account"], a["client_id"]) for a in estate["service_accounts"]] == [
        ("shop", "orders-sa", "c1")
    ]
    assert [c["name"] for c in estate["service_accounts"][0]["controllers"]] == ["orders"]  # not the CronJob's Job
    (binding,) = estate["pod_identity"]
    assert (binding["identity_type"], binding["client_id"], binding["selector"]) == ("user_assigned", "c2", "reports")
    assert sorted(c["namespace"] for c in binding["controllers"]) == ["audit", "reports"]
    assert [c["name"] for c in estate["unbound_pod_identity_controllers"]] == ["stray"]
    # One list per kind (5 controllers, accounts, 2 pod-identity kinds) and CronJob's group version: no per-object read.
    assert estate["requests"] == 9


def test_a_cluster_without_pod_identity_crds_has_no_bindings() -> None:
    class NoCrds(FakeCluster):
        def list(self, path: str, operation: str, selector: str | None = None) -> list[dict[str, Any]]:
            if "aadpodidentity" in path:
                raise KubeApiError("the server could not find the requested resource", status=404, code="NotFound")
            return super().list(path, operation, selector)

    assert discover(NoCrds())["pod_identity"] == []


# A built-in role with Key Vault data actions (what a vault with access policies ignores).
SECRETS_READER = Role(
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6",
    "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets User",
    (((), (), ("Microsoft.KeyVault/vaults/secrets/getSecret/action",)),),
)


class Subscription:
    def __init__(self) -> None:
        self.writes = Writes()
        self.identities, self.fics, self.roles = (
            FakeIdentities(self.writes),
            FakeFics(self.writes),
            FakeRoles(self.writes, (READER, OWNER, BLOB, SECRETS_READER)),
        )
        self.apps = GraphApps()
        self.vaults = FakeVaults(self.writes)
        self.cosmos = FakeCosmos(self.writes)

    def identity(self, group: str, name: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
        return dict(self.identities.put(IdentityRef(SUB, group, name), "westeurope", tags or {}))

    def discovery(self, groups: list[str] | None = None) -> Discovery:
        apis = AzureApis(self.identities, self.fics, self.roles, SUB, vaults=self.vaults, cosmos=self.cosmos)
        return Discovery(apis, self.apps, CLUSTER, ISSUER, groups or [])


def test_azure_discovery_declares_the_walkthrough_an_operators_app_and_proposes_the_pod_identity_migration() -> None:
    sub = Subscription()
    by_hand = sub.identity("rg-hand", "orders-identity")
    ref = IdentityRef(SUB, "rg-hand", "orders-identity")
    sub.fics.put(ref, "operator-named", ISSUER, "system:serviceaccount:shop:orders-sa", ["api://AzureADTokenExchange"])
    sub.fics.put(ref, "other-sa", ISSUER, "system:serviceaccount:shop:batch", ["api://AzureADTokenExchange"])
    sub.fics.put(ref, "elsewhere", "https://other-issuer/", "system:serviceaccount:x:y", ["api://AzureADTokenExchange"])
    sub.roles.items.append(assignment(DATA, BLOB, by_hand["principal_id"]))
    sub.roles.items.append(assignment(f"/subscriptions/{SUB}", OWNER, by_hand["principal_id"]))
    legacy = sub.identity("rg-legacy", "reports-identity")
    sub.roles.items.append(assignment(DATA, READER, legacy["principal_id"]))
    ours = sub.identity("rg-ids", "id-aks-dev-web-gone", identity_marks(CLUSTER, "web", "gone", "gone"))
    cluster = legacy_cluster(by_hand["client_id"])
    add_pod_identity(
        cluster,
        f"/subscriptions/{SUB}/resourceGroups/rg-legacy/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reports-identity",
        legacy["client_id"],
    )
    app = {"id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "displayName": "cart-by-hand", "tags": []}
    sub.apps.apps[app["id"]] = app
    cluster.add(
        "/api/v1/namespaces/cart/serviceaccounts/cart",
        {
            "metadata": {
                "name": "cart",
                "namespace": "cart",
                "annotations": {"azure.workload.identity/client-id": app["appId"]},
            }
        },
    )
    cluster.add(
        "/api/v1/namespaces/cart/serviceaccounts/ghost",
        {
            "metadata": {
                "name": "ghost",
                "namespace": "cart",
                "annotations": {"azure.workload.identity/client-id": "nobody"},
            }
        },
    )
    sub.writes.clear()
    found = sub.discovery().run(discover(cluster))
    assert sub.writes == [] and sub.apps.writes == []  # read only
    by_name = {w["name"]: w for w in found["workloads"]}
    assert sorted(by_name) == ["cart", "orders-sa", "reports-binding"]
    orders = by_name["orders-sa"]
    assert (orders["identity_name"], orders["identity_resource_group"]) == ("orders-identity", "rg-hand")
    assert orders["extra_subjects"] == ["system:serviceaccount:shop:batch"]  # this issuer's only
    assert orders["roles"] == [  # by scope
        {"role": "Owner", "scope": f"/subscriptions/{SUB}"},
        {"role": "Storage Blob Data Contributor", "scope": DATA},
    ]
    assert any("allow_privileged_roles" in n for n in found["notes"]["orders-sa"])
    assert by_name["cart"]["identity_type"] == "application" and by_name["cart"]["application_id"] == app["appId"]
    assert any("no federated credential trusts" in n for n in found["notes"]["cart"])
    migration = by_name["reports-binding"]
    assert (migration["namespace"], migration["service_account"]) == ("audit", "reports-binding")
    assert migration["identity_name"] == "reports-identity" and migration["roles"] == [
        {"role": "Reader", "scope": DATA}
    ]
    assert found["notes"]["reports-binding"][0].startswith("MIGRATION from AAD Pod Identity")
    findings = "\n".join(found["findings"])
    assert "also used in namespace reports" in findings  # one identity per workload
    assert "client id nobody" in findings and "Deployment shop/stray" in findings
    assert f"identity {ours['name']} was made by this collection" in findings
    validated = validate_workloads(
        CLUSTER, found["workloads"], identity_resource_group="rg-ids", allow_privileged_roles=True
    )
    assert validated.problems == []


def test_the_written_host_vars_load_back_to_the_same_workloads_with_notes_as_comments() -> None:
    found = {
        "workloads": [
            {"name": "orders", "namespace": "shop", "service_account": "orders", "roles": [], "controllers": []}
        ],
        "notes": {"orders": ["MIGRATION from AAD Pod Identity: binding x"]},
        "findings": ["client id nobody: not declared"],
    }
    text = discovered_host_vars(found, CLUSTER)
    assert yaml.safe_load(text) == {"workload_identity_workloads": found["workloads"]}
    assert "  # MIGRATION from AAD Pod Identity: binding x\n  - name: orders" in text
    assert "# - client id nobody: not declared" in text
    assert discovered_host_vars(found, CLUSTER) == text  # no timestamp: rediscovery writes the same file


def test_names_are_dns_labels() -> None:
    assert dns_label("Reports.Binding_1") == "reports-binding-1"
    assert len(dns_label("x" * 80)) == 63


def orders_bound_to(client_id: str) -> FakeCluster:
    """A cluster whose shop/orders ServiceAccount names the client id, as an operator bound it by hand."""
    cluster = FakeCluster()
    annotations = {"azure.workload.identity/client-id": client_id}
    cluster.add(
        "/api/v1/namespaces/shop/serviceaccounts/orders",
        {"metadata": {"name": "orders", "namespace": "shop", "annotations": annotations}},
    )
    return cluster


def test_discovery_declares_an_identitys_key_vault_entries_and_notes_a_role_the_vault_ignores() -> None:
    sub = Subscription()
    by_hand = sub.identity("rg-hand", "orders-identity")
    ref = IdentityRef(SUB, "rg-hand", "orders-identity")
    sub.fics.put(ref, "by-hand", ISSUER, "system:serviceaccount:shop:orders", ["api://AzureADTokenExchange"])
    vaults = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults"
    entry = {"tenantId": TENANT, "objectId": by_hand["principal_id"], "permissions": {"secrets": ["list", "get"]}}
    sub.vaults.add(f"{vaults}/kv-legacy", policies=[entry])
    sub.vaults.add(f"{vaults}/kv-rbac", rbac=True, policies=[entry])  # ignored there: not declared
    sub.roles.items.append(assignment(f"{vaults}/kv-legacy", SECRETS_READER, by_hand["principal_id"]))
    found = sub.discovery().run(discover(orders_bound_to(by_hand["client_id"])))
    [orders] = found["workloads"]
    assert {"scope": f"{vaults}/kv-legacy", "access_policy": {"secrets": ["get", "list"]}} in orders["roles"]
    assert not any(r["scope"].endswith("kv-rbac") for r in orders["roles"])
    assert any("grants nothing on its data (the vault uses access policies)" in n for n in found["notes"]["orders"])


def test_discovery_declares_an_identitys_cosmos_db_sql_roles_as_the_site_reads_them() -> None:
    sub = Subscription()
    by_hand = sub.identity("rg-hand", "orders-identity")
    ref = IdentityRef(SUB, "rg-hand", "orders-identity")
    sub.fics.put(ref, "by-hand", ISSUER, "system:serviceaccount:shop:orders", ["api://AzureADTokenExchange"])
    account = (
        f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-orders"
    )
    sub.cosmos.add(account, custom={"5f0c6d4a-1e2b-4c3d-8e9f-0a1b2c3d4e5f": "Orders Item Reader"})
    held = sub.cosmos.accounts[account.lower()]["assignments"]
    for guid, scope in (
        (COSMOS_READER, f"{account}/dbs/orders/colls/items"),
        ("5f0c6d4a-1e2b-4c3d-8e9f-0a1b2c3d4e5f", account),
    ):
        held.append(
            {
                "name": str(uuid.uuid4()),
                "account": account,
                "role_definition_id": f"{account}/sqlRoleDefinitions/{guid}",
                "scope": scope,
                "principal_id": by_hand["principal_id"],
            }
        )
    found = sub.discovery().run(discover(orders_bound_to(by_hand["client_id"])))
    [orders] = found["workloads"]
    assert {"role": "Cosmos DB Built-in Data Reader", "scope": f"{account}/dbs/orders/colls/items"} in orders["roles"]
    assert {"role": "Orders Item Reader", "scope": account} in orders["roles"]
