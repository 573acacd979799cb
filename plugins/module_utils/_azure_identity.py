# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): user-assigned managed identities.

One engine for the single-object module and the batch path: read, compare what the user set,
write only on a difference, and in check mode predict the same result without writing.

An existing identity's tags are changed by name through ARM's Tags API (``PATCH {id}/providers/Microsoft.Resources/
tags/default``, ``Merge`` of what is new or changed, ``Delete`` of what goes, each atomic at ARM): another cluster's
claim written meanwhile, from any controller, is never lost to this write, as it would be to a PUT of the whole
identity (ARM replaces its tags whole, with no ETag). The Tags API needs ``Microsoft.Resources/tags/write``, which
Managed Identity Contributor does not grant (Tag Contributor does): refused it, the write falls back to the PUT, and
the resource group is recorded so the run can say so.
"""

from __future__ import annotations

from typing import Any

from ._azure_arm_rest import ArmRestClient
from ._azure_errors import azure_call
from ._errors import AzureApiError, ValidationError
from ._ids import IdentityRef, canonical
from ._results import UNREAD, IdentityState, Outcome, Unread
from ._retry import RetryPolicy

TAGS_API_VERSION = "2021-04-01"


def identity_state(model: Any) -> IdentityState:
    """The fields this collection reports for an identity, from an SDK model."""
    ref = IdentityRef.parse(model.id)
    return {
        "id": canonical(model.id),
        "name": model.name,
        "resource_group": ref.resource_group,
        "location": model.location,
        "tags": dict(model.tags or {}),
        "client_id": model.client_id,
        "principal_id": model.principal_id,
        "tenant_id": model.tenant_id,
    }


class IdentityApi:
    """The Azure calls for identities, translated and retried in one place."""

    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self.tags_api = ArmRestClient(client, TAGS_API_VERSION, self.policy)
        # Resource groups where the Tags API was refused (tags then written whole): the caller says so.
        self.whole_tags_in: set[str] = set()

    def whole_tags_warning(self, subject: str, at_risk: str) -> str | None:
        """What to tell the operator when tags were written whole somewhere (``at_risk``: what that can lose), with
        the role that lets them be written by name; None when they never were."""
        if not self.whole_tags_in:
            return None
        return (
            f"{subject}: the automation principal may not write tags by name (Microsoft.Resources/tags/write) in "
            f"resource group(s) {', '.join(sorted(self.whole_tags_in))}: identity tags were written whole, which can "
            f"lose {at_risk}; grant it Tag Contributor there"
        )

    def get(self, ref: IdentityRef) -> IdentityState | None:
        try:
            model = azure_call(
                f"get identity {ref.name}",
                lambda: self.client.user_assigned_identities.get(ref.resource_group, ref.name),
                self.policy,
            )
        except AzureApiError as exc:
            if exc.status == 404 and exc.code in ("ResourceNotFound", "NotFound", None):
                return None
            raise
        return identity_state(model)

    def put(self, ref: IdentityRef, location: str, tags: dict[str, str]) -> IdentityState:
        model = azure_call(
            f"create or update identity {ref.name}",
            lambda: self.client.user_assigned_identities.create_or_update(
                ref.resource_group, ref.name, {"location": location, "tags": tags}
            ),
            self.policy,
        )
        return identity_state(model)

    def retag(self, ref: IdentityRef, before: IdentityState, wanted: dict[str, str]) -> IdentityState:
        """An existing identity's tags made ``wanted``: by name (see the module's doc), else whole. The identity as it
        is after, with whatever other writers changed meanwhile."""
        current = before["tags"]
        keep = {k.lower() for k in wanted}  # ARM compares tag names without case
        merge = {k: v for k, v in wanted.items() if current.get(k) != v}
        # With its value: a tag another writer changed meanwhile is not deleted (ARM matches name and value).
        delete = {k: v for k, v in current.items() if k.lower() not in keep}
        if ref.resource_group.lower() not in self.whole_tags_in:
            try:
                tags = current
                for operation, given in (("Merge", merge), ("Delete", delete)):
                    if given:
                        tags = self._patch_tags(ref, operation, given)
                return IdentityState(**{**before, "tags": tags})
            except AzureApiError as exc:
                if exc.status != 403:
                    raise
                self.whole_tags_in.add(ref.resource_group.lower())
        return self.put(ref, before["location"], wanted)

    def _patch_tags(self, ref: IdentityRef, operation: str, tags: dict[str, str]) -> dict[str, str]:
        found = self.tags_api.send(
            "PATCH",
            f"{ref.id}/providers/Microsoft.Resources/tags/default",
            f"{operation.lower()} tags of identity {ref.name}",
            {"operation": operation, "properties": {"tags": tags}},
        )
        return dict((found.get("properties") or {}).get("tags") or {})

    def delete(self, ref: IdentityRef) -> None:
        azure_call(
            f"delete identity {ref.name}",
            lambda: self.client.user_assigned_identities.delete(ref.resource_group, ref.name),
            self.policy,
        )

    def list_all(self, resource_group: str | None) -> list[IdentityState]:
        def fetch() -> list[Any]:
            ops = self.client.user_assigned_identities
            pager = ops.list_by_resource_group(resource_group) if resource_group else ops.list_by_subscription()
            return list(pager)

        return [identity_state(m) for m in azure_call("list identities", fetch, self.policy)]


def desired_tags(current: dict[str, str] | None, tags: dict[str, str] | None, purge_tags: bool) -> dict[str, str]:
    if tags is None:
        return dict(current or {})
    if purge_tags:
        return dict(tags)
    return {**(current or {}), **tags}


def ensure_identity(
    api: IdentityApi,
    ref: IdentityRef,
    *,
    state: str,
    location: str | None,
    tags: dict[str, str] | None,
    purge_tags: bool,
    check_mode: bool,
    known: IdentityState | None | Unread = UNREAD,
) -> Outcome[IdentityState]:
    """``known``: the identity as the caller already read it (None: known not to exist)."""
    before = api.get(ref) if isinstance(known, Unread) else known
    if state == "absent":
        if before is None:
            return Outcome(False, "absent", None, None)
        if not check_mode:
            api.delete(ref)
        return Outcome(True, "deleted", before, None)
    if before is None:
        if not location:
            raise ValidationError([f"identity {ref.name}: location is required to create it"])
        region, new_tags = normalise_location(location), desired_tags(None, tags, purge_tags)
        after: IdentityState = {
            "id": ref.id,
            "name": ref.name,
            "resource_group": ref.resource_group,
            "location": region,
            "tags": new_tags,
            "client_id": None,
            "principal_id": None,
            "tenant_id": None,
        }
        if not check_mode:
            after = api.put(ref, region, new_tags)
        return Outcome(True, "created", None, after, ["ids are assigned by Azure on creation"] if check_mode else [])
    if location and normalise_location(location) != before["location"]:
        raise ValidationError(
            [
                f"identity {ref.name} exists in {before['location']}; an identity cannot move to "
                f"{normalise_location(location)} (delete it first, or keep its location)"
            ]
        )
    wanted = desired_tags(before["tags"], tags, purge_tags)
    if wanted == before["tags"]:
        return Outcome(False, "unchanged", before, before)
    after = IdentityState(**{**before, "tags": wanted})
    if not check_mode:
        after = api.retag(ref, before, wanted)
    return Outcome(True, "updated", before, after)


def normalise_location(location: str) -> str:
    """ARM answers locations lower case without spaces ('West Europe' -> 'westeurope')."""
    return location.replace(" ", "").lower()
