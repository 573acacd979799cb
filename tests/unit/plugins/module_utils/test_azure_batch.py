"""_azure_batch and _azure_batch_reads: the whole-cluster plan, its convergence, prune and removal, on fake Apis.

What is asserted is the decisions and the writes they lead to (all through the engines, counted here), never time.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis, Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import Role
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import (
    fic_name,
    format_mark,
    identity_marks,
)

from .fakes import BLOB, READER, SUB, FakeFics, FakeIdentities, FakeRoles, Writes, assignment

CLUSTER = "aks-dev"
ISSUER = "https://oidc.example/tenant/aks-dev/"
DATA = f"/subscriptions/{SUB}/resourceGroups/rg-data"
SUBJECT = "system:serviceaccount:shop:orders"


class Estate:
    def __init__(self) -> None:
        self.writes = Writes()
        self.identities = FakeIdentities(self.writes)
        self.fics = FakeFics(self.writes)
        self.roles = FakeRoles(self.writes)
        self.engine = Workloads(AzureApis(self.identities, self.fics, self.roles, SUB))

    def batch(
        self,
        workloads: list[dict[str, Any]],
        prune: bool = False,
        state: str = "present",
        scope: str | None = None,
        issuer: str = ISSUER,
    ) -> Batch:
        validated = validate_workloads(
            CLUSTER, workloads, identity_resource_group="rg-ids", allow_privileged_roles=False
        )
        assert validated.problems == []
        return Batch(
            CLUSTER, SUB, issuer, "westeurope", validated.specs, prune, False, ("rg-ids",), state, cluster_scope=scope
        )

    def run(self, workloads: list[dict[str, Any]], check_mode: bool = False, **kwargs: Any) -> dict[str, Any]:
        batch = self.batch(workloads, **kwargs)
        reads = self.engine.read(batch, workers=2)
        if batch.state == "absent":
            return dict(self.engine.remove(batch, reads, check_mode))
        return dict(self.engine.converge(batch, reads, check_mode, workers=2))


def orders(*roles: dict[str, str]) -> dict[str, Any]:
    return {"name": "orders", "namespace": "shop", "service_account": "orders", "roles": list(roles)}


def test_plan_equals_run_and_the_second_run_changes_nothing() -> None:
    estate = Estate()
    listed = [orders({"role": "Reader", "scope": DATA})]
    plan = estate.run(listed, check_mode=True)
    assert estate.writes == [] and plan["changed"]
    done = estate.run(listed)
    assert [w[:2] for w in estate.writes] == [("identity", "put"), ("fic", "put"), ("role", "put")]

    def actions(result: dict[str, Any]) -> list[Any]:
        w = result["workloads"][0]
        return [
            w["identity"]["action"],
            [f["action"] for f in w["federated_credentials"]],
            [r["action"] for r in w["role_assignments"]],
        ]

    assert actions(plan) == actions(done) == ["created", ["created"], ["created"]]
    again = estate.run(listed)
    assert not again["changed"] and len(estate.writes) == 3
    identity = next(iter(estate.identities.items.values()))
    # Made for this cluster and workload, and claimed by this cluster (the only one to use it).
    assert identity["tags"] == {
        **identity_marks(CLUSTER, "shop", "orders", "orders"),
        **format_mark(),  # written with the marks of a new identity
        f"wi-uses:{CLUSTER}": "",
    }


def test_runtime_problems_of_every_workload_surface_before_any_write() -> None:
    estate = Estate()
    theirs = IdentityRef(SUB, "rg-ids", "id-aks-dev-shop-orders")
    estate.identities.put(theirs, "westeurope", identity_marks("aks-prod", "shop", "orders", "orders"))
    estate.writes.clear()
    listed = [
        orders({"role": "Reader", "scope": DATA}),
        {
            "name": "cart",
            "namespace": "shop",
            "service_account": "cart",
            "roles": [{"role": "No Such Role", "scope": DATA}],
        },
    ]
    with pytest.raises(ValidationError) as raised:
        estate.run(listed)
    assert raised.value.problems[0] == (
        "cluster aks-dev: workload 'orders': identity_name: identity id-aks-dev-shop-orders in rg-ids is used by "
        "cluster aks-prod, not by this cluster; set identity_name (or identity_resource_group) so that each cluster "
        "has its own, or, to share one identity between clusters, the same identity_name on each"
    )
    assert "cluster aks-dev: workload 'cart': roles[0]: role: 'No Such Role'" in raised.value.problems[1]
    assert estate.writes == []


def test_prune_removes_only_ours_assignments_before_identities_through_the_engines() -> None:
    estate = Estate()
    cart = {**orders({"role": "Reader", "scope": f"{DATA}/providers/Microsoft.Storage/storageAccounts/cart"})}
    estate.run([orders({"role": "Reader", "scope": DATA}), {**cart, "name": "cart", "service_account": "cart"}])
    mine = estate.identities.items[IdentityRef(SUB, "rg-ids", "id-aks-dev-shop-orders").id.lower()]
    # Someone grants the orders identity a second role by hand, and someone else owns an untagged identity.
    estate.roles.items.append(assignment(DATA, BLOB, mine["principal_id"], "by-hand"))
    estate.identities.put(IdentityRef(SUB, "rg-ids", "id-theirs"), "westeurope", {})
    estate.writes.clear()
    # orders keeps Reader only; cart is no longer listed.
    plan = estate.run([orders({"role": "Reader", "scope": DATA})], check_mode=True, prune=True)
    assert estate.writes == []
    done = estate.run([orders({"role": "Reader", "scope": DATA})], prune=True)
    assert plan["pruned"] == done["pruned"]
    assert [(r["identity"], r["role"]) for r in done["pruned"]["role_assignments"]] == [
        ("id-aks-dev-shop-cart", "Reader"),
        ("id-aks-dev-shop-orders", "Storage Blob Data Contributor"),
    ]
    assert done["pruned"]["identities"] == [{"name": "id-aks-dev-shop-cart", "resource_group": "rg-ids"}]
    # Per identity, its assignments go first (Azure would leave them behind, orphaned).
    assert [w[:2] for w in estate.writes] == [("role", "delete"), ("identity", "delete"), ("role", "delete")]
    assert estate.writes[1:] == [("identity", "delete", "id-aks-dev-shop-cart"), ("role", "delete", "by-hand")]
    assert IdentityRef(SUB, "rg-ids", "id-theirs").id.lower() in estate.identities.items


def test_prune_leaves_other_issuers_credentials_on_our_identity() -> None:
    estate = Estate()
    estate.run([orders()])
    ref = IdentityRef(SUB, "rg-ids", "id-aks-dev-shop-orders")
    estate.fics.put(ref, "stale-subject", ISSUER, "system:serviceaccount:shop:old", ["api://AzureADTokenExchange"])
    estate.fics.put(
        ref, "other-issuer", "https://elsewhere/", "system:serviceaccount:shop:x", ["api://AzureADTokenExchange"]
    )
    estate.writes.clear()
    done = estate.run([orders()], prune=True)
    assert done["pruned"]["federated_credentials"] == [
        {"identity": "id-aks-dev-shop-orders", "name": "stale-subject", "subject": "system:serviceaccount:shop:old"}
    ]
    assert estate.writes == [("fic", "delete", "id-aks-dev-shop-orders/stale-subject")]


def test_removal_of_an_identity_made_elsewhere_takes_only_this_clusters_trust_and_declared_roles() -> None:
    estate = Estate()
    theirs = IdentityRef(SUB, "rg-ids", "id-shared")
    made = estate.identities.put(theirs, "westeurope", {"team": "shop"})
    estate.fics.put(
        theirs, "their-own", "https://elsewhere/", "system:serviceaccount:shop:orders", ["api://AzureADTokenExchange"]
    )
    estate.roles.items.append(assignment(DATA, BLOB, made["principal_id"], "their-role"))
    listed = [{**orders({"role": "Reader", "scope": DATA}), "identity_name": "id-shared"}]
    estate.run(listed)
    estate.writes.clear()
    plan = estate.run(listed, check_mode=True, state="absent")
    assert estate.writes == []
    done = estate.run(listed, state="absent")
    assert plan["workloads"] == done["workloads"]
    row = done["workloads"][0]
    assert row["identity"]["action"] == "kept"
    assert [f["name"] for f in row["federated_credentials"]] == [fic_name(CLUSTER, "system:serviceaccount:shop:orders")]
    assert [r["role"] for r in row["role_assignments"]] == ["Reader"]
    # The credential and the assignment this collection made, then its record of that assignment on their identity.
    # (The record goes by name, through ARM's Tags API: their own tags, written meanwhile or not, stay.)
    assert [w[:2] for w in estate.writes] == [("fic", "delete"), ("role", "delete"), ("identity", "tags delete")]
    assert theirs.id.lower() in estate.identities.items and [a.name for a in estate.roles.items] == ["their-role"]
    assert estate.identities.items[theirs.id.lower()]["tags"] == {"team": "shop"}


def test_an_assignment_that_was_there_before_is_adopted_and_outlives_the_teardown() -> None:
    """The walkthrough's assignment (made by the operator) and one the collection adds, on the operator's identity."""
    estate = Estate()
    theirs = IdentityRef(SUB, "rg-ids", "id-by-hand")
    made = estate.identities.put(theirs, "westeurope", {})
    estate.roles.items.append(assignment(DATA, BLOB, made["principal_id"], "made-by-the-operator"))
    listed = [
        {
            **orders({"role": "Storage Blob Data Contributor", "scope": DATA}, {"role": "Reader", "scope": DATA}),
            "identity_name": "id-by-hand",
        }
    ]
    first = estate.run(listed)["workloads"][0]
    assert [r["action"] for r in first["role_assignments"]] == ["unchanged", "created"]
    tags = estate.identities.items[theirs.id.lower()]["tags"]
    assert list(tags) == [f"wi-created-roles:{CLUSTER}:shop:orders"] and len(tags[next(iter(tags))]) == 10
    assert estate.run(listed)["changed"] is False  # recorded once
    estate.run(listed, state="absent")
    assert [a.name for a in estate.roles.items] == ["made-by-the-operator"]
    assert estate.identities.items[theirs.id.lower()]["tags"] == {}


def test_removal_of_ours_deletes_roles_first_then_the_identity() -> None:
    estate = Estate()
    listed = [orders({"role": "Reader", "scope": DATA})]
    estate.run(listed)
    estate.writes.clear()
    done = estate.run(listed, state="absent")
    assert done["workloads"][0]["identity"]["action"] == "deleted"
    assert [w[:2] for w in estate.writes] == [("role", "delete"), ("identity", "delete")]
    assert estate.run(listed, state="absent")["changed"] is False


def test_no_op_reads_are_n_plus_three() -> None:
    """Requests kept to the minimum: one identity list, one definitions list, one assignments list, N FIC lists."""
    estate = Estate()
    listed = [{**orders(), "name": f"w{i}", "service_account": f"w{i}"} for i in range(5)]
    estate.run(listed)
    calls: list[str] = []
    for api, names in (
        (estate.identities, ("list_all", "get")),
        (estate.fics, ("list_all", "get")),
        (estate.roles, ("list_definitions", "list_at", "at_scope_for", "resolve_role")),
    ):
        for name in names:
            original = getattr(api, name)

            def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                calls.append(_name)
                return _original(*args, **kwargs)

            setattr(api, name, counted)
    assert estate.run(listed)["changed"] is False
    assert len(calls) == 5 + 3 and calls.count("list_all") == 6
    assert READER.name == "Reader"


def test_workloads_the_plan_left_unchanged_are_not_read_checked_or_converged_again() -> None:
    """One changed workload among many: its own credentials are read, not every identity's; the others' rows are the
    plan's, and prune touches nothing of theirs (their roles are not resolved again, so nothing may be taken away)."""
    estate = Estate()
    listed = [
        {**orders({"role": "Reader", "scope": DATA}), "name": f"w{i}", "service_account": f"w{i}"} for i in range(6)
    ]
    estate.run(listed, prune=True)
    changed = [{**listed[0], "roles": [*listed[0]["roles"], {"role": "Storage Blob Data Contributor", "scope": DATA}]}]
    changed += listed[1:]
    plan = estate.run(changed, check_mode=True, prune=True)
    unchanged = [w["name"] for w in plan["workloads"] if not w["changed"]]
    assert unchanged == ["w1", "w2", "w3", "w4", "w5"]
    listings: list[str] = []
    original = estate.fics.list_all

    def counted(ref: IdentityRef) -> Any:
        listings.append(ref.name)
        return original(ref)

    estate.fics.list_all = counted  # type: ignore[method-assign]
    estate.writes.clear()
    batch = estate.batch(changed, prune=True)
    batch.reused = frozenset(unchanged)
    done = estate.engine.converge(batch, estate.engine.read(batch, workers=2), False, workers=2)
    assert listings == ["id-aks-dev-shop-w0"]
    assert [w["name"] for w in done["workloads"]] == ["w0"]
    assert [(w[0], w[1]) for w in estate.writes] == [("role", "put")]
    assert not any(done["pruned"].values())
    # And the estate is as a full converge leaves it: nothing left to do for anyone.
    assert estate.run(changed, prune=True)["changed"] is False


def test_credentials_read_in_parallel_are_what_one_reader_finds() -> None:
    estate = Estate()
    listed = [{**orders(), "name": f"w{i}", "service_account": f"w{i}"} for i in range(12)]
    estate.run(listed)
    batch = estate.batch(listed)
    one, eight = estate.engine.read(batch, workers=1), estate.engine.read(batch, workers=8)
    assert len(one.fics) == 12 and one.fics == eight.fics and one.identities == eight.identities


def test_teardown_adopted_deletes_an_identity_made_elsewhere_roles_first() -> None:
    estate = Estate()
    theirs = IdentityRef(SUB, "rg-ids", "id-by-hand")
    made = estate.identities.put(theirs, "westeurope", {"team": "shop"})
    estate.roles.items.append(assignment(DATA, BLOB, made["principal_id"], "made-by-the-operator"))
    listed = [{**orders({"role": "Reader", "scope": DATA}), "identity_name": "id-by-hand", "teardown_adopted": True}]
    estate.run(listed)
    estate.writes.clear()
    plan = estate.run(listed, check_mode=True, state="absent")
    assert estate.writes == [] and plan["workloads"][0]["identity"]["action"] == "deleted"
    estate.run(listed, state="absent")
    assert [w[:2] for w in estate.writes] == [("role", "delete"), ("role", "delete"), ("identity", "delete")]
    assert estate.identities.items == {} and estate.roles.items == []


def test_a_default_name_taken_by_an_identity_made_elsewhere_is_refused_with_how_to_adopt_it() -> None:
    estate = Estate()
    estate.identities.put(IdentityRef(SUB, "rg-ids", f"id-{CLUSTER}-shop-orders"), "westeurope", {"team": "shop"})
    estate.writes.clear()
    with pytest.raises(ValidationError) as refused:
        estate.run([orders()])
    assert refused.value.problems == [
        f"cluster {CLUSTER}: workload 'orders': identity_name: the default name id-{CLUSTER}-shop-orders is taken in "
        f"rg-ids by an identity this collection did not make; to adopt it, set identity_name: id-{CLUSTER}-shop-orders "
        "(and identity_resource_group: rg-ids); else set another identity_name"
    ]
    assert estate.writes == []
    adopted = estate.run([{**orders(), "identity_name": f"id-{CLUSTER}-shop-orders"}])  # named: adopted
    assert adopted["workloads"][0]["identity"]["action"] == "unchanged"


def test_a_role_that_can_grant_roles_is_refused_by_its_permissions_at_any_scope_custom_roles_included() -> None:
    base = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions"
    granter = Role(f"{base}/11111111-1111-1111-1111-111111111111", "11111111-1111-1111-1111-111111111111",
                   "Deployer", ((("Microsoft.Resources/*", "Microsoft.Authorization/*/write"), (), ()),))  # fmt: skip
    contributor_like = Role(f"{base}/22222222-2222-2222-2222-222222222222", "22222222-2222-2222-2222-222222222222",
                            "Operator", ((("*",), ("Microsoft.Authorization/*/Write",), ()),))  # fmt: skip
    reader_of_data = Role(f"{base}/33333333-3333-3333-3333-333333333333", "33333333-3333-3333-3333-333333333333",
                          "Blob Peeker", ((("*/read",), (), ("Microsoft.Storage/*/read",)),))  # fmt: skip
    estate = Estate()
    estate.roles.roles += [granter, contributor_like, reader_of_data]
    with pytest.raises(ValidationError) as refused:
        estate.run([orders({"role": "Deployer", "scope": DATA})])
    assert "role: Deployer allows Microsoft.Authorization/roleAssignments/write" in refused.value.problems[0]
    assert estate.writes == []
    broad = {"role": "Blob Peeker", "scope": f"/subscriptions/{SUB}"}
    done = estate.run([orders({"role": "Operator", "scope": DATA}, broad)])
    assert [r["action"] for r in done["workloads"][0]["role_assignments"]] == ["created", "created"]
    assert any("Blob Peeker at subscription scope reads or changes the data" in w for w in estate.engine.warnings)


def test_a_missing_scope_or_resource_group_is_found_by_reading_before_any_write_once_per_scope() -> None:
    missing = f"{DATA}/providers/Microsoft.Storage/storageAccounts/stgone"
    asked: list[str] = []

    class Roles(FakeRoles):
        def list_at(self, scope: str, filter: str | None = None) -> list[Any]:
            if filter == "atScope()":
                asked.append(scope)
                if scope == missing:
                    raise AzureApiError("not found", status=404, code="ResourceNotFound")
            return super().list_at(scope, filter)

    class Identities(FakeIdentities):
        def list_all(self, resource_group: str | None) -> list[Any]:
            if resource_group == "rg-gone":
                raise AzureApiError("no group", status=404, code="ResourceGroupNotFound")
            return super().list_all(resource_group)

    estate = Estate()
    estate.roles = Roles(estate.writes)
    estate.identities = Identities(estate.writes)
    estate.engine = Workloads(AzureApis(estate.identities, estate.fics, estate.roles, SUB))
    listed = [
        orders({"role": "Reader", "scope": missing}, {"role": "Reader", "scope": DATA}),
        {**orders({"role": "Reader", "scope": missing}), "name": "cart", "service_account": "cart"},
        {**orders(), "name": "lost", "service_account": "lost", "identity_resource_group": "rg-gone"},
    ]
    with pytest.raises(ValidationError) as refused:
        estate.run(listed)
    assert refused.value.problems == [
        f"cluster {CLUSTER}: workload 'orders': roles[0]: scope: {missing} does not exist (ResourceNotFound)",
        f"cluster {CLUSTER}: workload 'cart': roles[0]: scope: {missing} does not exist (ResourceNotFound)",
        f"cluster {CLUSTER}: workload 'lost': identity_resource_group: resource group rg-gone does not exist "
        f"(identity id-{CLUSTER}-shop-lost would be made there)",
    ]
    assert estate.writes == [] and sorted(asked) == sorted([missing, DATA])  # one read per distinct scope
    asked.clear()
    ok = [orders({"role": "Reader", "scope": DATA})]
    estate.run(ok)
    asked.clear()
    estate.run(ok)
    assert asked == []  # the assignment exists: its scope needs no read


def test_removal_alone_has_no_warnings_to_show() -> None:
    """The module reads the engine's warnings after a teardown too, where no plan check ran."""
    estate = Estate()
    estate.run([orders({"role": "Reader", "scope": DATA})], state="absent")
    assert estate.engine.warnings == []


# -- day 2: same-named clusters, renames and moves ---------------------------------------------------------------------
HERE, THERE = f"{SUB}/rg-aks-a", f"{SUB}/rg-aks-b"
OTHER_ISSUER = "https://oidc.example/tenant/aks-dev-b/"


def test_an_identity_made_for_a_same_named_cluster_elsewhere_is_refused_naming_both() -> None:
    estate = Estate()
    estate.run([orders()], scope=HERE)
    estate.writes.clear()
    with pytest.raises(ValidationError) as raised:
        estate.run([orders()], scope=THERE, issuer=OTHER_ISSUER, prune=True)
    assert raised.value.problems == [
        "cluster aks-dev: workload 'orders': identity_name: identity id-aks-dev-shop-orders in rg-ids is used by "
        f"cluster aks-dev in resource group rg-aks-a of subscription {SUB}, not by this cluster (resource group "
        f"rg-aks-b of subscription {SUB}); set identity_name (or identity_resource_group) so that each cluster has "
        "its own, or, to share one identity between clusters, the same identity_name on each"
    ]
    assert estate.writes == []
    # Nor does the other cluster's prune or teardown of everything take it.
    assert not estate.run([], scope=THERE, issuer=OTHER_ISSUER, prune=True)["changed"]
    assert not estate.run([], scope=THERE, issuer=OTHER_ISSUER, prune=True, state="absent")["changed"]
    assert estate.writes == [] and len(estate.identities.items) == 1


def test_an_identity_made_before_the_place_was_recorded_stays_its_clusters_and_gets_the_record() -> None:
    estate = Estate()
    estate.run([orders()])  # no scope: as an older release made it
    identity = next(iter(estate.identities.items.values()))
    assert "wi-cluster-scope" not in identity["tags"]
    first = estate.run([orders()], scope=HERE)
    assert first["workloads"][0]["identity"]["action"] == "updated"
    assert next(iter(estate.identities.items.values()))["tags"]["wi-cluster-scope"] == HERE.lower()
    assert not estate.run([orders()], scope=HERE)["changed"]


def test_on_an_identity_shared_with_a_same_named_cluster_each_keeps_its_own_credential() -> None:
    estate = Estate()
    shared = IdentityRef(SUB, "rg-ids", "shared")
    estate.identities.put(shared, "westeurope", {})
    declared = [{**orders(), "identity_name": "shared"}]
    estate.run(declared, scope=HERE)
    done = estate.run(declared, scope=THERE, issuer=OTHER_ISSUER)
    assert done["workloads"][0]["notes"] == [
        f"federated credential {fic_name(CLUSTER, SUBJECT)} on identity shared trusts another issuer ({ISSUER}): "
        "another cluster named aks-dev, or this one before it was re-created; left as it is"
    ]
    trusted = sorted(f["issuer"] for f in estate.fics.list_all(shared))
    assert trusted == sorted([ISSUER, OTHER_ISSUER])
    assert not estate.run(declared, scope=THERE, issuer=OTHER_ISSUER)["changed"]
    assert not estate.run(declared, scope=HERE)["changed"]
    # Teardown of the second takes its own credential only (this cluster's are those trusting its issuer).
    estate.run(declared, scope=THERE, issuer=OTHER_ISSUER, state="absent")
    assert [f["issuer"] for f in estate.fics.list_all(shared)] == [ISSUER]


def test_a_re_created_cluster_moves_its_own_credential_to_the_new_issuer_and_says_so() -> None:
    estate = Estate()
    estate.run([orders()], scope=HERE)
    done = estate.run([orders()], scope=HERE, issuer=OTHER_ISSUER)
    assert done["workloads"][0]["federated_credentials"][0]["action"] == "updated"
    assert done["workloads"][0]["notes"] == [
        f"federated credential {fic_name(CLUSTER, SUBJECT)}: issuer changes from {ISSUER} to {OTHER_ISSUER} (the "
        "cluster's issuer is not the one it trusted)"
    ]


def test_a_renamed_workload_keeps_its_identity_and_client_id() -> None:
    estate = Estate()
    estate.run([orders({"role": "Reader", "scope": DATA})], scope=HERE)
    before = next(iter(estate.identities.items.values()))
    estate.writes.clear()
    renamed = [{**orders({"role": "Reader", "scope": DATA}), "name": "checkout"}]
    plan = estate.run(renamed, check_mode=True, scope=HERE, prune=True)
    done = estate.run(renamed, scope=HERE, prune=True)
    for result in (plan, done):
        row = result["workloads"][0]
        assert row["identity"]["name"] == before["name"] and row["identity"]["client_id"] == before["client_id"]
        assert row["notes"] == [
            f"identity {before['name']} kept (client id {before['client_id']}, its pods' sign-in uninterrupted): "
            "workload orders renamed checkout"
        ]
        assert [f["action"] for f in row["federated_credentials"]] == ["unchanged"]
        assert [r["action"] for r in row["role_assignments"]] == ["unchanged"]
        assert not any(result["pruned"].values())
    # Only the marks change: no identity made or deleted, no credential or assignment touched.
    assert estate.writes == [("identity", "tags merge", before["name"])]
    assert next(iter(estate.identities.items.values()))["tags"]["wi-workload"] == "checkout"
    assert not estate.run(renamed, scope=HERE, prune=True)["changed"]


def test_a_workload_moved_to_another_namespace_keeps_its_identity_new_trust_first() -> None:
    estate = Estate()
    estate.run([orders()], scope=HERE)
    before = next(iter(estate.identities.items.values()))
    estate.writes.clear()
    moved = [{**orders(), "namespace": "shop-v2"}]
    done = estate.run(moved, scope=HERE, prune=True)
    row = done["workloads"][0]
    assert row["identity"]["client_id"] == before["client_id"]
    assert "moved from shop/orders" in row["notes"][0]
    new, old = fic_name(CLUSTER, "system:serviceaccount:shop-v2:orders"), fic_name(CLUSTER, SUBJECT)
    fic_writes = [w for w in estate.writes if w[0] == "fic"]
    assert fic_writes == [("fic", "put", f"{before['name']}/{new}"), ("fic", "delete", f"{before['name']}/{old}")]
    assert list(estate.identities.items.values())[0]["client_id"] == before["client_id"]
    assert len(estate.identities.items) == 1
    assert not estate.run(moved, scope=HERE, prune=True)["changed"]


def test_an_identity_another_listed_workload_still_names_is_not_taken_by_a_rename() -> None:
    estate = Estate()
    estate.run([orders()], scope=HERE)
    both = [orders(), {**orders(), "name": "checkout", "service_account": "checkout"}]
    done = estate.run(both, scope=HERE)
    assert [w["identity"]["action"] for w in done["workloads"]] == ["unchanged", "created"]
    assert all(w["notes"] == [] for w in done["workloads"])


def test_an_identity_replaced_under_a_listed_service_account_is_kept_until_a_call_without_defer() -> None:
    estate = Estate()
    estate.run([orders({"role": "Reader", "scope": DATA})], scope=HERE)
    old = next(iter(estate.identities.items.values()))
    estate.writes.clear()
    renamed_identity = [{**orders({"role": "Reader", "scope": DATA}), "identity_name": "id-orders-v2"}]
    batch = estate.batch(renamed_identity, prune=True, scope=HERE)
    batch.defer_replaced = True
    kept = dict(estate.engine.converge(batch, estate.engine.read(batch), False, workers=2))
    assert kept["pruned"]["replaced"] == [
        {"name": old["name"], "resource_group": "rg-ids", "client_id": old["client_id"], "workload": "orders"}
    ]
    # Nothing of the old one is touched yet: its pods still sign in as it, with its access.
    assert not [w for w in estate.writes if w[1] == "delete"]
    assert len(estate.identities.items) == 2
    # The same converge without keeping it removes it, its assignment first.
    done = estate.run(renamed_identity, prune=True, scope=HERE)
    assert [i["name"] for i in done["pruned"]["identities"]] == [old["name"]]
    assert len(done["pruned"]["role_assignments"]) == 1 and done["pruned"]["replaced"] == []
    assert not estate.run(renamed_identity, prune=True, scope=HERE)["changed"]


def test_an_identity_deleted_while_the_plan_reads_it_is_read_again_and_reported_not_a_raw_404() -> None:
    estate = Estate()
    estate.run([orders()], scope=HERE)
    gone = next(iter(estate.identities.items.values()))
    fics, identities = estate.fics, estate.identities
    listing = fics.list_all

    def deleted_meanwhile(ref: IdentityRef) -> Any:
        if identities.get(ref) is not None:
            identities.items.pop(ref.id.lower())  # someone deletes it between the two reads
            raise AzureApiError("not found", status=404, code="ResourceNotFound")
        return listing(ref)

    fics.list_all = deleted_meanwhile  # type: ignore[method-assign]
    plan = estate.run([orders()], check_mode=True, scope=HERE)
    assert plan["workloads"][0]["identity"]["action"] == "created"
    assert estate.engine.warnings == [
        f"cluster aks-dev: identity {gone['name']} in rg-ids was deleted while this run read it (by someone else): "
        "planned as not there"
    ]


def test_a_new_location_is_for_new_identities_and_each_existing_one_says_it_stays() -> None:
    estate = Estate()
    estate.run([orders(), {**orders(), "name": "cart", "service_account": "cart"}], scope=HERE)
    batch = estate.batch([orders(), {**orders(), "name": "cart", "service_account": "cart"}], scope=HERE)
    batch.location = "North Europe"
    done = dict(estate.engine.converge(batch, estate.engine.read(batch), False, workers=1))
    assert not done["changed"]
    assert [w["notes"] for w in done["workloads"]] == [
        [
            f"identity id-aks-dev-shop-{name} stays in westeurope (new identities go to northeurope; "
            "an identity cannot move)"
        ]
        for name in ("orders", "cart")
    ]


def test_a_write_the_automation_may_not_make_is_a_plan_problem_naming_the_role_and_scope_and_nothing_is_written() -> (
    None
):
    estate = Estate()
    listed = [orders({"role": "Reader", "scope": DATA})]
    estate.roles.denied.append((DATA, "Microsoft.Authorization/roleAssignments/write"))
    for check_mode in (True, False):
        with pytest.raises(ValidationError) as refused:
            estate.run(listed, check_mode=check_mode)
        assert refused.value.problems == [
            f"cluster {CLUSTER}: workload 'orders': roles[0]: scope: the automation principal may not "
            f"Microsoft.Authorization/roleAssignments/write at {DATA} (ARM's permissions API); grant it Role Based "
            "Access Control Administrator (or User Access Administrator) there or above, then run again (nothing was "
            "changed)"
        ]
    assert estate.writes == []  # not the identity, not its credential: nothing before the problem
    # One question per scope the plan writes at: the identity's resource group and the role's scope.
    assert sorted(set(estate.roles.asked)) == sorted({f"/subscriptions/{SUB}/resourceGroups/rg-ids", DATA})
    estate.roles.denied.clear()
    estate.run(listed)
    estate.roles.asked.clear()
    assert not estate.run(listed)["changed"]
    assert estate.roles.asked == []  # a plan that writes nothing asks nothing


def test_an_identity_the_automation_may_manage_only_by_itself_is_asked_about_alone() -> None:
    estate = Estate()
    estate.run([orders()])
    (identity,) = list(estate.identities.items.values())
    group = f"/subscriptions/{SUB}/resourceGroups/rg-ids"
    # Managed Identity Contributor on the identity alone: its group says no, the identity itself yes.
    estate.roles.denied.append((group, "Microsoft.ManagedIdentity/userAssignedIdentities/*"))
    original = estate.roles.permissions

    def on_the_identity(scope: str) -> Any:
        return ((("*",), (), ()),) if scope.lower() == identity["id"].lower() else original(scope)

    estate.roles.permissions = on_the_identity  # type: ignore[method-assign]
    tagged = [{**orders(), "tags": {"team": "shop"}}]
    assert estate.run(tagged, check_mode=True)["workloads"][0]["identity"]["action"] == "updated"
    # A new identity in that group is another matter: named, with the role to grant.
    with pytest.raises(ValidationError) as refused:
        estate.run([*tagged, {**orders(), "name": "cart", "service_account": "cart"}], check_mode=True)
    assert [p.split(": the automation")[0] for p in refused.value.problems] == [
        f"cluster {CLUSTER}: workload 'cart': identity_name",
        f"cluster {CLUSTER}: workload 'cart': service_account (its federated credential)",
    ]
    assert "grant it Managed Identity Contributor there or above" in refused.value.problems[0]


def test_a_scope_whose_permissions_cannot_be_read_is_not_checked_and_the_run_says_so() -> None:
    estate = Estate()

    def unreadable(scope: str) -> Any:
        raise AzureApiError("no permissions here", status=400, code="InvalidResourceType")

    estate.roles.permissions = unreadable  # type: ignore[method-assign]
    done = estate.run([orders({"role": "Reader", "scope": DATA})])
    assert done["workloads"][0]["role_assignments"][0]["action"] == "created"
    assert f"cluster {CLUSTER}: the automation principal's permissions at {DATA} could not be read " in " ".join(
        estate.engine.warnings
    )


def test_the_subscription_is_read_while_the_identities_are_listed() -> None:
    """The reads that do not depend on one another are in flight together: the role definitions and assignments are
    asked for before the identities' list has answered (sequentially, this test would wait for nothing and fail)."""
    estate = Estate()
    estate.run([orders({"role": "Reader", "scope": DATA})])
    definitions_asked = threading.Event()
    list_definitions, list_all = estate.roles.list_definitions, estate.identities.list_all

    def definitions(scope: str) -> list[Role]:
        definitions_asked.set()
        return list_definitions(scope)

    def identities(group: str) -> Any:
        assert definitions_asked.wait(10), "the identities' list answered before the subscription was asked"
        return list_all(group)

    estate.roles.list_definitions = definitions  # type: ignore[method-assign]
    estate.identities.list_all = identities  # type: ignore[method-assign]
    again = estate.run([orders({"role": "Reader", "scope": DATA})])
    assert not again["changed"]
