"""_azure_application: the app-registration engine's decisions, on a fake ApplicationApi (no HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_application import (
    ApplicationApi,
    ApplicationFicApi,
    ensure_application,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_federated_credential import (
    ensure_federated_credential,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError


class FakeApplications(ApplicationApi):
    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.principals: dict[str, dict[str, Any]] = {}
        self.fics: dict[str, dict[str, dict[str, Any]]] = {}
        self.writes: list[tuple[str, str]] = []

    def by_unique_name(self, unique_name: str) -> dict[str, Any] | None:
        return next((dict(a) for a in self.apps.values() if a.get("uniqueName") == unique_name), None)

    def by_app_id(self, app_id: str) -> dict[str, Any] | None:
        return next((dict(a) for a in self.apps.values() if a["appId"] == app_id), None)

    def upsert(self, unique_name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("upsert", unique_name))
        app = {"id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "uniqueName": unique_name, **body}
        self.apps[app["id"]] = app
        return dict(app)

    def update(self, object_id: str, body: dict[str, Any]) -> None:
        self.writes.append(("update", object_id))
        self.apps[object_id].update(body)

    def delete(self, object_id: str, purge: bool) -> None:
        self.writes.append(("purge" if purge else "delete", object_id))
        self.apps.pop(object_id)

    def principal(self, app_id: str) -> dict[str, Any] | None:
        return self.principals.get(app_id)

    def principal_by_id(self, object_id: str) -> dict[str, Any] | None:
        self.writes.append(("read principal", object_id))  # counted: the orphan check asks at most once per principal
        return next((dict(p) for p in self.principals.values() if p["id"] == object_id), None)

    def ensure_principal(self, app_id: str) -> dict[str, Any]:
        self.writes.append(("principal", app_id))
        self.principals[app_id] = {"id": str(uuid.uuid4()), "appId": app_id}
        return self.principals[app_id]

    def list_fics(self, object_id: str, label: str) -> list[Any]:
        return [dict(f) for f in self.fics.get(object_id, {}).values()]

    def put_fic(self, object_id: str, label: str, name: str, body: dict[str, Any]) -> Any:
        self.writes.append(("fic", name))
        state = {
            "id": f"/applications/{object_id}/federatedIdentityCredentials/{name}",
            "name": name,
            "identity": label,
            **body,
        }
        self.fics.setdefault(object_id, {})[name] = state
        return dict(state)

    def delete_fic(self, object_id: str, label: str, name: str) -> None:
        self.writes.append(("fic-delete", name))
        self.fics[object_id].pop(name)


def ensure(api: FakeApplications, check_mode: bool = False, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"unique_name": None, "app_id": None, "display_name": None, "tags": None, "state": "present"}
    return ensure_application(api, check_mode=check_mode, **{**args, **kwargs})


def test_made_once_by_unique_name_with_its_principal_and_check_mode_predicts_it() -> None:
    api = FakeApplications()
    plan = ensure(api, check_mode=True, unique_name="wi-dev-orders-api", tags=["workload_identity.aks"])
    assert (plan.action, api.writes) == ("created", [])
    done = ensure(api, unique_name="wi-dev-orders-api", tags=["workload_identity.aks"])
    assert done.action == "created" and [w[0] for w in api.writes] == ["upsert", "principal"]
    assert plan.after and done.after
    assigned = ("id", "app_id", "service_principal_id", "tenant_id")  # Entra's to assign, null in the plan
    assert {k: v for k, v in plan.after.items() if k not in assigned} == {
        k: v for k, v in done.after.items() if k not in assigned
    }
    assert done.after["service_principal_id"]
    again = ensure(api, unique_name="wi-dev-orders-api", tags=["workload_identity.aks"])
    assert (again.changed, len(api.writes)) == (False, 2)


def test_an_adopted_application_is_used_as_it_is_and_must_exist() -> None:
    api = FakeApplications()
    theirs = api.upsert("theirs", {"displayName": "made by hand", "tags": ["team:orders"]})
    api.writes.clear()
    adopted = ensure(api, app_id=theirs["appId"], display_name="another name", tags=["workload_identity.aks"])
    # Only the missing service principal is made; the application itself is not renamed or re-tagged.
    assert (
        adopted.after and adopted.after["display_name"] == "made by hand" and adopted.after["tags"] == ["team:orders"]
    )
    assert [w[0] for w in api.writes] == ["principal"]
    with pytest.raises(ValidationError, match="no such application"):
        ensure(api, app_id=str(uuid.uuid4()))
    with pytest.raises(ValidationError, match="exactly one"):
        ensure(api, app_id=theirs["appId"], unique_name="x")


def test_removal_says_where_it_went_and_fics_use_the_shared_engine() -> None:
    api = FakeApplications()
    made = ensure(api, unique_name="wi-dev-orders-api").after
    assert made and made["id"]
    parent = ApplicationFicApi(api, made["id"], made["display_name"])
    issuer, subject = "https://oidc.example/t/c/", "system:serviceaccount:orders:orders-api"
    first = ensure_federated_credential(
        parent, "aks-dev", state="present", issuer=issuer, subject=subject, audiences=None, check_mode=False
    )
    assert (
        first.action == "created"
        and first.after
        and first.after["id"].endswith("/federatedIdentityCredentials/aks-dev")
    )
    with pytest.raises(ValidationError, match="on the same application already trusts"):
        ensure_federated_credential(
            parent, "other", state="present", issuer=issuer, subject=subject, audiences=None, check_mode=False
        )
    gone = ensure(api, unique_name="wi-dev-orders-api", state="absent")
    assert gone.action == "deleted" and "deleted items" in gone.notes[0]
    assert ensure(api, unique_name="wi-dev-orders-api", state="absent").action == "absent"
