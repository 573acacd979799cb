"""Input Azure refuses, refused here too: so the suites find, before real Azure does, what a run would send wrong.

Tag names with ARM's reserved characters, or twice in different case; a name with a trailing newline (a pattern
matched whole); a control character in an application's display name.
"""

from __future__ import annotations

import pytest

from tests.integration.sandbox_helpers import Sandbox

IDENTITIES = "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"


@pytest.mark.parametrize("name", ["a<b", "a>b", "a%b", "a&b", "a\\b", "a?b", "a/b", "tab\there"])
def test_arm_refuses_a_tag_name_with_a_reserved_or_control_character(sandbox: Sandbox, name: str) -> None:
    rg = sandbox.resource_group("rg-refused")
    refused = sandbox.raw("PUT", f"{rg}{IDENTITIES}/id-tagged", {"location": "westeurope", "tags": {name: "x"}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidTagNameCharacters"
    group = sandbox.raw("PUT", f"/subscriptions/{sandbox.subscription_id}/resourcegroups/rg-tagged", {
        "location": "westeurope", "tags": {name: "x"}
    }, api_version="2022-09-01")  # fmt: skip
    assert group.status_code == 400 and group.json()["error"]["code"] == "InvalidTagNameCharacters"


def test_arm_tag_names_ignore_case_and_names_are_matched_whole(sandbox: Sandbox) -> None:
    rg = sandbox.resource_group("rg-refused")
    twice = sandbox.raw(
        "PUT", f"{rg}{IDENTITIES}/id-twice", {"location": "westeurope", "tags": {"Env": "a", "env": "b"}}
    )
    assert twice.status_code == 400 and twice.json()["error"]["code"] == "InvalidTag"
    newline = sandbox.raw("PUT", f"{rg}{IDENTITIES}/id-newline%0A", {"location": "westeurope"})
    assert newline.status_code == 400 and newline.json()["error"]["code"] == "InvalidResourceName"
    fine = sandbox.raw("PUT", f"{rg}{IDENTITIES}/id-fine", {"location": "westeurope", "tags": {"cost-center": "42"}})
    assert fine.status_code == 201


def test_graph_refuses_a_control_character_in_a_display_name(sandbox: Sandbox) -> None:
    for name in ("nul\x00inside", "line\nbreak", " ", "d" * 257):
        refused = sandbox.graph("POST", "/applications", {"displayName": name})
        assert refused.status_code == 400, name
        assert refused.json()["error"]["message"] == (
            "Invalid value specified for property 'displayName' of resource 'Application'."
        )
    app = sandbox.graph("POST", "/applications", {"displayName": "fine"}).json()
    patched = sandbox.graph("PATCH", f"/applications/{app['id']}", {"displayName": "tab\there"})
    assert patched.status_code == 400
