"""The Azure engines' decisions (identity, federated credential, role assignment), on fake Api objects: no HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils import _azure_federated_credential as fic
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_identity import (
    desired_tags,
    normalise_location,
)


@pytest.mark.parametrize(
    ("name", "issuer", "subject", "audiences", "field"),
    [
        ("ends-with=", "https://i/", "s", ["a"], "name"),
        ("ok-name", "http://i/", "s", ["a"], "issuer"),
        ("ok-name", "https://i/", "", ["a"], "subject"),
        ("ok-name", "https://i/", "s" * 601, ["a"], "subject"),
        ("ok-name", "https://i/", "s", ["a", "b"], "audiences"),
    ],
)
def test_fic_validation_names_the_field(name: str, issuer: str, subject: str, audiences: list[str], field: str) -> None:
    problems = fic.validation_problems(name, issuer, subject, audiences, "w")
    assert len(problems) == 1 and problems[0].startswith(f"w: {field}:")


def test_fic_comparison_ignores_audience_order_only() -> None:
    current = {"issuer": "https://i/", "subject": "s", "audiences": ["b", "a"]}
    assert fic.same_fic(current, "https://i/", "s", ["a", "b"])
    assert not fic.same_fic(current, "https://i", "s", ["a", "b"])  # Entra compares issuers exactly
    assert not fic.same_fic(current, "https://I/", "s", ["a", "b"])


def test_tags_and_locations() -> None:
    assert desired_tags({"a": "1"}, None, True) == {"a": "1"}
    assert desired_tags({"a": "1"}, {"b": "2"}, True) == {"b": "2"}
    assert desired_tags({"a": "1"}, {"b": "2"}, False) == {"a": "1", "b": "2"}
    assert normalise_location("West Europe") == "westeurope"


# -- the engines' decisions, on fake Api objects --------------------------------------------------
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_federated_credential import (  # noqa: E402
    IdentityFicApi,
    ensure_federated_credential,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_identity import ensure_identity  # noqa: E402
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import (  # noqa: E402
    ensure_role_assignment,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError  # noqa: E402
from ansible_collections.workload_identity.aks.plugins.module_utils._ids import IdentityRef  # noqa: E402

from .fakes import READER, SUB, FakeFics, FakeIdentities, FakeRoles, Writes, assignment  # noqa: E402

REF = IdentityRef(SUB, "rg-ids", "id-orders")
ISSUER = "https://oidc.example/tenant/cluster/"
SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-data"


def test_identity_check_mode_predicts_the_real_run_and_writes_nothing() -> None:
    writes = Writes()
    api = FakeIdentities(writes)
    planned = ensure_identity(
        api, REF, state="present", location="West Europe", tags={"a": "1"}, purge_tags=True, check_mode=True
    )
    assert (planned.action, writes) == ("created", [])
    done = ensure_identity(
        api, REF, state="present", location="West Europe", tags={"a": "1"}, purge_tags=True, check_mode=False
    )
    assert done.action == "created" and writes == [("identity", "put", "id-orders")]
    assert planned.after and done.after
    assert {k: v for k, v in planned.after.items() if not k.endswith("_id")} == {
        k: v for k, v in done.after.items() if not k.endswith("_id")
    }
    again = ensure_identity(
        api, REF, state="present", location="westeurope", tags={"a": "1"}, purge_tags=True, check_mode=False
    )
    assert (again.changed, len(writes)) == (False, 1)


def test_identity_tags_merge_or_purge_and_location_never_moves() -> None:
    writes = Writes()
    api = FakeIdentities(writes)
    ensure_identity(
        api, REF, state="present", location="westeurope", tags={"a": "1"}, purge_tags=True, check_mode=False
    )
    merged = ensure_identity(
        api, REF, state="present", location=None, tags={"b": "2"}, purge_tags=False, check_mode=False
    )
    assert merged.action == "updated" and merged.after and merged.after["tags"] == {"a": "1", "b": "2"}
    with pytest.raises(ValidationError, match="cannot move"):
        ensure_identity(
            api, REF, state="present", location="northeurope", tags=None, purge_tags=False, check_mode=False
        )
    assert len(writes) == 2
    gone = ensure_identity(api, REF, state="absent", location=None, tags=None, purge_tags=False, check_mode=False)
    assert gone.action == "deleted" and writes[-1] == ("identity", "delete", "id-orders")
    assert (
        ensure_identity(api, REF, state="absent", location=None, tags=None, purge_tags=False, check_mode=False).action
        == "absent"
    )


def test_fic_clash_and_limit_are_refused_before_any_write() -> None:
    writes = Writes()
    api = FakeFics(writes)
    ensure_federated_credential(
        IdentityFicApi(api, REF),
        "theirs",
        state="present",
        issuer=ISSUER,
        subject="system:serviceaccount:n:a",
        audiences=None,
        check_mode=False,
    )
    with pytest.raises(ValidationError, match="'theirs' on the same identity already trusts"):
        ensure_federated_credential(
            IdentityFicApi(api, REF),
            "ours",
            state="present",
            issuer=ISSUER,
            subject="system:serviceaccount:n:a",
            audiences=None,
            check_mode=False,
        )
    for i in range(19):
        ensure_federated_credential(
            IdentityFicApi(api, REF),
            f"fic-{i:02}",
            state="present",
            issuer=ISSUER,
            subject=f"s{i}",
            audiences=None,
            check_mode=False,
        )
    with pytest.raises(ValidationError, match="the most Azure allows"):
        ensure_federated_credential(
            IdentityFicApi(api, REF),
            "one-too-many",
            state="present",
            issuer=ISSUER,
            subject="s99",
            audiences=None,
            check_mode=False,
        )
    assert len(writes) == 20  # the two refusals wrote nothing


def test_fic_unchanged_is_free_but_an_issuer_slash_is_a_change() -> None:
    writes = Writes()
    api = FakeFics(writes)
    ensure_federated_credential(
        IdentityFicApi(api, REF), "fic-a", state="present", issuer=ISSUER, subject="s", audiences=None, check_mode=False
    )
    same = ensure_federated_credential(
        IdentityFicApi(api, REF), "fic-a", state="present", issuer=ISSUER, subject="s", audiences=None, check_mode=False
    )
    moved = ensure_federated_credential(
        IdentityFicApi(api, REF),
        "fic-a",
        state="present",
        issuer=ISSUER.rstrip("/"),
        subject="s",
        audiences=None,
        check_mode=True,
    )
    assert (same.action, moved.action, len(writes)) == ("unchanged", "updated", 1)


def test_role_assignment_adopts_an_equivalent_one_under_another_name() -> None:
    writes = Writes()
    api = FakeRoles(writes)
    principal = "26fc24dc-33de-4c60-8ae9-0ac87fdbe06c"
    api.items.append(assignment(SCOPE, READER, principal, "made-by-hand"))
    outcome = ensure_role_assignment(
        api,
        scope=SCOPE,
        role="Reader",
        principal_id=principal,
        principal_type="ServicePrincipal",
        state="present",
        check_mode=False,
        name="11111111-1111-1111-1111-111111111111",
    )
    assert (outcome.action, writes) == ("unchanged", []) and "adopted existing assignment made-by-hand" in outcome.notes
    described = ensure_role_assignment(
        api,
        scope=SCOPE,
        role="Reader",
        principal_id=principal,
        principal_type="ServicePrincipal",
        state="present",
        check_mode=False,
        description="orders",
    )
    assert described.action == "updated" and writes == [("role", "put", "made-by-hand")]  # its own name kept


def test_role_assignment_race_is_resolved_by_reading() -> None:
    writes = Writes()
    api = FakeRoles(writes)
    principal = "26fc24dc-33de-4c60-8ae9-0ac87fdbe06c"
    api.race = assignment(SCOPE, READER, principal, "someone-else")
    outcome = ensure_role_assignment(
        api,
        scope=SCOPE,
        role=READER,
        principal_id=principal,
        principal_type="ServicePrincipal",
        state="present",
        check_mode=False,
    )
    assert (outcome.changed, outcome.action, writes) == (False, "unchanged", [])
    assert "adopted someone-else, created concurrently" in outcome.notes
    gone = ensure_role_assignment(
        api,
        scope=SCOPE,
        role=READER,
        principal_id=principal,
        principal_type="ServicePrincipal",
        state="absent",
        check_mode=False,
    )
    assert gone.action == "deleted" and writes == [("role", "delete", "someone-else")]


def test_the_batch_adopts_an_equivalent_credential_made_by_hand_instead_of_refusing_it() -> None:
    writes = Writes()
    api = FakeFics(writes)
    subject = "system:serviceaccount:orders:orders-api"
    ensure_federated_credential(
        IdentityFicApi(api, REF),
        "by-hand",
        state="present",
        issuer=ISSUER,
        subject=subject,
        audiences=None,
        check_mode=False,
    )
    adopted = ensure_federated_credential(
        IdentityFicApi(api, REF),
        "aks-dev-orders-orders-api",
        state="present",
        issuer=ISSUER,
        subject=subject,
        audiences=None,
        check_mode=False,
        adopt=True,
    )
    assert (adopted.action, adopted.after and adopted.after["name"], len(writes)) == ("unchanged", "by-hand", 1)
    assert adopted.notes == ["adopted existing credential by-hand"]
    with pytest.raises(ValidationError, match="already trusts"):  # the single-object module names its credential
        ensure_federated_credential(
            IdentityFicApi(api, REF),
            "aks-dev-orders-orders-api",
            state="present",
            issuer=ISSUER,
            subject=subject,
            audiences=None,
            check_mode=False,
        )


def test_an_adopted_credential_with_another_audience_is_updated_in_place_under_its_own_name() -> None:
    writes = Writes()
    api = FakeFics(writes)
    subject = "system:serviceaccount:orders:orders-api"
    parent = IdentityFicApi(api, REF)
    args: dict[str, Any] = {"state": "present", "issuer": ISSUER, "subject": subject}
    ensure_federated_credential(parent, "by-hand", audiences=["api://custom"], check_mode=False, **args)
    writes.clear()
    plan = ensure_federated_credential(parent, "ours", audiences=None, check_mode=True, adopt=True, **args)
    assert writes == [] and plan.action == "updated"
    done = ensure_federated_credential(parent, "ours", audiences=None, check_mode=False, adopt=True, **args)
    assert (done.action, done.after and done.after["name"]) == ("updated", "by-hand")
    assert done.after and done.after["audiences"] == ["api://AzureADTokenExchange"] and plan.after == done.after
    assert [w[:2] for w in writes] == [("fic", "put")]  # one write, never a delete
    assert "audience updated in place" in done.notes[0]
    again = ensure_federated_credential(parent, "ours", audiences=None, check_mode=False, adopt=True, **args)
    assert again.action == "unchanged"


def test_on_its_own_assignment_unset_means_none_elsewhere_only_what_is_declared_is_compared() -> None:
    """A condition dropped from the inventory (or added by hand) goes from an assignment this collection owns; an
    operator's assignment keeps what the inventory does not mention."""
    writes = Writes()
    api = FakeRoles(writes)
    principal = "26fc24dc-33de-4c60-8ae9-0ac87fdbe06c"
    condition = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'orders'"
    api.items.append(assignment(SCOPE, READER, principal, "ours", condition=condition, condition_version="2.0"))

    def ensure(exact: bool, check_mode: bool) -> Any:
        return ensure_role_assignment(
            api,
            scope=SCOPE,
            role="Reader",
            principal_id=principal,
            principal_type="ServicePrincipal",
            state="present",
            check_mode=check_mode,
            exact=exact,
        )

    assert ensure(exact=False, check_mode=False).action == "unchanged" and writes == []
    plan = ensure(exact=True, check_mode=True)
    assert plan.action == "updated" and plan.after and plan.after["condition"] is None and writes == []
    assert ensure(exact=True, check_mode=False).action == "updated" and writes == [("role", "put", "ours")]
