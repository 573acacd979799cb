"""ARM's Tags API at a resource's scope (``{scope}/providers/Microsoft.Resources/tags/default``) in the sandbox: one
tag added or removed without rewriting the others, atomically, so that writers of different names never lose one
another's write (what a PUT of the whole resource cannot promise: ARM keeps no ETag for an identity's tags); and the
Azure CLI's ``az tag update``, a client nobody here wrote."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sandbox_helpers import AZ, Cli, Sandbox

API = "2021-04-01"


def identity(sandbox: Sandbox, name: str, tags: dict[str, str]) -> str:
    sandbox.resource_group("rg-tags")
    made = sandbox.msi().user_assigned_identities.create_or_update(
        "rg-tags", name, {"location": "westeurope", "tags": tags}
    )
    return str(made.id)


def patch(sandbox: Sandbox, scope: str, operation: str, tags: dict[str, str]) -> Any:
    body = {"operation": operation, "properties": {"tags": tags}}
    return sandbox.raw("PATCH", f"{scope}/providers/Microsoft.Resources/tags/default", body, api_version=API)


def test_merge_and_delete_change_only_the_names_given_and_concurrent_writers_all_win(sandbox: Sandbox) -> None:
    scope = identity(sandbox, "id-shared", {"wi-managed-by": "workload_identity.aks", "team": "orders"})
    # Sixteen clusters claim the identity at once, each its own tag: every claim is there after.
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda i: patch(sandbox, scope, "Merge", {f"wi-uses:aks-{i}": ""}), range(16)))
    assert {a.status_code for a in answers} == {200}
    held = sandbox.msi().user_assigned_identities.get("rg-tags", "id-shared").tags
    assert sorted(k for k in held if k.startswith("wi-uses:")) == sorted(f"wi-uses:aks-{i}" for i in range(16))
    assert held["team"] == "orders"
    # Half of them release theirs at once: only those go.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: patch(sandbox, scope, "Delete", {f"wi-uses:aks-{i}": ""}), range(8)))
    answer = sandbox.raw("GET", f"{scope}/providers/Microsoft.Resources/tags/default", api_version=API).json()
    assert answer["id"] == f"{scope}/providers/Microsoft.Resources/tags/default"
    claims = sorted(k for k in answer["properties"]["tags"] if k.startswith("wi-uses:"))
    assert claims == sorted(f"wi-uses:aks-{i}" for i in range(8, 16))
    # Delete with a value takes the tag only when the value matches.
    patch(sandbox, scope, "Delete", {"team": "payments"})
    assert "team" in sandbox.msi().user_assigned_identities.get("rg-tags", "id-shared").tags
    patch(sandbox, scope, "Delete", {"TEAM": "orders"})
    assert "team" not in sandbox.msi().user_assigned_identities.get("rg-tags", "id-shared").tags


def test_replace_the_limit_a_missing_resource_and_an_unknown_operation(sandbox: Sandbox) -> None:
    scope = identity(sandbox, "id-limits", {"a": "1"})
    assert patch(sandbox, scope, "Replace", {"b": "2"}).json()["properties"]["tags"] == {"b": "2"}
    too_many = patch(sandbox, scope, "Merge", {f"t{i}": "" for i in range(50)})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "InvalidTag"
    assert sandbox.msi().user_assigned_identities.get("rg-tags", "id-limits").tags == {"b": "2"}
    unknown = patch(sandbox, scope, "Append", {"c": "3"})
    assert unknown.status_code == 400
    gone = patch(sandbox, scope.replace("id-limits", "id-none"), "Merge", {"c": "3"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"


@pytest.mark.skipif(not AZ, reason="SANDBOX_AZ_CLI names no az binary (make integration installs one)")
def test_az_tag_update_merges_and_deletes_one_tag(sandbox: Sandbox, tmp_path: Path) -> None:
    scope = identity(sandbox, "id-cli", {"keep": "me"})
    az = Cli.for_sandbox(sandbox, tmp_path / "azure")
    az.login(sandbox)
    merged = az.json("tag", "update", "--resource-id", scope, "--operation", "merge", "--tags", "wi-uses:aks-a=")
    assert merged["properties"]["tags"] == {"keep": "me", "wi-uses:aks-a": ""}
    az.json("tag", "update", "--resource-id", scope, "--operation", "delete", "--tags", "wi-uses:aks-a=")
    assert az.json("tag", "list", "--resource-id", scope)["properties"]["tags"] == {"keep": "me"}


def test_the_tags_api_needs_tags_write_which_managed_identity_contributor_does_not_grant(sandbox: Sandbox) -> None:
    from .test_rbac import assign

    scope = identity(sandbox, "id-perms", {})
    operator = sandbox.control.create_principal(display_name="identity-operator")
    assign(sandbox, sandbox.rg_id("rg-tags"), "Managed Identity Contributor", operator["principal_id"])
    token = str(
        sandbox.credential(operator["client_id"], operator["client_secret"]).get_token(sandbox.url + "/.default").token
    )
    body = {"operation": "Merge", "properties": {"tags": {"wi-uses:aks-a": ""}}}
    path = f"{scope}/providers/Microsoft.Resources/tags/default"
    refused = sandbox.raw("PATCH", path, body, token=token, api_version=API)
    assert refused.status_code == 403 and "Microsoft.Resources/tags/write" in refused.json()["error"]["message"]
    assign(sandbox, sandbox.rg_id("rg-tags"), "Tag Contributor", operator["principal_id"])
    assert sandbox.raw("PATCH", path, body, token=token, api_version=API).status_code == 200
