"""_kube_patch: JSON merge patch arithmetic, as the API server applies it (check mode's prediction)."""

from __future__ import annotations


def test_merge_patch_follows_rfc_7386() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._kube_patch import merge_patch

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
    from ansible_collections.workload_identity.aks.plugins.module_utils._kube_patch import combine, merge_patch, nest

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
