"""_inventory: the workload schema, validated whole before any request; each problem names cluster, workload, field."""

from __future__ import annotations

from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import ControllerRef, validate_workloads

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-App"
SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults/kv"


def test_batch_validation_reports_every_problem_with_workload_and_field() -> None:
    validated = validate_workloads(
        "aks-dev",
        [
            {"name": "ok", "namespace": "orders", "service_account": "api", "roles": [{"role": "Reader", "scope": RG}]},
            {"name": "bad", "namespace": "Orders", "service_account": "api", "roles": "Reader"},
            "not a mapping",
        ],
        identity_resource_group="rg-ids",
        allow_privileged_roles=False,
    )
    specs, problems = validated.specs, validated.problems
    assert [s.name for s in specs] == ["ok"]
    assert specs[0].identity_name == "id-aks-dev-orders-ok" and specs[0].identity_resource_group == "rg-ids"
    assert specs[0].subjects == ["system:serviceaccount:orders:api"]
    assert problems == [
        "cluster aks-dev: workload 'bad': namespace: must be a Kubernetes namespace name (DNS label), got 'Orders'",
        "cluster aks-dev: workload 'bad': roles: must be a list of {role, scope}",
        "cluster aks-dev: workload #3: must be a mapping with name, namespace, service_account and roles",
    ]
    privileged = validate_workloads(
        "aks-dev",
        [
            {
                "name": "x",
                "namespace": "n",
                "service_account": "s",
                "roles": [
                    {"role": "Owner", "scope": f"/subscriptions/{SUB}"},
                    {"role": "User Access Administrator", "scope": RG},
                    {"role": "Contributor", "scope": f"/subscriptions/{SUB}"},
                    {"role": "Contributor", "scope": RG},
                ],
            }
        ],
        identity_resource_group="rg",
        allow_privileged_roles=False,
    ).problems
    # Those that can grant roles at any scope; Contributor only at a broad one.
    assert [p.split(": role: ")[1].split(" ")[0:2] for p in privileged] == [
        ["Owner", "lets"],
        ["User", "Access"],
        ["Contributor", "at"],
    ]


def test_controllers_and_token_expiration_are_validated_with_the_rest() -> None:
    roles = [{"role": "Reader", "scope": SCOPE}]
    validated = validate_workloads(
        "aks-dev",
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
        identity_resource_group="rg",
        allow_privileged_roles=False,
    )
    specs, problems = validated.specs, validated.problems
    assert [(s.name, s.controllers, s.token_expiration) for s in specs] == [
        ("a", [ControllerRef("Deployment", "api"), ControllerRef("CronJob", "nightly")], 7200)
    ]
    # Written under the field's old name: read, and announced as deprecated once per workload.
    assert len(validated.deprecations) == 2 and "now called controllers" in validated.deprecations[0]
    assert problems == [
        "cluster aks-dev: workload 'b': workloads[0]: name: Deployment n/api is already bound to workload 'a' "
        "(a pod has one service account)",
        "cluster aks-dev: workload 'b': workloads[1]: replicas: unknown field (expected kind and name)",
        "cluster aks-dev: workload 'b': workloads[1]: kind: must be one of Deployment, StatefulSet, DaemonSet, Job, "
        "CronJob (got 'Pod')",
        "cluster aks-dev: workload 'b': token_expiration: must be seconds between 3600 and 86400 (got 60)",
    ]


def test_the_list_as_the_inventory_holds_it_is_classified_naming_the_field() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import workload_entries

    field = "workload_identity_workloads"
    assert workload_entries("aks-dev", None, field)[1][0].startswith(f"cluster aks-dev: {field}: not defined, or null")
    assert workload_entries("aks-dev", {"name": "a"}, field)[1] == [
        f"cluster aks-dev: {field}: must be a list of workloads (got a mapping)"
    ]
    assert workload_entries("aks-dev", "a,b")[1] == [
        "cluster aks-dev: workloads: must be a list of workloads (got a string)"
    ]
    entries, problems = workload_entries("aks-dev", [{"name": "a", "tags": None}, 3, "b"], field)
    # The mappings are still checked (every problem at once), their null fields read as unset.
    assert entries == [{"name": "a"}]
    assert problems == [
        f"cluster aks-dev: {field}: entries #2, #3 are not workloads (each is a mapping with name, namespace, "
        "service_account and roles)"
    ]
    assert workload_entries("aks-dev", [{"name": "a"}]) == ([{"name": "a"}], [])


def one(workload: dict[str, object]) -> list[str]:
    base = {"name": "api", "namespace": "orders", "service_account": "api", "roles": [{"role": "Reader", "scope": RG}]}
    return validate_workloads(
        "aks-dev", [{**base, **workload}], identity_resource_group="rg-ids", allow_privileged_roles=False
    ).problems


def test_a_trailing_newline_is_no_part_of_a_valid_name() -> None:
    # `$` matches before a final newline: every name is checked whole, before Azure is written.
    assert one({"name": "api\n"})[0].startswith("cluster aks-dev: workload 'api\\n': name: must be 1-63")
    assert one({"service_account": "api\n"})[0].endswith("(DNS subdomain), got 'api\\n'")
    assert one({"identity_name": "id-api\n"}) == [
        "cluster aks-dev: workload 'api': identity_name: 'id-api\\n' is not a valid identity name"
    ]
    # A bad namespace is said once, as the namespace (not again as the default identity name made from it).
    assert one({"namespace": "bad\n"}) == [
        "cluster aks-dev: workload 'api': namespace: must be a Kubernetes namespace name (DNS label), got 'bad\\n'"
    ]


def test_values_that_crashed_are_problems_naming_the_field() -> None:
    assert one({"token_expiration": "³⁶⁰⁰"}) == [
        "cluster aks-dev: workload 'api': token_expiration: must be seconds between 3600 and 86400 (got '³⁶⁰⁰')"
    ]
    assert one({"roles": [{"role": "Reader", "scope": RG, "condition": {"a": 1}}]}) == [
        "cluster aks-dev: workload 'api': roles[0]: condition: must be a string, got {'a': 1}"
    ]
    [problem] = one({"namespace": True})
    assert "got True (YAML reads yes/no/on/off/true/false unquoted as booleans: quote it)" in problem


def test_tags_follow_arms_rules_and_never_forge_the_collections_marks() -> None:
    problems = one(
        {
            "tags": {
                "wi-uses:aks-prod": "x",
                "Managed-By": "me",
                "team": None,
                "owner": {"a": 1},
                "cost/center": "42",
                "Env": "dev",
                "env": "prod",
                "note": "x" * 257,
            }
        }
    )
    at = "cluster aks-dev: workload 'api': tags:"
    assert (
        f"{at} 'wi-uses:aks-prod': reserved for the collection's own marks (managed-by and wi-*): choose another name"
        in problems
    )
    assert any(p.startswith(f"{at} 'Managed-By': reserved") for p in problems)
    assert f"{at} 'team': the value must be a string or a number, got None; use \"\" for none" in problems
    assert any(p.startswith(f"{at} 'owner': the value must be a string or a number") for p in problems)
    assert f"{at} 'cost/center': Azure refuses / in a tag's name" in problems
    assert f"{at} 'env': the same name as 'Env' (Azure's tag names ignore case)" in problems
    assert f"{at} 'note': the value is 257 characters; Azure keeps at most 256" in problems
    assert len(problems) == 7
    assert one({"tags": {"team": "orders", "cost-center": 42}}) == []


def test_every_mark_the_collection_writes_is_a_reserved_tag_name() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils import _limits, _ownership

    marks = [v for k, v in vars(_ownership).items() if k.endswith(("_TAG", "_TAG_PREFIX")) and isinstance(v, str)]
    assert len(marks) >= 10
    for mark in marks:
        assert mark.lower() in _limits.RESERVED_TAGS or mark.lower().startswith(_limits.RESERVED_TAG_PREFIX), mark
