"""The directory behind Entra ID: applications, service principals and applications' federated credentials.

One model for every service that touches it: ARM's identity provider adds a managed identity's service
principal here, Microsoft Graph reads and writes applications and service principals, and the token
endpoint finds the principal a client id names and the federated credentials that may sign it in.

Store kinds:
- ``principal`` (key ``principal/<object id>``): every service principal. ``sp_type`` is ``Application``
  (an app registration's, with ``application_id`` = the application's object id) or ``ManagedIdentity``
  (with ``identity_key``, the ARM id of its identity). ``graph_roles`` are its Microsoft Graph app roles.
- ``application`` (key = object id): ``body`` is the Graph object, ``owners`` the owning principals.
- ``appFic`` (key ``<application object id>/<credential id>``): ``body`` is the Graph object.
- ``deletedApplication`` / ``deletedPrincipal``: soft-deleted, restorable for 30 days in Entra.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Sandbox

ALL = "Application.ReadWrite.All"
OWNED_BY = "Application.ReadWrite.OwnedBy"
READ_ALL = {"Application.Read.All", ALL, "Directory.Read.All", "Directory.ReadWrite.All"}
WRITE_ALL = {ALL, "Directory.ReadWrite.All"}
GRAPH_ROLES = sorted({*READ_ALL, OWNED_BY})
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Directory:
    def __init__(self, app: Sandbox) -> None:
        self.app = app
        self.store = app.store

    # -- service principals ---------------------------------------------------------------------------
    def principal(self, object_id: str) -> dict[str, Any] | None:
        return self.store.get("principal", f"principal/{object_id.lower()}")

    def principal_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        for record in self.store.all("principal").values():
            if record["app_id"].lower() == app_id.lower():
                return record
        return None

    def principals(self) -> list[dict[str, Any]]:
        return sorted(self.store.all("principal").values(), key=lambda r: (r.get("created_at", 0), r["principal_id"]))

    def add_principal(self, record: dict[str, Any]) -> dict[str, Any]:
        record.setdefault("created_at", time.time())
        record.setdefault("sp_type", "Application")
        record.setdefault("type", "ServicePrincipal")
        record.setdefault("owners", [])
        record.setdefault("graph_roles", [])
        self.store.put("principal", f"principal/{record['principal_id']}", record)
        return record

    def drop_principal(self, object_id: str) -> None:
        self.store.delete("principal", f"principal/{object_id}")

    def sp_body(self, record: dict[str, Any]) -> dict[str, Any]:
        """The service principal as Graph shows it."""
        app = self.application(record["application_id"]) if record.get("application_id") else None
        names = [record["app_id"]]
        alternative: list[str] = []
        if record.get("sp_type") == "ManagedIdentity":
            alternative = ["isExplicit=True", record.get("resource_id") or ""]
            names.append(f"https://identity.azure.net/{record['principal_id']}")
        elif app is not None:
            names.extend(app["body"].get("identifierUris") or [])
        return {
            "id": record["principal_id"],
            "deletedDateTime": record.get("deleted_at_iso"),
            "accountEnabled": True,
            "alternativeNames": alternative,
            "appDisplayName": app["body"]["displayName"] if app else record.get("display_name"),
            "appDescription": None,
            "appId": record["app_id"],
            "appOwnerOrganizationId": self.app.tenant_id,
            "appRoleAssignmentRequired": False,
            "displayName": record.get("display_name"),
            "servicePrincipalNames": names,
            "servicePrincipalType": record.get("sp_type", "Application"),
            "signInAudience": "AzureADMyOrg",
            "tags": list(record.get("tags") or []),
            "appRoles": [],
            "oauth2PermissionScopes": [],
            "keyCredentials": [],
            "passwordCredentials": [],
        }

    # -- applications -----------------------------------------------------------------------------------
    def application(self, object_id: str) -> dict[str, Any] | None:
        return self.store.get("application", object_id.lower())

    def applications(self) -> list[dict[str, Any]]:
        return sorted(self.store.all("application").values(), key=lambda r: (r["created_at"], r["body"]["id"]))

    def application_by(self, key: str, value: str) -> dict[str, Any] | None:
        for record in self.store.all("application").values():
            current = record["body"].get(key)
            if isinstance(current, str) and current.lower() == value.lower():
                return record
        return None

    def new_application(self, body: dict[str, Any], owners: list[str]) -> dict[str, Any]:
        object_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
        full = {
            "id": object_id,
            "deletedDateTime": None,
            "appId": app_id,
            "applicationTemplateId": None,
            "createdDateTime": now_iso(),
            "description": None,
            "displayName": None,
            "groupMembershipClaims": None,
            "identifierUris": [],
            "isFallbackPublicClient": None,
            "notes": None,
            "publisherDomain": "sandbox.onmicrosoft.com",
            "serviceManagementReference": None,
            "signInAudience": "AzureADMyOrg",
            "tags": [],
            "uniqueName": None,
            "api": {
                "acceptMappedClaims": None,
                "knownClientApplications": [],
                "requestedAccessTokenVersion": None,
                "oauth2PermissionScopes": [],
                "preAuthorizedApplications": [],
            },
            "appRoles": [],
            "info": {},
            "keyCredentials": [],
            "optionalClaims": None,
            "passwordCredentials": [],
            "publicClient": {"redirectUris": []},
            "requiredResourceAccess": [],
            "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": [], "implicitGrantSettings": {}},
            "spa": {"redirectUris": []},
            **body,
        }
        full["id"], full["appId"] = object_id, app_id
        record = {"body": full, "owners": list(dict.fromkeys(owners)), "created_at": time.time()}
        self.store.put("application", object_id, record)
        return record

    def save_application(self, record: dict[str, Any]) -> None:
        self.store.put("application", record["body"]["id"].lower(), record)

    def delete_application(self, record: dict[str, Any]) -> None:
        """Soft delete: the application (and its service principal) move to deleted items."""
        object_id = record["body"]["id"].lower()
        stamp = now_iso()
        with self.store.transaction():
            self.store.delete("application", object_id)
            body = {**record["body"], "deletedDateTime": stamp}
            self.store.put("deletedApplication", object_id, {**record, "body": body, "deleted_at": time.time()})
            for principal in list(self.store.all("principal").values()):
                if principal.get("application_id", "").lower() == object_id:
                    self.delete_principal(principal, stamp)

    def delete_principal(self, principal: dict[str, Any], stamp: str | None = None) -> None:
        key = f"principal/{principal['principal_id']}"
        with self.store.transaction():
            self.store.delete("principal", key)
            self.store.put(
                "deletedPrincipal", key, {**principal, "deleted_at": time.time(), "deleted_at_iso": stamp or now_iso()}
            )

    def app_body(self, record: dict[str, Any]) -> dict[str, Any]:
        return dict(record["body"])

    # -- applications' federated credentials ---------------------------------------------------------
    def app_fics(self, object_id: str) -> list[dict[str, Any]]:
        prefix = object_id.lower() + "/"
        found = [r for k, r in self.store.all("appFic").items() if k.startswith(prefix)]
        return sorted(found, key=lambda r: r["created_at"])

    def fics_for_principal(self, principal: dict[str, Any]) -> list[tuple[dict[str, Any], float]]:
        """(issuer/subject/audiences, created_at) of every credential that may sign this principal in."""
        if principal.get("identity_key"):
            prefix = f"{principal['identity_key']}/federatedidentitycredentials/"
            return [
                (r["body"]["properties"], r["created_at"])
                for k, r in self.store.all("fic").items()
                if k.startswith(prefix)
            ]
        if principal.get("application_id"):
            return [(r["body"], r["created_at"]) for r in self.app_fics(principal["application_id"])]
        return []
