"""Parsing of ARM resource ids and scopes, and the inheritance chain RBAC walks."""

from __future__ import annotations

import re
from dataclasses import dataclass

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(GUID_RE.fullmatch(value))


def norm(resource_id: str) -> str:
    """The form ids are keyed by: lower case, one leading slash, no trailing slash."""
    return "/" + resource_id.strip("/").lower()


def segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


@dataclass(frozen=True)
class Scope:
    """A parsed RBAC scope (or resource id).

    kind is one of: root, managementGroup, subscription, resourceGroup, resource.
    For resources, ``types`` and ``names`` hold the type chain under the provider namespace,
    e.g. (storageAccounts, blobServices, containers) and (sa, default, orders).
    """

    kind: str
    raw: str
    management_group: str | None = None
    subscription: str | None = None
    resource_group: str | None = None
    namespace: str | None = None
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return norm(self.raw) if self.kind != "root" else "/"

    @property
    def resource_type(self) -> str:
        """Full type, e.g. Microsoft.Storage/storageAccounts/blobServices/containers."""
        return "/".join([self.namespace or "", *self.types])

    def parent(self) -> Scope | None:
        if self.kind == "resource":
            if len(self.types) > 1:
                segs = segments(self.raw)[:-2]
                return parse_scope("/" + "/".join(segs))
            return Scope(
                "resourceGroup",
                f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}",
                subscription=self.subscription,
                resource_group=self.resource_group,
            )
        if self.kind == "resourceGroup":
            return Scope("subscription", f"/subscriptions/{self.subscription}", subscription=self.subscription)
        return None


class InvalidScope(ValueError):
    pass


def parse_scope(path: str) -> Scope:
    """Parse a scope; raise InvalidScope for anything ARM would not accept as one."""
    segs = segments(path)
    raw = "/" + "/".join(segs)
    if not segs:
        return Scope("root", "/")
    low = [s.lower() for s in segs]
    if low[0] == "providers":
        if len(segs) == 4 and low[1] == "microsoft.management" and low[2] == "managementgroups":
            return Scope("managementGroup", raw, management_group=segs[3])
        raise InvalidScope(f"The scope '{raw}' is not valid.")
    if low[0] != "subscriptions" or len(segs) < 2:
        raise InvalidScope(f"The scope '{raw}' is not valid.")
    sub = segs[1]
    if len(segs) == 2:
        return Scope("subscription", raw, subscription=sub)
    if low[2] != "resourcegroups" or len(segs) < 4:
        raise InvalidScope(f"The scope '{raw}' is not valid.")
    rg = segs[3]
    if len(segs) == 4:
        return Scope("resourceGroup", raw, subscription=sub, resource_group=rg)
    rest = segs[4:]
    # providers/{namespace}/{type}/{name}(/{type}/{name})*
    if rest[0].lower() != "providers" or len(rest) < 4 or (len(rest) - 2) % 2 != 0:
        raise InvalidScope(f"The scope '{raw}' is not valid.")
    namespace = rest[1]
    pairs = rest[2:]
    types = tuple(pairs[0::2])
    names = tuple(pairs[1::2])
    return Scope("resource", raw, subscription=sub, resource_group=rg, namespace=namespace, types=types, names=names)


def chain(scope: Scope, management_groups_of: dict[str, list[str]]) -> list[str]:
    """Keys of the scope and every scope above it, nearest first.

    management_groups_of maps a lower-case subscription id to the management-group keys above
    it (nearest first); RBAC inherits through those too.
    """
    keys: list[str] = []
    current: Scope | None = scope
    while current is not None:
        keys.append(current.key)
        last = current
        current = current.parent()
    if last.kind == "subscription" and last.subscription:
        keys.extend(management_groups_of.get(last.subscription.lower(), []))
    if scope.kind == "managementGroup":
        keys.extend(management_groups_of.get("mg:" + (scope.management_group or "").lower(), []))
    keys.append("/")
    return keys


def is_at_or_below(candidate_key: str, scope_key: str) -> bool:
    if scope_key == "/":
        return True
    return candidate_key == scope_key or candidate_key.startswith(scope_key + "/")
