# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): ARM resource ids, RBAC scopes, role references.

Parse, build, normalise (no trailing slash, case-insensitive comparison) and validate. A scope is a
management group, a subscription, a resource group or a resource id; nothing else is accepted. A
role reference (a name, a GUID or a role definition id) is parsed here and nowhere else.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
CLUSTER_TYPE = "Microsoft.ContainerService/managedClusters"
DEFINITION_MARKER = "/providers/microsoft.authorization/roledefinitions/"
# Fixed forever: role-assignment names derived from it must stay stable across releases.
ASSIGNMENT_NAMESPACE = uuid.UUID("0b9a5f36-5f7e-4d0c-9f59-6d2f1f3c9a11")


class InvalidScope(ValueError):
    pass


def is_guid(value: str) -> bool:
    return bool(GUID.fullmatch(value))


@dataclass(frozen=True)
class Scope:
    """A validated RBAC scope. ``kind``: managementGroup, subscription, resourceGroup or resource."""

    kind: str
    path: str  # normalised: one leading slash, no trailing slash, original case kept
    subscription: str | None = None
    resource_group: str | None = None

    @property
    def key(self) -> str:
        """For comparisons: ARM scopes are case-insensitive."""
        return self.path.lower()

    def is_at_or_above(self, other: Scope) -> bool:
        return other.key == self.key or other.key.startswith(self.key + "/")


def normalise(path: str) -> str:
    parts = [p for p in path.strip().split("/") if p]
    return "/" + "/".join(parts)


def parse_scope(text: str) -> Scope:
    """Validate and normalise a scope; InvalidScope says what is wrong."""
    if not isinstance(text, str) or not text.strip().startswith("/"):
        raise InvalidScope(
            f"'{text}' is not a scope: it must start with /subscriptions/... or "
            "/providers/Microsoft.Management/managementGroups/..."
        )
    path = normalise(text)
    parts = path.split("/")[1:]
    low = [p.lower() for p in parts]
    if low[:2] == ["providers", "microsoft.management"]:
        if len(parts) == 4 and low[2] == "managementgroups":
            return Scope("managementGroup", path)
        raise InvalidScope(
            f"'{text}' is not a management group scope (/providers/Microsoft.Management/managementGroups/<name>)"
        )
    if low[0] != "subscriptions" or len(parts) < 2:
        raise InvalidScope(
            f"'{text}' is not a scope: expected /subscriptions/<id>[/resourceGroups/<name>[/providers/...]]"
        )
    subscription = parts[1]
    if not is_guid(subscription):
        raise InvalidScope(f"'{text}': subscription '{subscription}' is not a GUID")
    if len(parts) == 2:
        return Scope("subscription", path, subscription)
    if low[2] != "resourcegroups" or len(parts) < 4:
        raise InvalidScope(f"'{text}': after the subscription comes /resourceGroups/<name>")
    resource_group = parts[3]
    if len(parts) == 4:
        return Scope("resourceGroup", path, subscription, resource_group)
    rest = parts[4:]
    # providers/<namespace>/<type>/<name>[/<type>/<name>]...
    if rest[0].lower() != "providers" or len(rest) < 4 or len(rest) % 2:
        raise InvalidScope(
            f"'{text}': a resource scope is .../resourceGroups/<rg>/providers/<namespace>/<type>/<name>"
            "[/<type>/<name>...]"
        )
    if "." not in rest[1]:
        raise InvalidScope(f"'{text}': '{rest[1]}' is not a resource provider namespace (like Microsoft.Storage)")
    return Scope("resource", path, subscription, resource_group)


_SEGMENTS = {"subscriptions": "subscriptions", "resourcegroups": "resourceGroups", "providers": "providers"}


def canonical(resource_id: str) -> str:
    """One spelling for ids Azure answers in varying case (MSI says 'resourcegroups'): ARM ids are
    case-insensitive, and check mode's predictions must equal what a real run reports."""
    parts = resource_id.split("/")
    for i, part in enumerate(parts):
        fixed = _SEGMENTS.get(part.lower())
        if fixed and (i == 1 or (i > 1 and parts[i - 2].lower() in ("subscriptions", "resourcegroups"))):
            parts[i] = fixed
    return "/".join(parts)


def short_scope(scope: str) -> str:
    """A scope as a person reads it: resource group and resource, without the subscription's GUID.

    ``/subscriptions/<id>/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/st`` reads
    ``rg-data: Microsoft.Storage/storageAccounts/st``; a subscription or a management group stays whole.
    """
    parts = scope.split("/")
    if len(parts) > 4 and parts[3].lower() == "resourcegroups":
        rest = "/".join(parts[5:])
        return parts[4] + (": " + rest.removeprefix("providers/") if rest else "")
    return scope


def same_scope(left: str, right: str) -> bool:
    return normalise(left).lower() == normalise(right).lower()


def cluster_id(subscription: str, resource_group: str, name: str) -> str:
    """An AKS cluster's resource id."""
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{CLUSTER_TYPE}/{name}"


@dataclass(frozen=True)
class IdentityRef:
    subscription: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"{IDENTITY_TYPE}/{self.name}"
        )

    @classmethod
    def parse(cls, resource_id: str) -> IdentityRef:
        scope = parse_scope(resource_id)
        parts = scope.path.split("/")[1:]
        if scope.kind != "resource" or len(parts) != 8 or "/".join(parts[5:7]).lower() != IDENTITY_TYPE.lower():
            raise InvalidScope(
                f"'{resource_id}' is not a user-assigned identity id (.../providers/{IDENTITY_TYPE}/<name>)"
            )
        if not scope.subscription or not scope.resource_group:
            raise InvalidScope(f"'{resource_id}' is not a user-assigned identity id")
        return cls(scope.subscription, scope.resource_group, parts[7])


def role_guid(role_definition_id: str) -> str:
    """The GUID that identifies a role, whatever scope its id was read at."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def assignment_name(scope: str, role_definition_guid: str, principal_id: str) -> str:
    """A deterministic role-assignment name: two runs (or two operators) can never make duplicates."""
    key = f"{normalise(scope).lower()}|{role_definition_guid.lower()}|{principal_id.lower()}"
    return str(uuid.uuid5(ASSIGNMENT_NAMESPACE, key))


@dataclass(frozen=True)
class RoleRef:
    """A role as the user wrote it: by ``guid`` (a GUID or a role definition id) or else by ``name``."""

    text: str
    guid: str | None

    @property
    def name(self) -> str | None:
        return None if self.guid else self.text


def parse_role(text: str) -> RoleRef:
    """'Reader', 'acdd72a7-...' or '/subscriptions/.../roleDefinitions/acdd72a7-...' (any scope, any case)."""
    if DEFINITION_MARKER in text.lower():
        return RoleRef(text, role_guid(text))
    if is_guid(text):
        return RoleRef(text, text.lower())
    return RoleRef(text, None)
