"""roleDefinitions, roleAssignments and permissions through azure-mgmt-authorization."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.integration.sandbox_helpers import Sandbox

BUILT_IN = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Role Based Access Control Administrator": "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "Managed Identity Operator": "f1a07417-d97a-45cb-824c-7a7467783830",
    "Managed Identity Contributor": "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
    "Tag Contributor": "4a9ae827-6dc8-4573-8ac7-8239d42aa03f",
}


def role_id(name: str) -> str:
    return f"/providers/Microsoft.Authorization/roleDefinitions/{BUILT_IN[name]}"


def new_identity(sandbox: Sandbox, rg: str, name: str) -> str:
    return str(
        sandbox.msi().user_assigned_identities.create_or_update(rg, name, {"location": "westeurope"}).principal_id
    )


def assign(
    sandbox: Sandbox,
    scope: str,
    role: str,
    principal: str,
    name: str | None = None,
    principal_type: str | None = "ServicePrincipal",
    **extra: str,
) -> object:
    body = {"role_definition_id": role_id(role), "principal_id": principal, **extra}
    if principal_type:
        body["principal_type"] = principal_type
    return sandbox.authz().role_assignments.create(scope, name or str(uuid.uuid4()), body)


def test_built_in_catalog(sandbox: Sandbox) -> None:
    definitions = sandbox.authz().role_definitions
    sub = f"/subscriptions/{sandbox.subscription_id}"
    rg = sandbox.resource_group("rg-rbac")
    for name, guid in BUILT_IN.items():
        found = list(definitions.list(rg, filter=f"roleName eq '{name}'"))
        assert [d.name for d in found] == [guid], name
        assert found[0].id == f"{rg}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        assert found[0].role_type == "BuiltInRole"
    blob = definitions.get(sub, BUILT_IN["Storage Blob Data Contributor"])
    assert "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read" in blob.permissions[0].data_actions
    assert blob.id.startswith(sub + "/providers/")
    contributor = definitions.get(sub, BUILT_IN["Contributor"]).permissions[0]
    assert contributor.actions == ["*"] and "Microsoft.Authorization/*/Write" in contributor.not_actions
    with pytest.raises(ResourceNotFoundError):
        definitions.get(sub, str(uuid.uuid4()))


def test_custom_role_definitions(sandbox: Sandbox) -> None:
    definitions = sandbox.authz().role_definitions
    rg = sandbox.resource_group("rg-custom")
    other = sandbox.resource_group("rg-other")
    guid = str(uuid.uuid4())
    body = {
        "role_name": "Orders Reader",
        "description": "read orders",
        "role_type": "CustomRole",
        "permissions": [{"actions": ["Microsoft.Storage/storageAccounts/read"]}],
        "assignable_scopes": [rg],
    }
    created = definitions.create_or_update(rg, guid, body)
    assert created.role_name == "Orders Reader" and created.role_type == "CustomRole"
    assert [d.name for d in definitions.list(rg, filter="roleName eq 'Orders Reader'")] == [guid]
    assert list(definitions.list(other, filter="roleName eq 'Orders Reader'")) == []
    with pytest.raises(HttpResponseError) as clash:
        definitions.create_or_update(rg, str(uuid.uuid4()), {**body, "role_name": "Reader"})
    assert clash.value.error.code == "RoleDefinitionWithSameNameExists"
    principal = new_identity(sandbox, "rg-custom", "custom-user")
    assignment = sandbox.authz().role_assignments.create(
        rg,
        str(uuid.uuid4()),
        {"role_definition_id": created.id, "principal_id": principal, "principal_type": "ServicePrincipal"},
    )
    with pytest.raises(HttpResponseError) as unassignable:
        sandbox.authz().role_assignments.create(
            other,
            str(uuid.uuid4()),
            {"role_definition_id": created.id, "principal_id": principal, "principal_type": "ServicePrincipal"},
        )
    assert unassignable.value.error.code == "RoleDefinitionDoesNotExist"
    with pytest.raises(HttpResponseError) as in_use:
        definitions.delete(rg, guid)
    assert in_use.value.error.code == "RoleDefinitionHasAssignments"
    sandbox.authz().role_assignments.delete_by_id(assignment.id)
    definitions.delete(rg, guid)
    assert list(definitions.list(rg, filter="type eq 'CustomRole'")) == []


def test_assignment_create_repeat_and_conflicts(sandbox: Sandbox) -> None:
    rg = sandbox.resource_group("rg-ra")
    principal = new_identity(sandbox, "rg-ra", "app")
    name = str(uuid.uuid4())
    first = assign(sandbox, rg, "Reader", principal, name, description="why")
    assert first.name == name and first.scope == rg and first.principal_type == "ServicePrincipal"
    assert (
        first.role_definition_id == f"/subscriptions/{sandbox.subscription_id}/providers/Microsoft.Authorization/"
        f"roleDefinitions/{BUILT_IN['Reader']}"
    )
    assert first.created_on and first.created_by
    repeat = assign(sandbox, rg, "Reader", principal, name, description="why")
    assert (repeat.name, repeat.created_on) == (first.name, first.created_on)
    with pytest.raises(ResourceExistsError) as other_name:
        assign(sandbox, rg, "Reader", principal)
    assert other_name.value.error.code == "RoleAssignmentExists"
    assert name.replace("-", "") in other_name.value.error.message
    with pytest.raises(ResourceExistsError) as changed_role:
        assign(sandbox, rg, "AcrPull", principal, name)
    assert changed_role.value.error.code == "RoleAssignmentUpdateNotPermitted"
    with pytest.raises(HttpResponseError) as not_guid:
        assign(sandbox, rg, "AcrPull", principal, "not-a-guid")
    assert not_guid.value.error.code == "InvalidRoleAssignmentId"
    with pytest.raises(HttpResponseError) as no_role:
        sandbox.authz().role_assignments.create(
            rg,
            str(uuid.uuid4()),
            {
                "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}",
                "principal_id": principal,
                "principal_type": "ServicePrincipal",
            },
        )
    assert no_role.value.error.code == "RoleDefinitionDoesNotExist"
    with pytest.raises(HttpResponseError) as missing_rg:
        assign(sandbox, sandbox.rg_id("rg-nope"), "Reader", principal)
    assert missing_rg.value.error.code == "ResourceGroupNotFound"


def test_principal_replication_delay(sandbox: Sandbox) -> None:
    # A window no loaded machine outruns for the writes that must land inside it...
    sandbox.control.configure({"principal_replication_seconds": 120})
    rg = sandbox.resource_group("rg-ra")
    principal = new_identity(sandbox, "rg-ra", "fresh")
    with pytest.raises(HttpResponseError) as young:
        assign(sandbox, rg, "Reader", principal, principal_type=None)
    assert young.value.status_code == 400 and young.value.error.code == "PrincipalNotFound"
    assign(sandbox, rg, "Reader", principal)  # principalType=ServicePrincipal skips the lookup
    # ...then a short one, polled until it has passed: the principal is known once replicated.
    sandbox.control.configure({"principal_replication_seconds": 1.0})
    deadline = time.monotonic() + 60
    while True:
        try:
            assign(sandbox, rg, "AcrPull", principal, principal_type=None)
            break
        except HttpResponseError as exc:
            assert exc.error.code == "PrincipalNotFound" and time.monotonic() < deadline, exc
            time.sleep(0.2)
    with pytest.raises(HttpResponseError) as unknown:
        assign(sandbox, rg, "Reader", str(uuid.uuid4()))
    assert unknown.value.error.code == "PrincipalNotFound"
    with pytest.raises(HttpResponseError) as wrong_type:
        assign(sandbox, rg, "Storage Blob Data Reader", principal, principal_type="User")
    assert wrong_type.value.error.code == "UnmatchedPrincipalType"


def test_assignment_list_filters_follow_inheritance(sandbox: Sandbox) -> None:
    sub = f"/subscriptions/{sandbox.subscription_id}"
    rg = sandbox.resource_group("rg-ra")
    principal = new_identity(sandbox, "rg-ra", "app")
    other = new_identity(sandbox, "rg-ra", "other")
    identity_scope = f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"
    at_sub = assign(sandbox, sub, "Reader", principal)
    at_rg = assign(sandbox, rg, "AcrPull", principal)
    below = assign(sandbox, identity_scope, "Managed Identity Operator", principal)
    assign(sandbox, rg, "Reader", other)
    authz = sandbox.authz().role_assignments

    def names(scope: str, filt: str | None = None) -> set[str]:
        return {a.name for a in authz.list_for_scope(scope, filter=filt)}

    at_rg_scope = names(rg, "atScope()")
    assert {at_sub.name, at_rg.name} <= at_rg_scope and below.name not in at_rg_scope
    assert names(rg, f"principalId eq '{principal}'") == {at_sub.name, at_rg.name, below.name}
    assert names(sub, f"assignedTo('{principal}')") == {at_sub.name, at_rg.name, below.name}
    assert names(rg, f"atScope() and assignedTo('{principal}')") == {at_sub.name, at_rg.name}
    assert names(identity_scope, "atScope()") >= {at_sub.name, at_rg.name, below.name}
    assert below.name in names(sub)  # no filter: at, above and below
    got = authz.get_by_id(below.id)
    assert got.scope == identity_scope
    authz.delete_by_id(below.id)
    with pytest.raises(ResourceNotFoundError) as gone:
        authz.get(identity_scope, below.name)
    assert gone.value.error.code == "RoleAssignmentNotFound"
    with pytest.raises(HttpResponseError) as bad_filter:
        list(authz.list_for_scope(rg, filter="roleName eq 'x' or 1 eq 1"))
    assert bad_filter.value.status_code == 400


def test_conditions(sandbox: Sandbox) -> None:
    rg = sandbox.resource_group("rg-ra")
    principal = new_identity(sandbox, "rg-ra", "cond")
    condition = (
        "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR "
        "(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'orders'))"
    )
    created = assign(sandbox, rg, "Storage Blob Data Reader", principal, condition=condition)
    assert created.condition == condition and created.condition_version == "2.0"
    with pytest.raises(HttpResponseError) as old_version:
        assign(sandbox, rg, "Storage Blob Data Contributor", principal, condition=condition, condition_version="1.0")
    assert old_version.value.status_code == 400
    # What ARM refuses with InvalidRoleAssignmentCondition: a condition that does not parse, one on a role whose
    # actions take none, one naming an action the role does not grant. Nothing is written.
    refused = {
        "syntax": ("Storage Blob Data Contributor", condition.replace(" OR ", " OR OR ")),
        "unclosed": ("Storage Blob Data Contributor", condition[:-1]),
        "mixed": ("Storage Blob Data Contributor", f"{condition} AND {condition} OR {condition}"),
        "no conditions on Reader": ("Reader", condition),
        "not granted": ("Storage Blob Data Reader", condition.replace("blobs/read", "blobs/write")),
    }
    before = len(list(sandbox.authz().role_assignments.list_for_scope(rg)))
    for case, (role, text) in refused.items():
        with pytest.raises(HttpResponseError) as invalid:
            assign(sandbox, rg, role, principal, condition=text)
        assert (invalid.value.status_code, invalid.value.error.code) == (400, "InvalidRoleAssignmentCondition"), case
        assert invalid.value.error.message.startswith("The given role assignment condition is invalid."), case
    assert len(list(sandbox.authz().role_assignments.list_for_scope(rg))) == before
    # Delegation (roleAssignments/write) takes conditions too, with GUID sets unquoted.
    delegated = (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
        "{2a2b9908-6ea1-4ae2-8e65-a410df84e7d1, ba92f5b4-2d11-453d-a403-e96b0029c9fe}))"
    )
    assert assign(sandbox, rg, "Role Based Access Control Administrator", principal, condition=delegated).condition


def test_role_assignment_limit(sandbox: Sandbox) -> None:
    rg = sandbox.resource_group("rg-ra")
    principal = new_identity(sandbox, "rg-ra", "many")
    existing = len(list(sandbox.authz().role_assignments.list_for_subscription()))
    sandbox.control.configure({"role_assignment_limit": existing + 1})
    assign(sandbox, rg, "Reader", principal)
    with pytest.raises(HttpResponseError) as limit:
        assign(sandbox, rg, "AcrPull", principal)
    assert limit.value.error.code == "RoleAssignmentLimitExceeded"


def test_authorization_of_role_assignment_writes(sandbox: Sandbox) -> None:
    sub = f"/subscriptions/{sandbox.subscription_id}"
    rg = sandbox.resource_group("rg-ra")
    target = new_identity(sandbox, "rg-ra", "target")
    reader = sandbox.control.create_principal([{"role": "Reader", "scope": sub}])
    rbac_admin = sandbox.control.create_principal([{"role": "Role Based Access Control Administrator", "scope": rg}])
    as_reader = sandbox.authz(sandbox.credential(reader["client_id"], reader["client_secret"]))
    with pytest.raises(HttpResponseError) as denied:
        as_reader.role_assignments.create(
            rg,
            str(uuid.uuid4()),
            {"role_definition_id": role_id("Reader"), "principal_id": target, "principal_type": "ServicePrincipal"},
        )
    assert denied.value.status_code == 403 and denied.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Authorization/roleAssignments/write" in denied.value.error.message
    as_admin = sandbox.authz(sandbox.credential(rbac_admin["client_id"], rbac_admin["client_secret"]))
    as_admin.role_assignments.create(
        rg,
        str(uuid.uuid4()),
        {"role_definition_id": role_id("Reader"), "principal_id": target, "principal_type": "ServicePrincipal"},
    )
    with pytest.raises(HttpResponseError) as above:
        as_admin.role_assignments.create(
            sub,
            str(uuid.uuid4()),
            {"role_definition_id": role_id("Reader"), "principal_id": target, "principal_type": "ServicePrincipal"},
        )
    assert above.value.status_code == 403


def test_effective_permissions(sandbox: Sandbox) -> None:
    sub = f"/subscriptions/{sandbox.subscription_id}"
    sandbox.resource_group("rg-perm")
    owner = list(sandbox.authz().permissions.list_for_resource_group("rg-perm"))
    assert any("*" in p.actions for p in owner)
    reader = sandbox.control.create_principal([{"role": "Reader", "scope": sub}])
    mine = list(
        sandbox.authz(
            sandbox.credential(reader["client_id"], reader["client_secret"])
        ).permissions.list_for_resource_group("rg-perm")
    )
    assert [p.actions for p in mine] == [["*/read"]]
