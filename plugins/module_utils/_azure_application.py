# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): app registrations (application + service principal).

An application this collection makes is found by its ``uniqueName`` and made with Graph's upsert
(``PATCH /applications(uniqueName=...)`` with ``Prefer: create-if-missing``), so two runs, or two
controllers racing, can never make two. The creator becomes its owner, so
``Application.ReadWrite.OwnedBy`` is all the automation principal needs. An operator's existing
application is named by its ``appId`` and used as it is. Its service principal (what role
assignments name) is ensured the same way, by ``appId``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._azure_graph import UPSERT, GraphClient, quote
from ._errors import ValidationError
from ._ids import is_guid
from ._results import UNREAD, ApplicationState, FederatedCredentialState, Outcome, Unread


def application_state(app: dict[str, Any], principal: dict[str, Any] | None) -> ApplicationState:
    return {
        "id": app.get("id"),
        "app_id": app.get("appId"),
        "display_name": str(app.get("displayName") or ""),
        "unique_name": app.get("uniqueName"),
        "tags": list(app.get("tags") or []),
        "service_principal_id": principal.get("id") if principal else None,
        "tenant_id": principal.get("appOwnerOrganizationId") if principal else None,
    }


class ApplicationApi:
    """The Graph calls for applications, their service principals and their credentials."""

    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    def by_unique_name(self, unique_name: str) -> dict[str, Any] | None:
        return self.graph.get(f"/applications(uniqueName={quote(unique_name)})", f"get application {unique_name}")

    def by_app_id(self, app_id: str) -> dict[str, Any] | None:
        return self.graph.get(f"/applications(appId={quote(app_id)})", f"get application {app_id}")

    def marked(self, tag: str) -> list[dict[str, Any]]:
        """Every application carrying a tag (one request per page)."""
        path = f"/applications?$filter=tags/any(t:t eq {quote(tag)})"
        return self.graph.list(path, f"list applications tagged {tag}")

    def upsert(self, unique_name: str, body: dict[str, Any]) -> dict[str, Any]:
        operation = f"create or update application {unique_name}"
        path = f"/applications(uniqueName={quote(unique_name)})"
        status, created = self.graph.request("PATCH", path, operation, body, UPSERT)
        if status == 201 and created:
            return dict(created)
        found = self.by_unique_name(unique_name)  # 204: it existed (made concurrently); read what is there
        if found is None:
            raise ValidationError([f"application {unique_name}: updated but not readable (replication)"])
        return found

    def update(self, object_id: str, body: dict[str, Any]) -> None:
        self.graph.request("PATCH", f"/applications/{object_id}", f"update application {object_id}", body)

    def delete(self, object_id: str, purge: bool) -> None:
        self.graph.request("DELETE", f"/applications/{object_id}", f"delete application {object_id}")
        if purge:
            path = f"/directory/deletedItems/{object_id}"
            self.graph.request("DELETE", path, f"purge application {object_id} from the recycle bin")

    def principal(self, app_id: str) -> dict[str, Any] | None:
        return self.graph.get(f"/servicePrincipals(appId={quote(app_id)})", f"get service principal of {app_id}")

    def principal_by_id(self, object_id: str) -> dict[str, Any] | None:
        """A service principal by its object id (a role assignment's principal), or None when it does not exist."""
        return self.graph.get(f"/servicePrincipals/{object_id}", f"get service principal {object_id}")

    def ensure_principal(self, app_id: str) -> dict[str, Any]:
        path = f"/servicePrincipals(appId={quote(app_id)})"
        status, body = self.graph.request("PATCH", path, f"create service principal of {app_id}", {}, UPSERT)
        if status == 201 and body:
            return dict(body)
        found = self.principal(app_id)
        if found is None:
            raise ValidationError([f"service principal of {app_id}: created but not readable (replication)"])
        return found

    # -- federated credentials ------------------------------------------------------------------------
    def list_fics(self, object_id: str, label: str) -> list[FederatedCredentialState]:
        path = f"/applications/{object_id}/federatedIdentityCredentials"
        return [_fic(object_id, label, f) for f in self.graph.list(path, f"list federated credentials of {label}")]

    def put_fic(self, object_id: str, label: str, name: str, body: dict[str, Any]) -> FederatedCredentialState:
        path = f"/applications/{object_id}/federatedIdentityCredentials(name={quote(name)})"
        self.graph.request("PATCH", path, f"create or update federated credential {label}/{name}", body, UPSERT)
        return _fic(object_id, label, {"name": name, **body})

    def delete_fic(self, object_id: str, label: str, name: str) -> None:
        path = f"/applications/{object_id}/federatedIdentityCredentials(name={quote(name)})"
        self.graph.request("DELETE", path, f"delete federated credential {label}/{name}")


def _fic(object_id: str, label: str, body: dict[str, Any]) -> FederatedCredentialState:
    return {
        # By name, not Graph's GUID: check mode can predict it, and it reads like the ARM ones.
        "id": f"/applications/{object_id}/federatedIdentityCredentials/{body['name']}",
        "name": str(body["name"]),
        "identity": label,
        "issuer": str(body["issuer"]),
        "subject": str(body["subject"]),
        "audiences": list(body.get("audiences") or []),
    }


class ApplicationFicApi:
    """An application's credentials, through Graph: a FicParent for the federated-credential engine."""

    def __init__(self, api: ApplicationApi, object_id: str, display_name: str) -> None:
        self.api, self.object_id, self.display_name = api, object_id, display_name

    @property
    def name(self) -> str:
        return self.display_name

    @property
    def label(self) -> str:
        return f"application {self.display_name}"

    def fic_id(self, name: str) -> str:
        return f"/applications/{self.object_id}/federatedIdentityCredentials/{name}"

    def get(self, name: str) -> FederatedCredentialState | None:
        return next((f for f in self.list_all() if f["name"].lower() == name.lower()), None)

    def list_all(self) -> list[FederatedCredentialState]:
        return self.api.list_fics(self.object_id, self.display_name)

    def put(self, name: str, issuer: str, subject: str, audiences: list[str]) -> FederatedCredentialState:
        body = {"issuer": issuer, "subject": subject, "audiences": audiences}
        return self.api.put_fic(self.object_id, self.display_name, name, body)

    def delete(self, name: str) -> None:
        self.api.delete_fic(self.object_id, self.display_name, name)


def ensure_application(
    api: ApplicationApi,
    *,
    unique_name: str | None,
    app_id: str | None,
    display_name: str | None,
    tags: list[str] | None,
    state: str,
    check_mode: bool,
    purge: bool = False,
    known: tuple[dict[str, Any] | None, dict[str, Any] | None] | Unread = UNREAD,
    retired: Sequence[str] = (),
) -> Outcome[ApplicationState]:
    """One application and its service principal, by ``unique_name`` (ours) or ``app_id`` (someone's).

    ``known``: (application, service principal) as the caller already read them. An application named by
    ``app_id`` is used as it is: never renamed or re-tagged, and it must exist. ``retired``: tags of ours that go
    unless ``tags`` names them (the mark of the workload an application served before a rename); others stay.
    """
    if bool(unique_name) == bool(app_id):
        raise ValidationError(["application: give exactly one of unique_name and application_id"])
    if app_id and not is_guid(app_id):
        raise ValidationError([f"application_id: '{app_id}' is not an application (client) id"])
    where = f"application {unique_name or app_id}"
    if isinstance(known, Unread):
        app = api.by_app_id(str(app_id)) if app_id else api.by_unique_name(str(unique_name))
        principal = api.principal(app["appId"]) if app else None
    else:
        app, principal = known
    if state == "absent":
        return ensure_application_absent(api, app, principal, purge, check_mode)
    if app is None:
        if app_id:
            raise ValidationError([f"{where}: no such application (or the automation principal may not read it)"])
        return ensure_new_application(api, str(unique_name), display_name, tags, check_mode)
    changes: dict[str, Any] = {}
    if unique_name:  # ours: its name and our tags are kept as declared (other tags are left alone)
        if display_name and display_name != app.get("displayName"):
            changes["displayName"] = display_name
        wanted = [
            t for t in dict.fromkeys([*(app.get("tags") or []), *(tags or [])]) if t not in retired or t in (tags or [])
        ]
        if wanted != list(app.get("tags") or []):
            changes["tags"] = wanted
    return ensure_application_changes(api, app, principal, changes, check_mode)


def ensure_application_absent(
    api: ApplicationApi, app: dict[str, Any] | None, principal: dict[str, Any] | None, purge: bool, check_mode: bool
) -> Outcome[ApplicationState]:
    """The application deleted (its service principal with it), if it exists; kept 30 days unless purged."""
    if app is None:
        return Outcome(False, "absent", None, None)
    before = application_state(app, principal)
    if not check_mode:
        api.delete(str(app["id"]), purge)
    return Outcome(True, "deleted", before, None, [] if purge else ["kept 30 days in Entra's deleted items"])


def ensure_new_application(
    api: ApplicationApi, unique_name: str, display_name: str | None, tags: list[str] | None, check_mode: bool
) -> Outcome[ApplicationState]:
    """Made by Graph's upsert on its unique name (never a duplicate), with its service principal."""
    new_tags = list(tags or [])
    body = {"displayName": display_name or unique_name, "tags": new_tags}
    predicted: ApplicationState = {
        "id": None,
        "app_id": None,
        "display_name": str(body["displayName"]),
        "unique_name": unique_name,
        "tags": new_tags,
        "service_principal_id": None,
        "tenant_id": None,
    }
    if check_mode:
        return Outcome(True, "created", None, predicted, ["ids are assigned by Entra on creation"])
    made = api.upsert(unique_name, body)
    return Outcome(True, "created", None, application_state(made, api.ensure_principal(made["appId"])))


def ensure_application_changes(
    api: ApplicationApi,
    app: dict[str, Any],
    principal: dict[str, Any] | None,
    changes: dict[str, Any],
    check_mode: bool,
) -> Outcome[ApplicationState]:
    """An existing application patched with ``changes``, and its service principal made if it has none."""
    before = application_state(app, principal)
    after = application_state({**app, **changes}, principal)
    if not changes and principal is not None:
        return Outcome(False, "unchanged", before, before)
    if not check_mode:
        if changes:
            api.update(str(app["id"]), changes)
        if principal is None:
            after = application_state({**app, **changes}, api.ensure_principal(str(app["appId"])))
    notes = [] if principal else ["its service principal is created"]
    return Outcome(True, "updated", before, after, notes)


def ensure_application_tags(
    api: ApplicationApi, app: dict[str, Any], principal: dict[str, Any] | None, tags: list[str], check_mode: bool
) -> Outcome[ApplicationState]:
    """Exactly these tags on an existing application (an operator's, for this collection's records on it)."""
    before = application_state(app, principal)
    if list(app.get("tags") or []) == tags:
        return Outcome(False, "unchanged", before, before)
    if not check_mode:
        api.update(str(app["id"]), {"tags": tags})
    return Outcome(True, "updated", before, application_state({**app, "tags": tags}, principal))
