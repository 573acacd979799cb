"""One identity used by a workload on several clusters (_azure_batch_shared): blue and green clusters on the same fake
Azure, each converged by its own engine as its own host would, knowing the other from the inventory (``peers``).

Asserted: the decisions and the writes (counted), never time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis, Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_shared import peers_from
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import (
    claims,
    cluster_scope,
    fic_name,
    format_mark,
    identity_marks,
)

from .fakes import BLOB, READER, SUB, FakeFics, FakeIdentities, FakeRoles, Writes, assignment
from .test_azure_batch_apps import GraphApps

DATA = f"/subscriptions/{SUB}/resourceGroups/rg-data"
SUBJECT = "system:serviceaccount:shop:orders"
CLUSTERS = {"aks-blue": "rg-aks-blue", "aks-green": "rg-aks-green"}
SHARED = IdentityRef(SUB, "rg-ids", "id-orders")


def issuer(cluster: str) -> str:
    return f"https://oidc.example/tenant/{cluster}/"


def orders(*roles: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "namespace": "shop",
        "service_account": "orders",
        "identity_name": "id-orders",
        "roles": list(roles) or [{"role": "Reader", "scope": DATA}],
        **more,
    }


class Estate:
    """One subscription's identities, credentials and assignments, and the inventory's declarations per cluster."""

    def __init__(self) -> None:
        self.writes = Writes()
        self.identities = FakeIdentities(self.writes)
        self.fics = FakeFics(self.writes)
        self.roles = FakeRoles(self.writes)
        self.apps = GraphApps()
        self.inventory: dict[str, list[dict[str, Any]]] = {c: [orders()] for c in CLUSTERS}
        self.clusters = FakeClusters(set(CLUSTERS))
        self.warnings: list[str] = []

    def batch(
        self, cluster: str, run: tuple[str, ...], prune: bool = False, state: str = "present", release: bool = False
    ) -> Batch:
        validated = validate_workloads(
            cluster, self.inventory[cluster], identity_resource_group="rg-ids", allow_privileged_roles=False
        )
        assert validated.problems == []
        scope = cluster_scope(SUB, CLUSTERS.get(cluster, f"rg-{cluster}"))
        entries = [
            {
                "cluster_name": other,
                "cluster_resource_group": CLUSTERS.get(other, f"rg-{other}"),
                "identity_resource_group": "rg-ids",
                "in_run": other in run,
                "workloads": workloads,
            }
            for other, workloads in self.inventory.items()
            if other != cluster
        ]
        return Batch(
            cluster,
            SUB,
            issuer(cluster),
            "westeurope",
            validated.specs,
            prune,
            False,
            ("rg-ids",),
            state,
            cluster_scope=scope,
            peers=peers_from(entries, SUB, cluster, scope),
            release_gone=release,
        )

    def run(
        self,
        cluster: str,
        run: tuple[str, ...] = (),
        check_mode: bool = False,
        read_together: threading.Barrier | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One host's converge (or removal); ``run``: the hosts converging in this run (this one too).
        ``read_together``: every host has read before any writes (what they read is stale by the time they do)."""
        engine = Workloads(AzureApis(self.identities, self.fics, self.roles, SUB, self.clusters), self.apps)
        batch = self.batch(cluster, run or (cluster,), **kwargs)
        reads = engine.read(batch)
        self.warnings = list(engine.warnings)
        if read_together is not None:
            read_together.wait(timeout=30)
        if batch.state == "absent":
            result = dict(engine.remove(batch, reads, check_mode))
        else:
            result = dict(engine.converge(batch, reads, check_mode, workers=2))
        self.warnings = list(engine.warnings)
        return result

    def identity(self) -> dict[str, Any] | None:
        return self.identities.items.get(SHARED.id.lower())

    def credentials(self) -> dict[str, str]:
        """Name -> issuer of the shared identity's credentials."""
        return {f["name"]: f["issuer"] for f in self.fics.items.get(SHARED.id.lower(), {}).values()}

    def claimed(self) -> list[str]:
        identity = self.identity()
        return sorted(c.cluster for c in claims(identity["tags"])) if identity else []


class FakeClusters:
    """Which clusters exist, as ARM answers a GET of each (in any resource group of the subscription)."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.asked: list[str] = []

    def get(self, resource_group: str, name: str) -> dict[str, Any] | None:
        self.asked.append(name)
        return {"name": name} if name in self.existing else None


def at_once(estate: Estate, **kwargs: Any) -> None:
    """Every cluster's host run in parallel, each writing on what it read before any of them wrote."""
    failures: list[Exception] = []
    together = threading.Barrier(len(CLUSTERS))

    def host(cluster: str) -> None:
        try:
            estate.run(cluster, tuple(CLUSTERS), read_together=together, **kwargs)
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=host, args=(c,)) for c in CLUSTERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def both_converged(estate: Estate) -> None:
    run = tuple(CLUSTERS)
    for cluster in CLUSTERS:
        estate.run(cluster, run)


def test_one_identity_two_credentials_one_assignment_and_nothing_changes_the_second_time() -> None:
    estate = Estate()
    run = tuple(CLUSTERS)
    plans = {c: estate.run(c, run, check_mode=True) for c in CLUSTERS}
    assert estate.writes == []
    blue = estate.run("aks-blue", run)
    assert blue["workloads"][0]["identity"]["action"] == plans["aks-blue"]["workloads"][0]["identity"]["action"]
    assert blue["workloads"][0]["identity"]["action"] == "created"
    # Made for the first of the run's clusters, claimed for both: the green host writes the same tags.
    tags = estate.identity()["tags"]
    assert {k: v for k, v in tags.items() if not k.startswith("wi-uses:")} == {
        **identity_marks("aks-blue", "shop", "orders", "orders", cluster_scope(SUB, "rg-aks-blue")),
        **format_mark(),
    }
    assert tags["wi-uses:aks-blue"] == f"{SUB}/rg-aks-blue".lower()
    assert tags["wi-uses:aks-green"] == f"{SUB}/rg-aks-green".lower()
    green = estate.run("aks-green", run)
    assert green["workloads"][0]["identity"]["action"] == "unchanged"
    assert [f["action"] for f in green["workloads"][0]["federated_credentials"]] == ["created"]
    assert [r["action"] for r in green["workloads"][0]["role_assignments"]] == ["unchanged"]
    assert len(estate.identities.items) == 1 and len(estate.roles.items) == 1
    assert estate.credentials() == {
        fic_name("aks-blue", SUBJECT): issuer("aks-blue"),
        fic_name("aks-green", SUBJECT): issuer("aks-green"),
    }
    writes = len(estate.writes)
    assert not any(estate.run(c, run)["changed"] for c in CLUSTERS)
    assert len(estate.writes) == writes


def test_declarations_that_differ_are_refused_on_both_clusters_naming_the_difference() -> None:
    estate = Estate()
    estate.inventory["aks-green"] = [orders({"role": "Reader", "scope": DATA}, {"role": BLOB.name, "scope": DATA})]
    estate.inventory["aks-green"][0]["tags"] = {"team": "green"}
    run = tuple(CLUSTERS)
    with pytest.raises(ValidationError) as blue:
        estate.run("aks-blue", run, check_mode=True)
    assert blue.value.problems == [
        "cluster aks-blue: workload 'orders': roles: identity id-orders is shared with cluster aks-green (workload "
        "'orders'), which declares other role assignments (only on aks-blue: none; only on aks-green: Storage Blob "
        f"Data Contributor @ {DATA}); a shared identity holds one set of assignments: declare them identically on "
        "every cluster that names it",
        "cluster aks-blue: workload 'orders': tags: identity id-orders is shared with cluster aks-green (workload "
        "'orders'), which declares other tags (team differ); declare them identically on every cluster that names it",
    ]
    with pytest.raises(ValidationError) as green:
        estate.run("aks-green", run)
    assert "only on aks-green: none; only on aks-blue: none" not in green.value.problems[0]
    assert (
        "cluster aks-green: workload 'orders': roles: identity id-orders is shared with cluster aks-blue"
        in (green.value.problems[0])
    )
    assert estate.writes == []


def test_a_role_named_by_name_on_one_cluster_and_by_guid_on_the_other_is_one_declaration() -> None:
    estate = Estate()
    estate.inventory["aks-green"] = [orders({"role": READER.guid, "scope": DATA.upper()})]
    both_converged(estate)
    assert len(estate.roles.items) == 1


def test_the_twenty_credentials_are_counted_for_the_whole_inventory_before_any_write() -> None:
    estate = Estate()
    for n in range(19):
        estate.inventory[f"aks-{n:02}"] = [orders()]
    run = tuple(estate.inventory)
    with pytest.raises(ValidationError) as raised:
        estate.run("aks-blue", run, check_mode=True)
    problem = raised.value.problems[0]
    assert problem.startswith(
        "cluster aks-blue: workload 'orders': identity_name: identity id-orders would need 21 federated credentials, "
        "more than Azure allows per identity (20): clusters aks-00 (1), aks-01 (1),"
    )
    assert "aks-blue (1), aks-green (1); give a group of these clusters another identity_name" in problem
    assert estate.writes == []
    del estate.inventory["aks-18"]
    estate.run("aks-blue", tuple(estate.inventory))  # 20 fit


def test_a_run_limited_to_one_cluster_claims_for_it_alone_and_never_touches_the_others_credential() -> None:
    estate = Estate()
    both_converged(estate)
    estate.inventory["aks-blue"] = [{**orders(), "extra_subjects": ["system:serviceaccount:shop:orders-batch"]}]
    estate.inventory["aks-green"] = [{**orders(), "extra_subjects": ["system:serviceaccount:shop:orders-batch"]}]
    estate.writes.clear()
    estate.run("aks-blue", ("aks-blue",), prune=True)
    assert [w[:2] for w in estate.writes] == [("fic", "put")]
    assert fic_name("aks-green", SUBJECT) in estate.credentials()


def test_letting_go_of_a_shared_identity_keeps_it_for_the_other_then_the_last_removes_everything() -> None:
    estate = Estate()
    both_converged(estate)
    plan = estate.run("aks-blue", state="absent", check_mode=True)
    assert estate.writes.count(("fic", "delete", f"id-orders/{fic_name('aks-blue', SUBJECT)}")) == 0
    blue = estate.run("aks-blue", state="absent")
    assert blue["workloads"][0]["identity"]["action"] == plan["workloads"][0]["identity"]["action"] == "released"
    assert blue["changed"] and blue["workloads"][0]["role_assignments"] == []
    assert estate.credentials() == {fic_name("aks-green", SUBJECT): issuer("aks-green")}
    assert estate.claimed() == ["aks-green"] and len(estate.roles.items) == 1
    assert not estate.run("aks-blue", state="absent")["changed"]
    green = estate.run("aks-green", state="absent")
    assert green["workloads"][0]["identity"]["action"] == "deleted"
    assert estate.identity() is None and estate.roles.items == []


def test_prune_of_a_workload_dropped_on_one_cluster_releases_the_identity_for_the_other() -> None:
    estate = Estate()
    both_converged(estate)
    estate.inventory["aks-blue"] = []
    done = estate.run("aks-blue", prune=True)
    assert done["pruned"]["identities"] == [] and done["pruned"]["role_assignments"] == []
    assert done["pruned"]["released"] == [
        {
            "name": "id-orders",
            "resource_group": "rg-ids",
            "used_by": [f"cluster aks-green in resource group rg-aks-green of subscription {SUB}"],
        }
    ]
    assert [f["name"] for f in done["pruned"]["federated_credentials"]] == [fic_name("aks-blue", SUBJECT)]
    assert estate.claimed() == ["aks-green"] and len(estate.roles.items) == 1
    assert not estate.run("aks-blue", prune=True)["changed"]


def test_an_identity_also_used_by_a_cluster_the_inventory_does_not_declare_keeps_its_assignments() -> None:
    estate = Estate()
    estate.inventory = {"aks-blue": [orders()], "aks-red": [orders()]}
    estate.run("aks-blue", ("aks-blue", "aks-red"))
    del estate.inventory["aks-red"]  # declared by another inventory from now on
    assert not estate.run("aks-blue")["changed"]
    red = f"cluster aks-red in resource group rg-aks-red of subscription {SUB}"
    remedy = (
        "declare it from an inventory that declares every cluster that uses it (a cluster that no longer exists: "
        "remove its claim, the tag wi-uses:aks-red, from the identity)"
    )
    estate.inventory["aks-blue"] = [orders({"role": "Reader", "scope": DATA}, {"role": BLOB.name, "scope": DATA})]
    with pytest.raises(ValidationError) as raised:
        estate.run("aks-blue", check_mode=True, prune=True)
    assert raised.value.problems == [
        f"cluster aks-blue: workload 'orders': roles: identity id-orders is also used by {red}, which this inventory "
        "does not declare, so nothing says it agrees: this run changes none of its role assignments, and uses it only "
        f"when it holds exactly the declared ones (it would grant Storage Blob Data Contributor @ {DATA}); {remedy}"
    ]
    # Nor is it used while it holds more than declared: the workload would get what it does not declare.
    estate.roles.items.append(assignment(DATA, BLOB, estate.identity()["principal_id"]))
    estate.inventory["aks-blue"] = [orders()]
    with pytest.raises(ValidationError) as raised:
        estate.run("aks-blue", prune=True)
    assert f"(it also holds Storage Blob Data Contributor @ {DATA}); {remedy}" in raised.value.problems[0]
    assert len(estate.roles.items) == 2


def test_an_identity_made_before_claims_were_recorded_is_claimed_for_its_cluster_too() -> None:
    estate = Estate()
    estate.identities.put(
        SHARED, "westeurope", identity_marks("aks-blue", "shop", "orders", "orders", cluster_scope(SUB, "rg-aks-blue"))
    )
    estate.run("aks-green", ("aks-green",))
    assert estate.claimed() == ["aks-blue", "aks-green"]
    estate.run("aks-green", state="absent")
    assert estate.claimed() == ["aks-blue"] and estate.identity() is not None


def test_two_hosts_at_once_end_with_one_identity_both_claims_and_one_assignment() -> None:
    estate = Estate()
    run = tuple(CLUSTERS)
    at_once(estate)
    assert estate.claimed() == ["aks-blue", "aks-green"]
    assert len(estate.identities.items) == 1 and len(estate.roles.items) == 1 and len(estate.credentials()) == 2
    assert not any(estate.run(c, run)["changed"] for c in CLUSTERS)


def test_a_default_name_is_never_shared() -> None:
    estate = Estate()
    estate.inventory = {
        "aks-blue": [{k: v for k, v in orders().items() if k != "identity_name"}],
        "aks-green": [{k: v for k, v in orders().items() if k != "identity_name"}],
    }
    estate.run("aks-blue", tuple(CLUSTERS))
    estate.run("aks-green", tuple(CLUSTERS))
    assert len(estate.identities.items) == 2
    assert all(len(claims(i["tags"])) == 1 for i in estate.identities.items.values())


def test_two_clusters_letting_go_at_once_leave_no_identity_behind() -> None:
    estate = Estate()
    both_converged(estate)
    at_once(estate, state="absent")
    # Each planned to release it; the one that found no other claim left, under the lock, removed it whole.
    assert estate.identity() is None and estate.roles.items == []


def meanwhile(estate: Estate, change: Callable[[dict[str, Any]], dict[str, Any]], after: str = "get") -> None:
    """Another writer (another node's host, or another job) changes the shared identity right after this run's next
    read of it (``after``: ``get``, a fresh read before a write; ``list_all``, the plan's read), before this run
    writes: ``change`` takes the identity and returns it changed, as ARM's Tags API would (atomically, by name)."""
    original = getattr(estate.identities, after)

    def read(*args: Any) -> Any:
        found = original(*args)
        setattr(estate.identities, after, original)
        key = SHARED.id.lower()
        estate.identities.items[key] = change(estate.identities.items[key])
        return found

    setattr(estate.identities, after, read)


def claimed_by(cluster: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda identity: {**identity, "tags": {**identity["tags"], f"wi-uses:{cluster}": f"{SUB}/rg-{cluster}"}}


def test_a_claim_written_meanwhile_from_another_node_is_kept_by_name_and_lost_to_a_whole_tags_write() -> None:
    for refused in (False, True):
        estate = Estate()
        estate.identities.refuse_tags = refused
        estate.inventory = {"aks-blue": [orders()], "aks-green": [orders()]}
        estate.run("aks-blue", ("aks-blue",))
        meanwhile(estate, claimed_by("aks-red"))  # read by green, then red claims it: green's write must keep it
        estate.run("aks-green", ("aks-green",))
        expected = ["aks-blue", "aks-green"] + ([] if refused else ["aks-red"])
        assert estate.claimed() == expected
        whole = [w for w in estate.warnings if "may not write tags by name" in w]
        assert whole == (
            [
                "cluster aks-green: the automation principal may not write tags by name "
                "(Microsoft.Resources/tags/write) in resource group(s) rg-ids: identity tags were written whole, which "
                "can lose the claim of a cluster converged at the same moment on another execution node or by another "
                "job; grant it Tag Contributor there"
            ]
            if refused
            else []
        )


def test_the_second_of_two_letting_go_from_two_nodes_sees_no_claim_left_in_arms_answer_and_deletes() -> None:
    estate = Estate()
    both_converged(estate)
    green = fic_name("aks-green", SUBJECT).lower()

    def green_lets_go(identity: dict[str, Any]) -> dict[str, Any]:
        estate.fics.items[SHARED.id.lower()].pop(green)
        return {**identity, "tags": {k: v for k, v in identity["tags"].items() if k != "wi-uses:aks-green"}}

    meanwhile(estate, green_lets_go)  # blue reads green's claim, which goes before blue's own does
    blue = estate.run("aks-blue", state="absent")
    assert blue["workloads"][0]["identity"]["action"] == "deleted"
    assert estate.identity() is None and estate.roles.items == []


def test_an_identity_a_cluster_still_signs_in_with_is_never_deleted_though_its_claim_was_lost() -> None:
    estate = Estate()
    both_converged(estate)
    # Green's claim lost to a whole-tags write on another node (one without the Tags API); its credential stays.
    meanwhile(estate, lambda i: {**i, "tags": {k: v for k, v in i["tags"].items() if k != "wi-uses:aks-green"}})
    blue = estate.run("aks-blue", state="absent")
    assert blue["workloads"][0]["identity"]["action"] == "released"
    assert estate.identity() is not None and len(estate.roles.items) == 1
    assert estate.credentials() == {fic_name("aks-green", SUBJECT): issuer("aks-green")}
    assert estate.warnings[-1] == (
        "cluster aks-blue: identity id-orders is claimed by no cluster any more, but federated credentials of other "
        f"issuers trust it ({issuer('aks-green')}): kept, as a cluster may still sign in with it; delete it by hand "
        "once nothing uses it"
    )


def test_an_identity_another_slice_makes_after_the_plan_found_none_is_claimed_not_made_again() -> None:
    """Two clusters in two slices of one job (neither knows the other): both plans find no identity; blue's slice
    makes it first; green's run reads it afresh before making it, and claims it by name instead of a second PUT that
    would replace blue's tags (blue's claim with them)."""
    estate = Estate()
    slices = {"aks-blue": {"aks-blue": [orders()]}, "aks-green": {"aks-green": [orders()]}}  # each its own inventory
    estate.inventory = slices["aks-green"]
    original = estate.identities.list_all

    def blue_makes_it_meanwhile(resource_group: str | None) -> Any:
        found = original(resource_group)
        estate.identities.list_all = original  # type: ignore[method-assign]
        estate.inventory = slices["aks-blue"]
        estate.run("aks-blue", ("aks-blue",))
        estate.inventory = slices["aks-green"]
        return found

    estate.identities.list_all = blue_makes_it_meanwhile  # type: ignore[method-assign]
    estate.writes.clear()
    green = estate.run("aks-green", ("aks-green",))
    assert estate.claimed() == ["aks-blue", "aks-green"]
    assert [w for w in estate.writes if w[0] == "identity"].count(("identity", "put", "id-orders")) == 1  # blue's
    assert green["workloads"][0]["identity"]["action"] == "updated"
    assert not estate.run("aks-green", ("aks-green",))["changed"]
    estate.inventory = slices["aks-blue"]
    assert not estate.run("aks-blue", ("aks-blue",))["changed"]


def test_two_slices_making_one_identity_in_the_same_instant_both_keep_their_claim() -> None:
    """Both find it missing, even when read again: blue's PUT lands just after green's and replaces its tags (ARM's
    PUT has no create-only condition). Green, its credential and grants written, reads it again and claims it anew."""
    estate = Estate()
    estate.inventory = {"aks-green": [orders()]}  # green's slice; blue is in another
    original = estate.identities.put

    def blue_puts_right_after(ref: IdentityRef, location: str, tags: dict[str, str]) -> Any:
        made = original(ref, location, tags)
        estate.identities.put = original  # type: ignore[method-assign]
        blue = identity_marks("aks-blue", "shop", "orders", "orders", cluster_scope(SUB, "rg-aks-blue"))
        original(ref, location, {**blue, **format_mark(), "wi-uses:aks-blue": f"{SUB}/rg-aks-blue".lower()})
        return made

    estate.identities.put = blue_puts_right_after  # type: ignore[method-assign]
    done = estate.run("aks-green", ("aks-green",))
    assert estate.claimed() == ["aks-blue", "aks-green"]
    assert done["workloads"][0]["identity"]["action"] == "created"
    assert not estate.run("aks-green", ("aks-green",))["changed"]


def test_an_identity_claimed_from_another_node_after_the_plan_read_it_is_released_not_deleted() -> None:
    for prune in (False, True):
        estate = Estate()
        estate.inventory = {"aks-blue": [orders()]}
        estate.run("aks-blue", ("aks-blue",))
        if prune:
            estate.inventory["aks-blue"] = []
        meanwhile(estate, claimed_by("aks-red"), after="list_all")
        done = estate.run("aks-blue", ("aks-blue",), **({"prune": True} if prune else {"state": "absent"}))
        assert estate.identity() is not None and estate.claimed() == ["aks-red"]
        assert len(estate.roles.items) == 1  # red's to keep
        if prune:
            assert [r["name"] for r in done["pruned"]["released"]] == ["id-orders"]
            assert done["pruned"]["identities"] == []
        else:
            assert done["workloads"][0]["identity"]["action"] == "released"


def orders_app(*roles: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "orders",
        "namespace": "shop",
        "service_account": "orders",
        "identity_type": "application",
        "application_unique_name": "wi-orders-shared",
        "roles": list(roles) or [{"role": "Reader", "scope": DATA}],
    }


def test_an_app_registration_is_shared_the_same_way() -> None:
    estate = Estate()
    estate.inventory = {c: [orders_app()] for c in CLUSTERS}
    run = tuple(CLUSTERS)
    at_once(estate)
    assert len(estate.apps.apps) == 1 and len(estate.roles.items) == 1
    app = next(iter(estate.apps.apps.values()))
    assert sorted(t for t in app["tags"] if t.startswith("wi-uses:")) == [
        f"wi-uses:aks-blue={SUB}/rg-aks-blue".lower(),
        f"wi-uses:aks-green={SUB}/rg-aks-green".lower(),
    ]
    assert sorted(estate.apps.fics[app["id"]]) == sorted(fic_name(c, SUBJECT).lower() for c in CLUSTERS)
    assert not any(estate.run(c, run)["changed"] for c in CLUSTERS)
    # Declared otherwise on one cluster: refused on both, before any write.
    estate.inventory["aks-green"] = [orders_app({"role": "Reader", "scope": DATA}, {"role": BLOB.name, "scope": DATA})]
    estate.writes.clear()
    with pytest.raises(ValidationError) as raised:
        estate.run("aks-blue", run, check_mode=True)
    assert "roles: application wi-orders-shared is shared with cluster aks-green" in raised.value.problems[0]
    estate.inventory["aks-green"] = [orders_app()]
    # One cluster lets go: its credential and claim; the application and its assignment stay for the other.
    blue = estate.run("aks-blue", state="absent")
    assert blue["workloads"][0]["identity"]["action"] == "released"
    assert list(estate.apps.fics[app["id"]]) == [fic_name("aks-green", SUBJECT).lower()]
    assert len(estate.apps.apps) == 1 and len(estate.roles.items) == 1
    green = estate.run("aks-green", state="absent")
    assert green["workloads"][0]["identity"]["action"] == "deleted"
    assert estate.apps.apps == {} and estate.roles.items == []


def test_an_adopted_identity_keeps_the_assignments_another_cluster_still_uses_on_teardown() -> None:
    estate = Estate()
    estate.identities.put(SHARED, "westeurope", {"team": "orders"})  # made by hand: adopted by both clusters
    both_converged(estate)
    assert len(estate.roles.items) == 1
    assert any(k.startswith("wi-created-roles:aks-blue:") for k in estate.identity()["tags"])  # blue made it
    # Blue torn down alone: green, not in this run, still declares the assignment blue created: it stays.
    blue = estate.run("aks-blue", ("aks-blue",), state="absent")
    assert blue["workloads"][0]["role_assignments"] == [] and len(estate.roles.items) == 1
    assert estate.credentials() == {fic_name("aks-green", SUBJECT): issuer("aks-green")}
    assert not any(k.startswith("wi-created-roles:") for k in estate.identity()["tags"])
    # Torn down with its peer in the same run, blue would have removed it (it is nobody else's then).
    estate = Estate()
    estate.identities.put(SHARED, "westeurope", {"team": "orders"})
    both_converged(estate)
    estate.run("aks-blue", tuple(CLUSTERS), state="absent")
    assert estate.roles.items == [] and estate.identity() is not None


def test_an_assignment_two_hosts_grant_at_once_is_made_by_one_and_found_by_the_other_and_their_reports_say_so() -> None:
    estate = Estate()
    run = tuple(CLUSTERS)
    plan = estate.run("aks-blue", run, check_mode=True)
    assert plan["workloads"][0]["role_assignments"][0]["notes"] == [
        "shared with cluster(s) aks-green of this run: made once, by the first to get there; the others find it"
    ]
    results: dict[str, dict[str, Any]] = {}
    together = threading.Barrier(len(CLUSTERS))

    def host(cluster: str) -> None:
        results[cluster] = estate.run(cluster, run, read_together=together)

    threads = [threading.Thread(target=host, args=(c,)) for c in CLUSTERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = {c: r["workloads"][0]["role_assignments"][0] for c, r in results.items()}
    made = [c for c, row in rows.items() if row["action"] == "created"]
    assert len(made) == 1 and len(estate.roles.items) == 1
    (found,) = set(CLUSTERS) - set(made)
    assert rows[found]["action"] == "unchanged"
    assert rows[found]["notes"] == [
        f"made by cluster {made[0]} (its workload shop/orders), which shares the identity; found here"
    ]
    # So is the identity: made by one host (not necessarily the one that made the assignment), found by the other,
    # and the reports say so.
    identities = {c: r["workloads"][0] for c, r in results.items()}
    creators = [c for c, w in identities.items() if w["identity"]["action"] == "created"]
    assert len(creators) == 1
    (other,) = set(CLUSTERS) - set(creators)
    assert identities[other]["identity"]["action"] == "unchanged"
    assert identities[other]["notes"] == [
        f"made meanwhile by the host of another cluster of this run that shares it ({creators[0]}); found here"
    ]
    assert plan["workloads"][0]["notes"] == [
        "shared with cluster(s) aks-green of this run: made once, by the first to get there; the others find it"
    ]
    # Every later run says the same of it, on the cluster that found it; the one that made it says nothing.
    again = {c: estate.run(c, run)["workloads"][0]["role_assignments"][0] for c in CLUSTERS}
    assert again[found]["notes"] == rows[found]["notes"] and again[made[0]]["notes"] == []


def test_a_cluster_deleted_without_teardown_is_reported_then_released_with_its_credential_on_request() -> None:
    estate = Estate()
    run = tuple(CLUSTERS)
    for cluster in CLUSTERS:
        estate.run(cluster, run)
    assert estate.claimed() == ["aks-blue", "aks-green"] and len(estate.credentials()) == 2
    estate.clusters.asked.clear()
    assert not estate.run("aks-blue", run)["changed"]
    assert estate.clusters.asked == []  # a cluster converging in this run is its own host's to read
    estate.clusters.existing.discard("aks-green")  # deleted in Azure, never torn down
    writes = len(estate.writes)
    reported = estate.run("aks-blue")
    assert not reported["changed"] and len(estate.writes) == writes
    assert estate.clusters.asked == ["aks-green"]
    assert estate.warnings == [
        "cluster aks-blue: workload 'orders': identity id-orders is also claimed by cluster aks-green in resource "
        f"group rg-aks-green of subscription {SUB}, which ARM says no longer exists: its claim and credentials stay on "
        "it until `teardown.yml --limit <that cluster's host>` releases them, or a run with "
        "workload_identity_release_gone_clusters: true on a cluster that uses it"
    ]
    plan = estate.run("aks-blue", check_mode=True, release=True)
    done = estate.run("aks-blue", release=True)
    for result in (plan, done):
        row = result["workloads"][0]
        assert row["identity"]["action"] == "updated"
        assert [(f["name"], f["action"]) for f in row["federated_credentials"]] == [
            (fic_name("aks-blue", SUBJECT), "unchanged"),
            (fic_name("aks-green", SUBJECT), "deleted"),
        ]
        assert row["notes"][-1].startswith("released the claim of cluster aks-green")
    assert estate.claimed() == ["aks-blue"]
    assert estate.credentials() == {fic_name("aks-blue", SUBJECT): issuer("aks-blue")}
    assert len(estate.roles.items) == 1  # the identity and its assignment stay: aks-blue uses them
    estate.clusters.asked.clear()
    assert not estate.run("aks-blue", release=True)["changed"]
    assert estate.clusters.asked == []  # no other claim left to ask about


def test_an_application_a_cluster_still_signs_in_with_is_never_deleted_though_its_claim_was_lost() -> None:
    """Graph writes an application's tags whole: green's claim lost to a writer on another node, after blue's plan
    read it and before blue's fresh read; green's credential (an object of its own) keeps the application."""
    estate = Estate()
    estate.inventory = {c: [orders_app()] for c in CLUSTERS}
    both_converged(estate)
    app = next(iter(estate.apps.apps.values()))
    original = estate.apps.by_unique_name
    reads: list[str] = []

    def lost_meanwhile(unique_name: str) -> Any:
        reads.append(unique_name)
        if len(reads) == 2:  # the plan's read, then the fresh one before the release writes
            app["tags"] = [t for t in app["tags"] if not t.startswith("wi-uses:aks-green")]
        return original(unique_name)

    estate.apps.by_unique_name = lost_meanwhile  # type: ignore[method-assign]
    blue = estate.run("aks-blue", state="absent")
    assert blue["workloads"][0]["identity"]["action"] == "released"
    assert list(estate.apps.apps) == [app["id"]] and len(estate.roles.items) == 1
    assert list(estate.apps.fics[app["id"]]) == [fic_name("aks-green", SUBJECT).lower()]
    assert estate.warnings[-1].startswith(
        "cluster aks-blue: application wi-orders-shared is claimed by no cluster any more, but federated credentials "
        f"of other issuers trust it ({issuer('aks-green')}): kept"
    )


def test_an_application_claimed_from_another_node_after_the_plan_read_it_is_released_not_deleted() -> None:
    estate = Estate()
    estate.inventory = {"aks-blue": [orders_app()]}
    estate.run("aks-blue", ("aks-blue",))
    app = next(iter(estate.apps.apps.values()))
    original = estate.apps.marked

    def claimed_meanwhile(tag: str) -> Any:
        found = original(tag)
        estate.apps.marked = original  # type: ignore[method-assign]
        app["tags"] = [*app["tags"], f"wi-uses:aks-red={SUB}/rg-aks-red".lower()]
        return found

    estate.apps.marked = claimed_meanwhile  # type: ignore[method-assign]
    estate.inventory["aks-blue"] = []
    done = estate.run("aks-blue", ("aks-blue",), prune=True)
    assert done["pruned"]["applications"] == [] and list(estate.apps.apps) == [app["id"]]
    assert [t for t in app["tags"] if t.startswith("wi-uses:")] == [f"wi-uses:aks-red={SUB}/rg-aks-red".lower()]
