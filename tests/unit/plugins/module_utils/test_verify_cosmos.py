"""verify on Cosmos DB's own role system: each declared SQL role as the account holds it, and the access review of the
SQL role assignments the principal holds beyond the declared ones (on fakes of the cluster, ARM and Entra)."""

from __future__ import annotations

from typing import Any

from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads

from .fakes import COSMOS_READER, SUB
from .test_verify import PRINCIPAL, VaultArm, vault_verifier

ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-orders"
CONTAINER = f"{ACCOUNT}/dbs/orders/colls/items"


def cosmos_verifier(held: list[tuple[str, str]], arm: VaultArm | None = None) -> Any:
    """orders-api declaring the built-in Data Reader on the container; the account holding ``held`` (name, scope)
    for its principal; Cosmos DB's data plane answering as ``arm`` says."""
    check = vault_verifier(arm or VaultArm(200), [], None, rbac=False)
    check.batch.workloads = validate_workloads(
        "aks-dev",
        [
            {
                "name": "orders-api",
                "namespace": "orders",
                "service_account": "orders-api",
                "roles": [{"role": "Cosmos DB Built-in Data Reader", "scope": CONTAINER}],
                "controllers": [{"kind": "Deployment", "name": "orders-api"}],
            }
        ],
        identity_resource_group="rg-ids",
        allow_privileged_roles=True,
    ).specs
    reader = f"{ACCOUNT}/sqlRoleDefinitions/{COSMOS_READER}"
    check.reads.cosmos_accounts[ACCOUNT.lower()] = {
        "id": ACCOUNT,
        "name": "cosmos-orders",
        "definitions_read": True,
        "definitions": [
            {
                "id": reader,
                "guid": COSMOS_READER,
                "name": "Cosmos DB Built-in Data Reader",
                "built_in": True,
                "data_actions": [
                    "Microsoft.DocumentDB/databaseAccounts/readMetadata",
                    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read",
                ],
                "assignable_scopes": [ACCOUNT],
            }
        ],
        "assignments": [
            {"name": name, "account": ACCOUNT, "role_definition_id": reader, "scope": scope, "principal_id": PRINCIPAL}
            for name, scope in held
        ],
    }
    return check


def test_a_sql_role_the_account_holds_is_verified_on_the_data_plane_and_the_verdict_lists_it() -> None:
    arm = VaultArm(200)
    [verdict] = cosmos_verifier([("a1", CONTAINER)], arm).verify_all(1)
    assert verdict.verified, verdict.findings
    # The container's metadata, then an item no one has in it (the role reads items), as the workload.
    assert arm.reads == [
        ("cosmos-orders/dbs/orders/colls/items", False),
        ("cosmos-orders/dbs/orders/colls/items", True),
    ]
    assert any("1 service(s) let it read" in d for d in verdict.details)
    assert verdict.as_dict()["roles"] == [
        {"role": "Cosmos DB Built-in Data Reader", "scope": CONTAINER, "granted": True}
    ]


def test_a_sql_role_the_account_does_not_hold_is_a_finding_and_an_undeclared_one_is_reviewed() -> None:
    [verdict] = cosmos_verifier([("a2", f"{ACCOUNT}/dbs/orders")]).verify_all(1)
    assert not verdict.verified
    [missing] = [f for f in verdict.findings if f.link == "permissions"]
    assert "Cosmos DB account cosmos-orders holds no such assignment" in missing.message
    [extra] = [f for f in verdict.findings if f.link == "assignments"]
    assert f"holds Cosmos DB SQL role {COSMOS_READER} @ " in extra.message
    assert (
        "az cosmosdb sql role assignment delete --account-name cosmos-orders --resource-group rg-data" in extra.remedy
    )
    assert verdict.as_dict()["roles"][0]["granted"] is False


def test_a_sql_role_the_data_plane_refuses_is_a_finding_with_cosmos_dbs_own_words() -> None:
    refusal = "Request blocked by Auth cosmos-orders : Request is blocked because principal [x] does not have required"
    arm = VaultArm(403, refusal)
    [verdict] = cosmos_verifier([("a1", CONTAINER)], arm).verify_all(1)
    [finding] = [f for f in verdict.findings if f.link == "permissions"]
    assert "Cosmos DB refuses the workload's read (403: Request blocked by Auth cosmos-orders" in finding.message
    assert "can take minutes to apply" in finding.remedy and not verdict.verified
