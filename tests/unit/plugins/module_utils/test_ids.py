"""_ids: scopes, resource ids, deterministic names and role references."""

from __future__ import annotations

import uuid

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils import _ids as ids

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-App"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"/subscriptions/{SUB}", "subscription"),
        (f"/subscriptions/{SUB}/", "subscription"),
        (RG, "resourceGroup"),
        (f"{RG}/providers/Microsoft.Storage/storageAccounts/sa/blobServices/default/containers/orders", "resource"),
        ("/providers/Microsoft.Management/managementGroups/platform", "managementGroup"),
        (f"//subscriptions//{SUB}/resourceGroups/rg//", "resourceGroup"),
    ],
)
def test_valid_scopes(text: str, kind: str) -> None:
    scope = ids.parse_scope(text)
    assert scope.kind == kind and not scope.path.endswith("/") and "//" not in scope.path


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("subscriptions/x", "must start with"),
        ("/subscriptions/not-a-guid", "not a GUID"),
        (f"/subscriptions/{SUB}/resourcegroup/rg", "resourceGroups"),
        (f"{RG}/providers/Microsoft.Storage/storageAccounts", "resource scope"),
        (f"{RG}/providers/storage/storageAccounts/x", "namespace"),
        ("/providers/Microsoft.Management/managementGroups", "management group"),
    ],
)
def test_invalid_scopes_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ids.InvalidScope, match=says):
        ids.parse_scope(text)


def test_assignment_names_are_deterministic_and_case_insensitive() -> None:
    principal = "26fc24dc-33de-4c60-8ae9-0ac87fdbe06c"
    name = ids.assignment_name(RG, "ACDD72A7-3385-48EF-BD42-F606FBA81AE7", principal)
    assert uuid.UUID(name).version == 5
    assert ids.assignment_name(RG.upper() + "/", "acdd72a7-3385-48ef-bd42-f606fba81ae7", principal.upper()) == name
    assert ids.assignment_name(RG + "2", "acdd72a7-3385-48ef-bd42-f606fba81ae7", principal) != name


def test_role_guid_from_any_scope_and_canonical_ids() -> None:
    assert ids.role_guid(f"{RG}/providers/Microsoft.Authorization/roleDefinitions/ABC/") == "abc"
    raw = f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
    assert ids.canonical(raw) == raw.replace("resourcegroups", "resourceGroups")
    assert ids.same_scope(RG + "/", RG.upper())
    ref = ids.IdentityRef.parse(raw)
    assert (ref.resource_group, ref.name) == ("rg", "x")
    with pytest.raises(ids.InvalidScope):
        ids.IdentityRef.parse(RG)


def test_role_references_are_parsed_in_one_place() -> None:
    guid = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert ids.parse_role("Reader") == ids.RoleRef("Reader", None) and ids.parse_role("Reader").name == "Reader"
    assert ids.parse_role(guid.upper()).guid == guid
    definition = f"{RG}/providers/Microsoft.Authorization/roleDefinitions/{guid.upper()}"
    assert ids.parse_role(definition).guid == guid and ids.parse_role(definition).name is None
    # A name that merely contains a slash is still a name, not a definition id.
    assert ids.parse_role("Team A/B Reader").guid is None
