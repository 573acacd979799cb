"""_azure_batch_apps: an operator's app registration (application_id) is adopted, its record, and teardown_adopted."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import AzureApis, Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, ValidationError
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import (
    application_claim_tag,
    application_marks,
)

from .fakes import BLOB, READER, SUB, FakeFics, FakeIdentities, FakeRoles, Writes, assignment
from .test_azure_application import FakeApplications

CLUSTER = "aks-dev"
ISSUER = "https://oidc.example/tenant/aks-dev/"
DATA = f"/subscriptions/{SUB}/resourceGroups/rg-data"
SUBJECT = "system:serviceaccount:shop:orders"


class GraphApps(FakeApplications):
    """The fake applications, with the Graph permission the batch asks for first, and tag queries."""

    def __init__(self, writable: bool = True) -> None:
        super().__init__()
        self.graph = SimpleNamespace(granted_roles=lambda: ["Application.ReadWrite.All"])
        self.writable = writable

    def marked(self, tag: str) -> list[dict[str, Any]]:
        return [dict(a) for a in self.apps.values() if tag in (a.get("tags") or [])]

    def update(self, object_id: str, body: dict[str, Any]) -> None:
        if not self.writable:
            raise AzureApiError("Insufficient privileges", 403, "Authorization_RequestDenied", operation="update")
        super().update(object_id, body)


class Estate:
    def __init__(self, writable: bool = True) -> None:
        self.writes = Writes()
        self.roles = FakeRoles(self.writes)
        self.apps = GraphApps(writable)
        apis = AzureApis(FakeIdentities(self.writes), FakeFics(self.writes), self.roles, SUB)
        self.engine = Workloads(apis, self.apps)

    def operators_app(self) -> dict[str, Any]:
        """Made by hand: an application, its service principal, a credential under the operator's name, a role."""
        app = {"id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "displayName": "orders-by-hand", "tags": ["team"]}
        self.apps.apps[app["id"]] = app
        principal = {"id": str(uuid.uuid4()), "appId": app["appId"]}
        self.apps.principals[app["appId"]] = principal
        body = {"issuer": ISSUER, "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]}
        self.apps.fics[app["id"]] = {"orders-fic": {"name": "orders-fic", "id": "x", "identity": "orders", **body}}
        self.roles.items.append(assignment(DATA, BLOB, principal["id"], "made-by-the-operator"))
        return {**app, "principal": principal["id"]}

    def run(self, workloads: list[dict[str, Any]], state: str = "present", check_mode: bool = False) -> dict[str, Any]:
        validated = validate_workloads(
            CLUSTER, workloads, identity_resource_group="rg-ids", allow_privileged_roles=False
        )
        assert validated.problems == []
        batch = Batch(CLUSTER, SUB, ISSUER, "westeurope", validated.specs, False, False, ("rg-ids",), state)
        reads = self.engine.read(batch)
        if state == "absent":
            return dict(self.engine.remove(batch, reads, check_mode))
        return dict(self.engine.converge(batch, reads, check_mode, workers=1))


def declared(app: dict[str, Any], **more: Any) -> list[dict[str, Any]]:
    roles = [{"role": "Storage Blob Data Contributor", "scope": DATA}, {"role": "Reader", "scope": DATA}]
    return [
        {
            "name": "orders",
            "namespace": "shop",
            "service_account": "orders",
            "identity_type": "application",
            "application_id": app["appId"],
            "roles": roles,
            **more,
        }
    ]


def test_an_operators_app_keeps_its_credential_and_assignment_and_teardown_removes_only_what_was_added() -> None:
    estate = Estate()
    app = estate.operators_app()
    first = estate.run(declared(app))["workloads"][0]
    assert [f["name"] for f in first["federated_credentials"]] == ["orders-fic"]  # adopted under its own name
    assert [r["action"] for r in first["role_assignments"]] == ["unchanged", "created"]
    tags = estate.apps.apps[app["id"]]["tags"]
    assert tags[0] == "team" and tags[1].startswith(f"wi-created-roles:{CLUSTER}:shop:orders=") and len(tags) == 2
    assert estate.run(declared(app))["changed"] is False  # recorded once
    plan = estate.run(declared(app), state="absent", check_mode=True)
    estate.writes.clear()
    done = estate.run(declared(app), state="absent")
    assert plan["workloads"] == done["workloads"]
    assert done["workloads"][0]["identity"]["action"] == "kept"
    assert [r["role"] for r in done["workloads"][0]["role_assignments"]] == ["Reader"]
    assert [a.name for a in estate.roles.items] == ["made-by-the-operator"]
    assert estate.apps.apps[app["id"]]["tags"] == ["team"]
    assert list(estate.apps.fics[app["id"]]) == ["orders-fic"]


def test_without_write_access_to_the_app_the_new_assignment_is_kept_on_teardown_and_the_result_says_so() -> None:
    estate = Estate(writable=False)
    app = estate.operators_app()
    first = estate.run(declared(app))["workloads"][0]
    created = [r for r in first["role_assignments"] if r["action"] == "created"]
    assert created and "teardown keeps it" in created[0]["notes"][-1]
    estate.run(declared(app), state="absent")
    assert sorted(a.role_definition_id.rsplit("/", 1)[1] for a in estate.roles.items) == sorted(
        [BLOB.guid, READER.guid]
    )


def test_teardown_adopted_deletes_the_operators_app_after_every_assignment_of_its_principal() -> None:
    estate = Estate()
    app = estate.operators_app()
    estate.run(declared(app, teardown_adopted=True))
    estate.writes.clear()
    done = estate.run(declared(app, teardown_adopted=True), state="absent")
    assert done["workloads"][0]["identity"]["action"] == "deleted"
    assert estate.roles.items == [] and app["id"] not in estate.apps.apps
    assert [w[:2] for w in estate.writes] == [("role", "delete"), ("role", "delete")]  # the app's own list follows
    assert estate.apps.writes[-1] == ("delete", app["id"])


def test_a_default_unique_name_taken_by_an_app_made_elsewhere_is_refused_with_its_app_id() -> None:
    estate = Estate()
    app = estate.operators_app()
    estate.apps.apps[app["id"]]["uniqueName"] = f"wi-{CLUSTER}-shop-orders"
    listed = [{"name": "orders", "namespace": "shop", "service_account": "orders", "identity_type": "application"}]
    with pytest.raises(ValidationError, match=f"to adopt it, set application_id: {app['appId']}"):
        estate.run(listed)
    assert estate.apps.writes == []


def test_reading_for_verification_needs_only_graphs_read_permission() -> None:
    """The rollout needs to write applications; verification only reads them (an auditor's Application.Read.All)."""
    estate = Estate()
    estate.apps.graph = SimpleNamespace(granted_roles=lambda: ["Application.Read.All"])
    workloads = [
        {
            "name": "orders",
            "namespace": "shop",
            "service_account": "orders",
            "identity_type": "application",
            "roles": [],
        }
    ]
    specs = validate_workloads(
        "aks-dev", workloads, identity_resource_group="rg-ids", allow_privileged_roles=False
    ).specs
    with pytest.raises(ValidationError, match="Application.ReadWrite"):
        estate.engine.read(Batch("aks-dev", SUB, ISSUER, "westeurope", specs, False, False))
    reads = estate.engine.read(Batch("aks-dev", SUB, ISSUER, None, specs, False, False, read_only=True))
    assert reads.applications["orders"] == (None, None)


class MadeMeanwhile(GraphApps):
    """The application is not there when the batch looks it up by name, and is there (made by another cluster's host
    of the same run, with this cluster's claim on it) by the time the batch lists what carries that claim."""

    def __init__(self, app: dict[str, Any]) -> None:
        super().__init__()
        self.later = app

    def by_unique_name(self, unique_name: str) -> dict[str, Any] | None:
        found = super().by_unique_name(unique_name)
        self.apps[self.later["id"]] = self.later
        return found


def test_a_declared_application_made_by_another_host_meanwhile_is_not_an_orphan_to_let_go_of() -> None:
    scope = f"{SUB}/rg-aks-dev"
    tags = [
        *application_marks("aks-blue", "shop", "orders", f"{SUB}/rg-aks-blue"),
        application_claim_tag("aks-blue", f"{SUB}/rg-aks-blue"),
        application_claim_tag(CLUSTER, scope),
    ]
    made = {"id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "uniqueName": "wi-orders-shared", "tags": tags}
    estate = Estate()
    estate.apps = MadeMeanwhile(made)
    estate.engine = Workloads(
        AzureApis(FakeIdentities(estate.writes), FakeFics(estate.writes), estate.roles, SUB), estate.apps
    )
    workloads = [
        {
            "name": "orders",
            "namespace": "shop",
            "service_account": "orders",
            "identity_type": "application",
            "application_unique_name": "wi-orders-shared",
            "roles": [],
        }
    ]
    specs = validate_workloads(CLUSTER, workloads, identity_resource_group="rg-ids", allow_privileged_roles=False).specs
    batch = Batch(CLUSTER, SUB, ISSUER, "westeurope", specs, True, False, ("rg-ids",), cluster_scope=scope)
    reads = estate.engine.read(batch)
    assert reads.applications["orders"] == (None, None)  # looked up before it was made
    assert reads.marked_apps == []  # listed after, with this cluster's claim: declared, so not let go of


def _converge(estate: Estate, workloads: list[dict[str, Any]], check_mode: bool = False, defer: bool = True) -> Any:
    """A run as the rollout's converge makes it: with prune, and (unless ``defer`` is off) replaced kept."""
    specs = validate_workloads(CLUSTER, workloads, identity_resource_group="rg-ids", allow_privileged_roles=False).specs
    batch = Batch(CLUSTER, SUB, ISSUER, "westeurope", specs, True, False, ("rg-ids",), defer_replaced=defer)
    return dict(estate.engine.converge(batch, estate.engine.read(batch), check_mode, workers=1))


def _app_workload(name: str = "orders", **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "service_account": "orders",
        "identity_type": "application",
        "roles": [{"role": "Reader", "scope": DATA}],
        **more,
    }


def test_a_renamed_app_registration_workload_keeps_its_application_and_client_id() -> None:
    estate = Estate()
    _converge(estate, [_app_workload()])
    (before,) = list(estate.apps.apps.values())
    renamed = [_app_workload("checkout")]
    plan = _converge(estate, renamed, check_mode=True)
    done = _converge(estate, renamed)
    for result in (plan, done):
        row = result["workloads"][0]
        assert row["identity"]["client_id"] == before["appId"]
        assert row["notes"] == [
            f"application {before['displayName']} kept (client id {before['appId']}, its pods' sign-in "
            "uninterrupted): workload shop/orders renamed checkout"
        ]
        assert [f["action"] for f in row["federated_credentials"]] == ["unchanged"]
        assert [r["action"] for r in row["role_assignments"]] == ["unchanged"]
        assert not any(result["pruned"].values())
    (after,) = list(estate.apps.apps.values())
    assert after["appId"] == before["appId"]
    # Its mark names the workload it serves now, not the old one.
    assert "wi-workload:shop/checkout" in after["tags"] and "wi-workload:shop/orders" not in after["tags"]
    assert not _converge(estate, renamed)["changed"]


def test_a_renamed_workload_on_another_service_account_does_not_take_the_application() -> None:
    estate = Estate()
    _converge(estate, [_app_workload()])
    (before,) = list(estate.apps.apps.values())
    other = [_app_workload("checkout", service_account="checkout")]
    done = _converge(estate, other, defer=False)
    assert done["workloads"][0]["identity"]["client_id"] != before["appId"]
    assert [a["app_id"] for a in done["pruned"]["applications"]] == [before["appId"]]


def test_switching_kinds_keeps_what_the_pods_sign_in_as_until_a_call_without_defer() -> None:
    estate = Estate()
    _converge(estate, [_app_workload()])
    (app,) = list(estate.apps.apps.values())
    as_identity = [{k: v for k, v in _app_workload().items() if k != "identity_type"}]
    plan = _converge(estate, as_identity, check_mode=True)
    kept = _converge(estate, as_identity)
    replaced = {
        "name": app["displayName"],
        "resource_group": "",
        "client_id": app["appId"],
        "workload": "orders",
        "kind": "application",
    }
    for result in (plan, kept):
        assert result["pruned"]["replaced"] == [replaced] and result["pruned"]["applications"] == []
    assert app["id"] in estate.apps.apps  # its pods still sign in as it
    gone = _converge(estate, as_identity, defer=False)
    assert [a["app_id"] for a in gone["pruned"]["applications"]] == [app["appId"]]
    assert app["id"] not in estate.apps.apps
    # And back: the identity is kept (replaced) while the application is made.
    (identity,) = list(estate.engine.ctx.identities.items.values())  # type: ignore[attr-defined]
    back = _converge(estate, [_app_workload()])
    assert [(r["name"], r["workload"]) for r in back["pruned"]["replaced"]] == [(identity["name"], "orders")]
    assert back["workloads"][0]["identity"]["action"] == "created" and back["pruned"]["identities"] == []
    assert not _converge(estate, [_app_workload()], defer=False)["pruned"]["replaced"]


def test_an_operators_application_id_not_found_is_never_looked_for_among_ours() -> None:
    estate = Estate()
    _converge(estate, [_app_workload()])
    missing = str(uuid.uuid4())
    with pytest.raises(ValidationError) as refused:
        _converge(estate, [_app_workload("checkout", application_id=missing)])
    assert refused.value.problems == [
        f"cluster {CLUSTER}: workload 'checkout': application_id: no application {missing} (or the automation "
        "principal may not read it)"
    ]
