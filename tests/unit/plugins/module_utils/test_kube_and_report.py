"""The Kubernetes engine's pure parts (patch arithmetic, controller validation) and the rollout report."""

from __future__ import annotations

from typing import Any

SUB = "04028a0b-9308-4196-891c-eecf0e43500d"
SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults/kv"


def test_merge_patch_follows_rfc_7386() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._kube import merge_patch

    # The RFC's own example.
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"]}
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None}, "tags": ["example"]}
    assert merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "phoneNumber": "+01-123-456-7890",
    }
    assert target["author"] == {"givenName": "John", "familyName": "Doe"}  # the read object is not modified


def test_combined_patches_keep_their_deletions() -> None:
    """Composing the unbind patch with merge_patch once dropped its nulls, so unbinding changed nothing."""
    from ansible_collections.workload_identity.aks.plugins.module_utils._kube import combine, merge_patch, nest

    patch = combine(
        {"metadata": {"labels": {"a": None}}},
        nest(("spec", "template"), {"spec": {"serviceAccountName": None}, "metadata": {"labels": {"use": None}}}),
    )
    assert patch["spec"]["template"]["spec"] == {"serviceAccountName": None}
    bound = {
        "metadata": {"labels": {"a": "1", "app": "x"}},
        "spec": {
            "template": {"metadata": {"labels": {"use": "true", "app": "x"}}, "spec": {"serviceAccountName": "s"}}
        },
    }
    assert merge_patch(bound, patch) == {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}},
    }


def test_controllers_and_token_expiration_are_validated_with_the_rest() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._workloads import validate

    roles = [{"role": "Reader", "scope": SCOPE}]
    specs, problems = validate(
        "aks-dev",
        None,
        [
            {
                "name": "a",
                "namespace": "n",
                "service_account": "a",
                "roles": roles,
                "token_expiration": 7200,
                "workloads": [{"kind": "Deployment", "name": "api"}, {"kind": "CronJob", "name": "nightly"}],
            },
            {
                "name": "b",
                "namespace": "n",
                "service_account": "b",
                "roles": roles,
                "token_expiration": 60,
                "workloads": [{"kind": "Deployment", "name": "api"}, {"kind": "Pod", "name": "p", "replicas": 1}],
            },
        ],
        subscription_id=SUB,
        identity_resource_group="rg",
        allow_privileged_roles=False,
        issuer_required=False,
    )
    assert [(s.name, s.controllers, s.token_expiration) for s in specs] == [
        ("a", [("Deployment", "api"), ("CronJob", "nightly")], 7200)
    ]
    assert problems == [
        "cluster aks-dev: workload 'b': workloads[0]: name: Deployment n/api is already bound to workload 'a' "
        "(a pod has one service account)",
        "cluster aks-dev: workload 'b': workloads[1]: replicas: unknown field (expected kind and name)",
        "cluster aks-dev: workload 'b': workloads[1]: kind: must be one of Deployment, StatefulSet, DaemonSet, Job, "
        "CronJob (got 'Pod')",
        "cluster aks-dev: workload 'b': token_expiration: must be seconds between 3600 and 86400 (got 60)",
    ]


def _azure(action: str, role_action: str = "unchanged") -> dict[str, Any]:
    return {
        "changed": action != "unchanged" or role_action != "unchanged",
        "workloads": [
            {
                "name": "api",
                "namespace": "n",
                "service_account": "api",
                "subject": "system:serviceaccount:n:api",
                "identity": {"name": "id-api", "client_id": "c1", "action": action},
                "federated_credentials": [{"name": "f", "subject": "system:serviceaccount:n:api", "action": action}],
                "role_assignments": [{"role": "Reader", "scope": SCOPE, "action": role_action}],
                "changed": action != "unchanged" or role_action != "unchanged",
            }
        ],
        "pruned": {"identities": [], "federated_credentials": [], "role_assignments": []},
    }


def test_report_status_joins_both_sides() -> None:
    from ansible_collections.workload_identity.aks.plugins.filter.rollout import (
        rollout_lines,
        rollout_markdown,
        rollout_report,
    )

    kube = {
        "changed": True,
        "service_accounts": [
            {"kind": "ServiceAccount", "namespace": "n", "name": "api", "workload": "api", "action": "unchanged"}
        ],
        "controllers": [
            {"kind": "Deployment", "namespace": "n", "name": "api", "workload": "api", "action": "bound"},
            {"kind": "Deployment", "namespace": "n", "name": "old", "workload": "gone", "action": "unbound"},
        ],
    }
    assert rollout_report(_azure("created"), kube, cluster="c")["workloads"][0]["status"] == "created"
    report = rollout_report(_azure("unchanged"), kube, cluster="c")
    assert report["workloads"][0]["status"] == "changed"  # only its Deployment was bound
    assert report["pruned"] == {
        "kubernetes": [{"kind": "Deployment", "namespace": "n", "name": "old", "action": "unbound"}]
    }
    quiet = {**kube, "changed": False, "controllers": [{**kube["controllers"][0], "action": "unchanged"}]}
    assert rollout_report(_azure("unchanged"), quiet, cluster="c")["counts"] == {
        "created": 0,
        "changed": 0,
        "unchanged": 1,
    }
    lines = rollout_lines(report)
    assert "      role  Reader @ rg-data: Microsoft.KeyVault/vaults/kv (unchanged)" in lines
    assert "| api | changed | id-api (`c1`) |" in rollout_markdown(report)
