"""Day-2 changes on Azure with a workload signing in throughout (its token exchanged at Entra, then used on ARM):
two clusters of one name sharing an identity resource group, a workload renamed, a workload moved to another
namespace. Unchanged workloads never fail one sign-in."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.sandbox_helpers import Sandbox, SignInProbe

from .conftest import auth, play

READER = "Reader"


@dataclass
class Converged:
    result: dict[str, Any]
    output: str


def converge(
    sandbox: Sandbox,
    collections: str,
    tmp_path: Path,
    cluster: dict[str, Any],
    workloads: list[dict[str, Any]],
    expect_ok: bool = True,
    check: bool = False,
    **options: Any,
) -> Converged:
    """workload_identities for the seeded ``cluster`` (its name, resource group and issuer); its result and output."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    body = {
        "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
        "tasks": [
            {
                "name": "converge",
                "register": "result",
                "check_mode": check,
                "workload_identity.aks.workload_identities": {
                    "cluster_name": cluster["name"],
                    "cluster_resource_group": cluster["resource_group"],
                    "issuer_url": cluster["issuer_url"],
                    "location": "westeurope",
                    "workloads": workloads,
                    **options,
                },
            },
            {"name": "show", "ansible.builtin.debug": {"msg": "RESULT={{ result | to_json }}"}},
        ],
    }
    done = play(sandbox, collections, tmp_path, body, {"azure_auth": auth(sandbox)}, expect_ok=expect_ok)
    match = re.search(r'"msg": "RESULT=(.*)"\n', done.stdout)
    result = dict(json.loads(json.loads(f'"{match.group(1)}"'))) if match else {}
    return Converged(result, done.stdout)


def workload(sandbox: Sandbox, data_group: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "namespace": "shop",
        "service_account": "orders",
        "roles": [{"role": READER, "scope": sandbox.rg_id(data_group)}],
        **fields,
    }


def signing_in(probe: SignInProbe, within: float = 90.0) -> SignInProbe:
    """The probe, once a first sign-in works (a new identity's principal replicates for a few seconds)."""
    deadline = time.monotonic() + within
    outcome = probe.attempt()
    while outcome != "ok":
        assert time.monotonic() < deadline, outcome
        time.sleep(0.5)
        outcome = probe.attempt()
    return probe


def identities_in(sandbox: Sandbox, group: str) -> dict[str, Any]:
    return {i.name: i for i in sandbox.msi().user_assigned_identities.list_by_resource_group(group)}


def test_two_clusters_of_one_name_never_take_each_others_identities(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    first = sandbox.control.seed_cluster("rg-stg-a", "aks-stg", oidc_issuer_enabled=True)
    second = sandbox.control.seed_cluster("rg-stg-b", "aks-stg", oidc_issuer_enabled=True)
    first["resource_group"], second["resource_group"] = "rg-stg-a", "rg-stg-b"
    for group in ("rg-stg-ids", "rg-stg-data"):
        sandbox.resource_group(group)
    declared = [workload(sandbox, "rg-stg-data")]
    options = {"identity_resource_group": "rg-stg-ids"}
    made = converge(sandbox, collections, tmp_path, first, declared, **options).result
    client_id = made["workloads"][0]["identity"]["client_id"]
    probe = SignInProbe(sandbox, first, "system:serviceaccount:shop:orders", client_id, "rg-stg-data", tmp_path)
    with signing_in(probe):
        # The second cluster's rollout (prune on) stops in its plan, naming both clusters, and writes nothing.
        sandbox.control.reset_stats()
        out = converge(
            sandbox, collections, tmp_path / "b", second, declared, expect_ok=False, prune=True, **options
        ).output
        assert "is used by cluster aks-stg in resource group rg-stg-a of subscription" in out
        assert "not by this cluster (resource group rg-stg-b of subscription" in out
        writes = {op for op in sandbox.control.stats()["operations"] if op.endswith((".put", ".delete", ".patch"))}
        assert writes == set()
        # Its teardown of everything removes nothing of the first's.
        torn = converge(
            sandbox,
            collections,
            tmp_path / "c",
            second,
            [],
            state="absent",
            prune=True,
            prune_confirm="aks-stg",
            **options,
        ).result
        assert not torn["changed"]
        # With a name of its own, it gets its own identity, beside the first's.
        own = [workload(sandbox, "rg-stg-data", identity_name="id-aks-stg-b-shop-orders")]
        converge(sandbox, collections, tmp_path / "d", second, own, prune=True, **options)
    assert probe.failures == [] and len(probe.outcomes) >= 3, probe.failures[:3]
    assert sorted(identities_in(sandbox, "rg-stg-ids")) == ["id-aks-stg-b-shop-orders", "id-aks-stg-shop-orders"]
    again = converge(sandbox, collections, tmp_path / "e", first, declared, **options).result
    assert not again["changed"]


def test_a_renamed_then_moved_workload_keeps_its_identity_and_its_sign_in(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    cluster = sandbox.control.seed_cluster("rg-move", "aks-move", oidc_issuer_enabled=True)
    cluster["resource_group"] = "rg-move"
    for group in ("rg-move-ids", "rg-move-data"):
        sandbox.resource_group(group)
    options = {"identity_resource_group": "rg-move-ids", "prune": True}
    made = converge(sandbox, collections, tmp_path, cluster, [workload(sandbox, "rg-move-data")], **options).result
    identity = made["workloads"][0]["identity"]
    old_subject = "system:serviceaccount:shop:orders"
    probe = SignInProbe(sandbox, cluster, old_subject, identity["client_id"], "rg-move-data", tmp_path)
    renamed = [workload(sandbox, "rg-move-data", name="checkout")]
    with signing_in(probe):
        plan = converge(sandbox, collections, tmp_path / "plan", cluster, renamed, check=True, **options).result
        done = converge(sandbox, collections, tmp_path / "run", cluster, renamed, **options).result
    assert probe.failures == [] and len(probe.outcomes) >= 3, probe.failures[:3]
    for result in (plan, done):
        row = result["workloads"][0]
        assert row["identity"]["client_id"] == identity["client_id"]
        assert row["notes"][0].endswith("workload orders renamed checkout")
        assert result["pruned"] == {} or not any(result["pruned"].values())
    assert list(identities_in(sandbox, "rg-move-ids")) == [identity["name"]]
    again = converge(sandbox, collections, tmp_path / "again", cluster, renamed, **options).result
    assert not again["changed"]

    # Moved to another namespace: the same identity trusts the new subject (made before the old one goes).
    moved = [workload(sandbox, "rg-move-data", name="checkout", namespace="shop-v2")]
    done = converge(sandbox, collections, tmp_path / "move", cluster, moved, **options).result
    row = done["workloads"][0]
    assert row["identity"]["client_id"] == identity["client_id"]
    assert "moved from shop/orders" in row["notes"][0]
    new_subject = "system:serviceaccount:shop-v2:orders"
    moved_probe = SignInProbe(sandbox, cluster, new_subject, identity["client_id"], "rg-move-data", tmp_path)
    assert signing_in(moved_probe, within=30).attempt() == "ok"
    assert "AADSTS70021" in probe.attempt()  # the old subject is no longer trusted (prune)
    assert list(identities_in(sandbox, "rg-move-ids")) == [identity["name"]]
    again = converge(sandbox, collections, tmp_path / "move-again", cluster, moved, **options).result
    assert not again["changed"]


def assignments_of(sandbox: Sandbox, principal: str) -> dict[str, Any]:
    """A principal's role assignments in the subscription, by name, as the Azure SDK lists them."""
    listed = sandbox.authz().role_assignments.list_for_subscription(filter=f"principalId eq '{principal}'")
    return {a.name: a for a in listed}


def test_assignments_of_a_deleted_identity_or_app_are_found_by_their_mark_and_pruned(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    cluster = sandbox.control.seed_cluster("rg-orph", "aks-orph", oidc_issuer_enabled=True)
    cluster["resource_group"] = "rg-orph"
    for group in ("rg-orph-ids", "rg-orph-data"):
        sandbox.resource_group(group)
    app = workload(
        sandbox,
        "rg-orph-data",
        name="billing",
        service_account="billing",
        identity_type="application",
        application_unique_name="aks-orph-billing",
    )
    declared = [workload(sandbox, "rg-orph-data"), app]
    options = {"identity_resource_group": "rg-orph-ids"}
    made = converge(sandbox, collections, tmp_path / "made", cluster, declared, **options).result
    old_identity, old_app = (row["identity"]["principal_id"] for row in made["workloads"])
    (ours,) = assignments_of(sandbox, old_identity).values()
    assert ours.description == (
        f"[workload_identity.aks format=1 cluster=aks-orph place={sandbox.subscription_id}/rg-orph "
        "workload=shop/orders identity=rg-orph-ids/id-aks-orph-shop-orders]"
    )
    # An operator's own assignment of the same principal at the same scope: no mark, never touched.
    operators = "6f8d1f4a-3c1e-4b0b-9a57-0c6f1b3e2d11"
    sandbox.authz().role_assignments.create(
        sandbox.rg_id("rg-orph-data"),
        operators,
        {
            "role_definition_id": f"/subscriptions/{sandbox.subscription_id}/providers/Microsoft.Authorization/"
            "roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",  # Storage Blob Data Reader
            "principal_id": old_identity,
            "principal_type": "ServicePrincipal",
            "description": "ticket 42",
        },
    )
    # Deleted by hand: Azure keeps their assignments ("Identity not found").
    sandbox.msi().user_assigned_identities.delete("rg-orph-ids", "id-aks-orph-shop-orders")
    app_object = made["workloads"][1]["identity"]["id"]
    assert sandbox.graph("DELETE", f"/applications/{app_object}").status_code == 204
    assert len(assignments_of(sandbox, old_identity)) == 2 and len(assignments_of(sandbox, old_app)) == 1

    # Without prune: new identity and app, and the orphans reported, not deleted.
    again = converge(sandbox, collections, tmp_path / "again", cluster, declared, **options).result
    new_identity, new_app = (row["identity"]["principal_id"] for row in again["workloads"])
    assert {new_identity, new_app}.isdisjoint({old_identity, old_app})
    reported = {(o["principal_id"], o["action"]) for o in again["orphaned_assignments"]}
    assert reported == {(old_identity, "reported"), (old_app, "reported")}
    assert len(assignments_of(sandbox, old_identity)) == 2 and len(assignments_of(sandbox, old_app)) == 1

    # With prune: the plan names them, the run deletes them, the operator's stays, and a second run changes nothing.
    plan = converge(sandbox, collections, tmp_path / "plan", cluster, declared, check=True, prune=True, **options)
    assert {(o["principal_id"], o["action"]) for o in plan.result["orphaned_assignments"]} == {
        (old_identity, "deleted"),
        (old_app, "deleted"),
    }
    pruned = converge(sandbox, collections, tmp_path / "prune", cluster, declared, prune=True, **options).result
    assert pruned["orphaned_assignments"] == plan.result["orphaned_assignments"] and pruned["changed"]
    assert list(assignments_of(sandbox, old_identity)) == [operators]
    assert assignments_of(sandbox, old_app) == {}
    assert len(assignments_of(sandbox, new_identity)) == 1 and len(assignments_of(sandbox, new_app)) == 1
    last = converge(sandbox, collections, tmp_path / "last", cluster, declared, prune=True, **options).result
    assert not last["changed"] and last["orphaned_assignments"] == []
