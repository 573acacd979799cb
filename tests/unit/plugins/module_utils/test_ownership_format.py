"""Every release's marks are read by this checkout as the collection's own, and converging on them rewrites nothing.

``tests/unit/fixtures/ownership/<version>.json`` records what a release wrote (made by that release's own code,
``generate.py``); the same checks run on what this checkout writes now. A slip in the format (a tag renamed, a mark
parsed differently, a name derived otherwise) fails here, before prune or teardown could take an object of ours for
someone else's, or an operator's for ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils import (
    _ids,
    _inventory,
    _ownership,
    _ownership_assignments,
    _ownership_kube,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_shared import (
    application_tags,
    identity_tags,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import (
    FORMAT_VERSION,
    app_created_role_digests,
    application_claims,
    application_format,
    application_owned_by,
    application_owner_cluster,
    claims,
    created_role_digests,
    default_application_unique_name,
    fic_name,
    identity_format,
    made_by_collection,
    made_for,
    owned_by,
    owner_cluster,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership_assignments import (
    made_by_collection_assignment,
    marked_description,
    read_mark,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership_kube import (
    adopted_values,
    kube_created_by_collection,
    kube_format,
    kube_workload,
)

from ...fixtures.ownership import generate as recorded_by

FIXTURES = sorted((Path(recorded_by.__file__).parent).glob("*.json"))
SCOPE_DEV, SCOPE_ELSEWHERE = recorded_by.SCOPE_DEV, recorded_by.SCOPE_ELSEWHERE
CURRENT = {
    "version": "(this checkout)",
    **recorded_by.record(
        {
            "_ownership": _ownership,
            "_ownership_assignments": _ownership_assignments,
            "_ownership_kube": _ownership_kube,
            "_ids": _ids,
            "_inventory": _inventory,
        }
    ),
}


def written() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in FIXTURES] + [CURRENT]


def the_workload(identity_type: str = "user_assigned") -> Any:
    declared: dict[str, Any] = {"name": "orders-api", "namespace": "shop", "service_account": "orders", "roles": []}
    if identity_type == "user_assigned":
        declared.update(identity_resource_group="rg-ids", tags={"team": "shop"})
    else:
        declared.update(identity_type="application")
    (spec,) = validate_workloads(
        "aks-dev", [declared], identity_resource_group=None, allow_privileged_roles=False
    ).specs
    return spec


def dev_batch(spec: Any) -> Batch:
    return Batch("aks-dev", recorded_by.SUB, None, "westeurope", [spec], False, False, cluster_scope=SCOPE_DEV)


def test_0_1_0_is_recorded() -> None:
    assert [json.loads(p.read_text())["version"] for p in FIXTURES][:1] == ["0.1.0"]


@pytest.mark.parametrize("marks", written(), ids=lambda m: m["version"])
def test_identities_are_read_as_ours_and_rewritten_as_they_are(marks: dict[str, Any]) -> None:
    identities = marks["identities"]
    made = identities["made_for_a_workload"]
    assert made_by_collection(made) and owner_cluster(made) == "aks-dev"
    assert made_for(made, "aks-dev", SCOPE_DEV) and owned_by(made, "aks-dev", SCOPE_DEV)
    # A same-named cluster elsewhere is another owner; a cluster with another name is not this one.
    assert not owned_by(made, "aks-dev", SCOPE_ELSEWHERE) and not owned_by(made, "aks-prod", SCOPE_DEV)
    assert identity_format(made) == (1 if marks["version"] == "0.1.0" else FORMAT_VERSION)
    # Converging the same workload on it writes exactly what is there: an upgrade rewrites no identity.
    spec = the_workload()
    assert identity_tags(dev_batch(spec), spec, made) == made
    shared = identities["shared_by_two_clusters"]
    assert sorted((c.cluster, c.scope) for c in claims(shared)) == [("aks-dev", SCOPE_DEV), ("aks-dr", SCOPE_ELSEWHERE)]
    assert owned_by(shared, "aks-dr", SCOPE_ELSEWHERE)
    legacy = identities["made_before_places_were_recorded"]
    assert [(c.key, c.cluster, c.scope) for c in claims(legacy)] == [("", "aks-old", None)]
    assert owned_by(legacy, "aks-old", SCOPE_DEV)  # a place not recorded is no evidence of another cluster
    operators = identities["made_elsewhere_with_created_roles"]
    assert not made_by_collection(operators) and identity_format(operators) is None
    assert created_role_digests(operators, "aks-dev", "shop", "orders-api") == set(marks["created_role_digests"])


@pytest.mark.parametrize("marks", written(), ids=lambda m: m["version"])
def test_applications_are_read_as_ours_and_rewritten_as_they_are(marks: dict[str, Any]) -> None:
    apps = marks["applications"]
    made = apps["made_for_a_workload"]
    assert application_owner_cluster(made) == "aks-dev" and application_owned_by(made, "aks-dev", SCOPE_DEV)
    assert not application_owned_by(made, "aks-dev", SCOPE_ELSEWHERE)
    assert application_format(made) == (1 if marks["version"] == "0.1.0" else FORMAT_VERSION)
    spec = the_workload("application")
    assert application_tags(dev_batch(spec), spec, made) == made
    shared = apps["shared_by_two_clusters"]
    assert sorted((c.cluster, c.scope) for c in application_claims(shared)) == [
        ("aks-dev", SCOPE_DEV),
        ("aks-dr", None),
    ]
    operators = apps["made_elsewhere_with_created_roles"]
    assert application_owner_cluster(operators) is None and application_format(operators) is None
    assert app_created_role_digests(operators, "aks-dev", "shop", "orders-api") == set(marks["created_role_digests"])


@pytest.mark.parametrize("marks", written(), ids=lambda m: m["version"])
def test_role_assignment_marks_are_read_and_kept_as_written(marks: dict[str, Any]) -> None:
    descriptions = marks["role_assignment_descriptions"]
    for key, description in descriptions.items():
        mark = read_mark(description)
        assert mark is not None, key
        assert mark.of("aks-dev", SCOPE_DEV) and (mark.namespace, mark.workload) == ("shop", "orders-api")
        assert mark.format == (None if marks["version"] == "0.1.0" else FORMAT_VERSION)
        # The engine keeps the mark an assignment has: re-rendered, it is the very text that was written.
        declared = "reads orders" if key == "identity_with_a_description" else None
        assert marked_description(declared, mark.text) == description
        assert made_by_collection_assignment("an-operators-name", description, "/", "", "")
    identity = read_mark(descriptions["identity"])
    application = read_mark(descriptions["application_without_place"])
    assert identity is not None and (identity.kind, identity.holder, identity.place) == (
        "identity",
        "rg-ids/id-orders",
        SCOPE_DEV,
    )
    assert application is not None and (application.kind, application.place) == ("application", None)
    assert not application.of("aks-prod", SCOPE_DEV)


@pytest.mark.parametrize("marks", written(), ids=lambda m: m["version"])
def test_names_are_derived_as_they_were(marks: dict[str, Any]) -> None:
    """Identities, applications, credentials and assignments are found again by the names a release derived."""
    names = marks["names"]
    subject = "system:serviceaccount:shop:orders"
    assert names["default_identity"] == _inventory.default_identity_name("aks-dev", "shop", "orders-api")
    assert names["default_application_unique_name"] == default_application_unique_name("aks-dev", "shop", "orders-api")
    assert names["federated_credential"] == fic_name("aks-dev", subject)
    assert names["federated_credential_for_another_issuer"] == fic_name("aks-dev", subject, recorded_by.ISSUER)
    assert names["federated_credential_long"] == fic_name("aks-dev", "system:serviceaccount:shop:" + "a" * 130)
    assert names["role_assignment"] == _ids.assignment_name(recorded_by.DATA, recorded_by.READER, recorded_by.PRINCIPAL)


@pytest.mark.parametrize("marks", written(), ids=lambda m: m["version"])
def test_kubernetes_marks_are_read_as_ours(marks: dict[str, Any]) -> None:
    kube = marks["kubernetes"]
    created, touched = kube["created"], kube["touched"]
    assert kube_created_by_collection(created) and kube_workload(created) == "orders-api"
    assert kube_format(created) == (1 if marks["version"] == "0.1.0" else FORMAT_VERSION)
    assert not kube_created_by_collection(touched) and kube_workload(touched) == "orders-api"
    assert kube_created_by_collection(kube["namespace_created"]) and kube_workload(kube["namespace_created"]) is None
    # What prune and teardown list by: the selector this checkout builds matches what the release created.
    selector = _ownership_kube.kube_cluster_selector("aks-dev", created_only=True)
    assert all(created.get(k) == v for k, v in (pair.split("=") for pair in selector.split(",")))
    annotations = {_ownership_kube.ADOPTED_ANNOTATION: kube["adopted_record"]}
    assert adopted_values(annotations, "serviceaccount") == {"azure.workload.identity/client-id": "operator-client-id"}
