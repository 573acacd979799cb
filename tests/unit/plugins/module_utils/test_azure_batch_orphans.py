"""Role assignments that outlive their principal (_azure_batch_orphans, _ownership_assignments): what the collection
grants is marked; what bears this cluster's mark and lost its principal is deleted with prune, else reported; an
operator's assignment is never touched.

Asserted: decisions and writes (counted), never time.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis, Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._guard import azure_deletions
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef, assignment_name
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import FORMAT_VERSION, cluster_scope
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership_assignments import (
    AssignmentMark,
    marked_description,
    read_mark,
)

from .fakes import BLOB, READER, SUB, FakeFics, FakeIdentities, FakeRoles, Writes, assignment
from .test_azure_batch_apps import GraphApps

CLUSTER = "aks-dev"
PLACE = cluster_scope(SUB, "rg-aks-dev")
ISSUER = "https://oidc.example/tenant/aks-dev/"
DATA = f"/subscriptions/{SUB}/resourceGroups/rg-data"
REF = IdentityRef(SUB, "rg-ids", "id-orders")


def orders(**more: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "namespace": "shop",
        "service_account": "orders",
        "identity_name": "id-orders",
        "roles": [{"role": "Reader", "scope": DATA}],
        **more,
    }


class Estate:
    def __init__(self) -> None:
        self.writes = Writes()
        self.identities = FakeIdentities(self.writes)
        self.roles = FakeRoles(self.writes)
        self.apps = GraphApps()
        self.engine = Workloads(AzureApis(self.identities, FakeFics(self.writes), self.roles, SUB), self.apps)

    def batch(self, workloads: list[dict[str, Any]], prune: bool, state: str, defer: bool) -> Batch:
        validated = validate_workloads(
            CLUSTER, workloads, identity_resource_group="rg-ids", allow_privileged_roles=False
        )
        assert validated.problems == []
        return Batch(
            CLUSTER,
            SUB,
            ISSUER,
            "westeurope",
            validated.specs,
            prune,
            False,
            ("rg-ids",),
            state,
            cluster_scope=PLACE,
            defer_replaced=defer,
        )

    def run(
        self,
        workloads: list[dict[str, Any]],
        prune: bool = False,
        check_mode: bool = False,
        state: str = "present",
        defer: bool = False,
    ) -> dict[str, Any]:
        batch = self.batch(workloads, prune, state, defer)
        reads = self.engine.read(batch)
        if state == "absent":
            return dict(self.engine.remove(batch, reads, check_mode))
        return dict(self.engine.converge(batch, reads, check_mode, workers=1))

    def assigned(self, principal: str) -> list[Any]:
        return [a for a in self.roles.items if a.principal_id == principal]

    def principal(self) -> str:
        return str(self.identities.items[REF.id.lower()]["principal_id"])

    def deleted(self) -> list[tuple[str, ...]]:
        return [w for w in self.writes if w[:2] == ("role", "delete")]


def test_the_mark_reads_back_what_was_written_and_follows_the_declared_description() -> None:
    mark = AssignmentMark(CLUSTER, PLACE, "shop", "orders", "identity", "rg-ids/id-orders")
    assert read_mark(mark.text) == mark
    assert read_mark(marked_description("orders reads its data", mark.text)) == mark
    unplaced = mark._replace(place=None)
    assert read_mark(unplaced.text) == unplaced and unplaced.of(CLUSTER, PLACE)
    assert not mark.of(CLUSTER, cluster_scope(SUB, "rg-elsewhere")) and not mark.of("aks-prd", PLACE)
    # Only at the end, whole: an operator's text that quotes it, or a truncated one, is no mark.
    assert read_mark(f"{mark.text} and more") is None
    assert read_mark(mark.text[:-1]) is None
    assert read_mark(None) is None


def test_what_the_collection_grants_carries_the_mark_after_the_declared_description() -> None:
    estate = Estate()
    estate.run([orders(roles=[{"role": "Reader", "scope": DATA, "description": "orders reads its data"}])])
    (made,) = estate.assigned(estate.principal())
    mark = read_mark(made.description)
    # A new assignment's mark is written in the current format.
    assert mark == AssignmentMark(CLUSTER, PLACE, "shop", "orders", "identity", "rg-ids/id-orders", FORMAT_VERSION)
    assert made.description == marked_description("orders reads its data", mark.text if mark else "")
    assert (
        estate.run([orders(roles=[{"role": "Reader", "scope": DATA, "description": "orders reads its data"}])])[
            "changed"
        ]
        is False
    )


def test_an_identity_deleted_by_hand_leaves_assignments_that_prune_deletes_and_check_mode_predicts() -> None:
    estate = Estate()
    estate.run([orders()])
    old = estate.principal()
    estate.identities.items.clear()  # deleted by hand: Azure keeps its assignments
    # The operator's own assignment of the same vanished principal, at the same scope, has no mark.
    estate.roles.items.append(assignment(DATA, BLOB, old, "operators-own"))
    planned = estate.run([orders()], prune=True, check_mode=True)
    (orphan,) = planned["orphaned_assignments"]
    assert orphan["principal_id"] == old and orphan["action"] == "deleted" and orphan["workload"] == "shop/orders"
    assert "no longer exists" in orphan["why"] and orphan["granted_to"] == "identity rg-ids/id-orders"
    assert estate.deleted() == []
    writes = len(estate.writes)
    done = estate.run([orders()], prune=True)
    assert done["orphaned_assignments"] == planned["orphaned_assignments"]
    assert [a.name for a in estate.assigned(old)] == ["operators-own"]
    assert len(estate.assigned(estate.principal())) == 1 and estate.principal() != old
    assert len(estate.deleted()) == 1 and len(estate.writes) - writes == 4  # identity, credential, assignment, delete
    again = estate.run([orders()], prune=True)
    assert again["changed"] is False and again["orphaned_assignments"] == []


def test_without_prune_orphans_are_reported_and_nothing_is_deleted() -> None:
    estate = Estate()
    estate.run([orders()])
    old = estate.principal()
    estate.identities.items.clear()
    estate.run([orders()])  # re-created; prune off
    result = estate.run([orders()])
    assert result["changed"] is False
    (orphan,) = result["orphaned_assignments"]
    assert orphan["action"] == "reported" and orphan["principal_id"] == old
    assert estate.deleted() == [] and len(estate.assigned(old)) == 1


def test_another_clusters_mark_and_an_unmarked_assignment_are_never_orphans_of_this_one() -> None:
    estate = Estate()
    vanished = str(uuid.uuid4())
    theirs = AssignmentMark("aks-prd", cluster_scope(SUB, "rg-aks-prd"), "shop", "orders", "identity", "rg-ids/x")
    elsewhere = AssignmentMark(CLUSTER, cluster_scope(SUB, "rg-other"), "shop", "orders", "identity", "rg-ids/x")
    estate.roles.items += [
        assignment(DATA, READER, vanished, description=theirs.text),
        assignment(DATA, BLOB, vanished, description=elsewhere.text),
        assignment(f"{DATA}/sub", READER, vanished, description="made by hand"),
    ]
    result = estate.run([orders()], prune=True)
    assert result["orphaned_assignments"] == [] and estate.deleted() == []


def test_an_assignment_from_before_marks_is_marked_and_an_operators_is_adopted_as_it_is() -> None:
    estate = Estate()
    estate.run([orders(roles=[])])
    principal = estate.principal()
    estate.roles.items += [
        # Made by an earlier release: this collection's name for it, no mark.
        assignment(DATA, READER, principal, assignment_name(DATA, READER.guid, principal)),
        # Made by an operator under a name of their own, with their description.
        assignment(DATA, BLOB, principal, "by-hand", description="ticket 42"),
    ]
    workloads = [orders(roles=[{"role": "Reader", "scope": DATA}, {"role": BLOB.guid, "scope": DATA}])]
    result = estate.run(workloads)
    reader, blob = result["workloads"][0]["role_assignments"]
    assert (reader["action"], reader["adopted"]) == ("updated", False)
    assert (blob["action"], blob["adopted"]) == ("unchanged", True)
    by_name = {a.name: a for a in estate.assigned(principal)}
    assert read_mark(by_name[reader["name"]].description) is not None
    assert by_name["by-hand"].description == "ticket 42"
    assert estate.run(workloads)["changed"] is False


def test_an_assignment_marked_by_another_cluster_keeps_that_mark() -> None:
    estate = Estate()
    estate.run([orders(roles=[])])
    principal = estate.principal()
    theirs = AssignmentMark("aks-prd", None, "shop", "orders", "identity", "rg-ids/id-orders")
    estate.roles.items.append(
        assignment(DATA, READER, principal, assignment_name(DATA, READER.guid, principal), description=theirs.text)
    )
    result = estate.run([orders()])
    assert result["changed"] is False
    assert read_mark(estate.assigned(principal)[0].description) == theirs


def test_an_identity_made_elsewhere_that_the_workload_left_loses_what_the_collection_granted_it() -> None:
    estate = Estate()
    elsewhere = IdentityRef(SUB, "rg-ids", "id-by-hand")
    estate.identities.put(elsewhere, "westeurope", {})
    adopted = str(estate.identities.items[elsewhere.id.lower()]["principal_id"])
    estate.roles.items.append(assignment(DATA, BLOB, adopted, "operators-own"))
    estate.run([orders(identity_name="id-by-hand")])
    assert len(estate.assigned(adopted)) == 2  # the operator's, and the Reader this collection granted
    # The workload moves to an identity of its own. The rollout first holds the old assignments while pods restart.
    held = estate.run([orders()], prune=True, defer=True)
    assert held["orphaned_assignments"] == []
    (replaced,) = held["pruned"]["replaced"]
    assert replaced["name"] == "id-by-hand" and replaced["assignments_only"] is True
    assert len(estate.assigned(adopted)) == 2
    # Then, once no pod signs in as it, the same converge without holding removes them (the identity stays).
    done = estate.run([orders()], prune=True)
    (orphan,) = done["orphaned_assignments"]
    assert "no workload of this cluster uses now" in orphan["why"] and orphan["action"] == "deleted"
    assert [a.name for a in estate.assigned(adopted)] == ["operators-own"]
    assert elsewhere.id.lower() in estate.identities.items
    assert estate.run([orders()], prune=True)["changed"] is False


def test_teardown_of_everything_removes_orphans_too_and_the_guard_counts_them() -> None:
    estate = Estate()
    estate.run([orders()])
    old = estate.principal()
    estate.identities.items.clear()
    planned = estate.run([], prune=True, state="absent", check_mode=True)
    units, lines = azure_deletions(planned)  # type: ignore[arg-type]
    assert units == 1 and lines == [f"role assignment Reader @ {DATA} of identity rg-ids/id-orders (orphaned)"]
    estate.run([], prune=True, state="absent")
    assert estate.assigned(old) == []


def test_a_deleted_app_registration_leaves_assignments_that_prune_deletes() -> None:
    estate = Estate()
    app = [orders(identity_type="application", application_unique_name="orders-app")]
    app[0].pop("identity_name")
    estate.run(app)
    old_app = next(iter(estate.apps.apps.values()))
    old = estate.apps.principals.pop(old_app["appId"])["id"]
    estate.apps.apps.clear()  # deleted by hand (its service principal with it)
    result = estate.run(app, prune=True)
    (orphan,) = result["orphaned_assignments"]
    assert orphan["principal_id"] == old and orphan["granted_to"] == f"application {old_app['appId']}"
    assert estate.assigned(old) == []
    assert estate.apps.writes.count(("read principal", old)) == 1  # asked once
    assert estate.run(app, prune=True)["changed"] is False


def test_a_declared_description_too_long_for_the_mark_is_refused_before_any_write() -> None:
    estate = Estate()
    with pytest.raises(ValidationError) as raised:
        estate.run([orders(roles=[{"role": "Reader", "scope": DATA, "description": "x" * 1000}])])
    (problem,) = raised.value.problems
    assert problem.startswith("cluster aks-dev: workload 'orders': roles[0].description: with the collection's mark")
    assert estate.writes == []


def test_a_principal_graph_will_not_show_is_not_taken_for_gone_and_a_warning_says_so() -> None:
    estate = Estate()
    app = [orders(identity_type="application", application_unique_name="orders-app")]
    app[0].pop("identity_name")
    estate.run(app)
    estate.apps.principal_by_id = refused  # type: ignore[method-assign]
    result = estate.run([orders()])  # the app's workload no longer listed (no prune): its principal is not read
    assert result["orphaned_assignments"] == [] and estate.deleted() == []
    assert "1 principal(s) of role assignments" in estate.engine.warnings[0]


def refused(object_id: str) -> Any:
    raise AzureApiError("Insufficient privileges", 403, "Authorization_RequestDenied", operation="get")
