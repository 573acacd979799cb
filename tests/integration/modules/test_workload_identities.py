"""The batch module's promises that need the sandbox's counters: every problem before any request,
runtime problems before any write, and the request budget (a no-op run costs at most N + 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.integration.sandbox_helpers import PROJECT, Sandbox

from .conftest import RESOURCE_GROUP, auth, play


def batch_task(sandbox: Sandbox, cluster: str, workloads: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
        "tasks": [
            {
                "name": "converge",
                "register": "result",
                "workload_identity.aks.workload_identities": {
                    "cluster_name": cluster,
                    "issuer_url": f"https://issuer.example/{cluster}/",
                    "location": "westeurope",
                    "identity_resource_group": RESOURCE_GROUP,
                    "workloads": workloads,
                    **options,
                },
            },
            {"name": "show", "ansible.builtin.debug": {"msg": "RESULT={{ result | to_json }}"}},
        ],
    }


def result_of(stdout: str) -> dict[str, Any]:
    match = re.search(r'"msg": "RESULT=(.*)"\n', stdout)
    assert match, stdout[-3000:]
    return dict(json.loads(json.loads(f'"{match.group(1)}"')))


def test_a_dozen_mistakes_reported_at_once_before_any_request(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    rg = sandbox.rg_id(RESOURCE_GROUP)
    workloads = [
        {"name": "Orders", "namespace": "orders", "service_account": "api", "roles": []},  # 1 name case
        {"name": "ok-one", "namespace": "Bad_NS", "service_account": "api", "roles": []},  # 2 namespace
        {"name": "ok-two", "namespace": "ns", "service_account": "bad/sa", "roles": []},  # 3 service account
        {"name": "ok-one", "namespace": "ns", "service_account": "x", "roles": []},  # 4 duplicate name
        {"name": "dup-sa", "namespace": "ns", "service_account": "x", "roles": []},  # 5 same SA as #4
        {
            "name": "bad-scope",
            "namespace": "ns",
            "service_account": "y",
            "roles": [{"role": "Reader", "scope": "/resourceGroups/x"}],
        },
        {"name": "no-role", "namespace": "ns", "service_account": "z", "roles": [{"scope": rg}]},  # 7
        {"name": "typo", "namespace": "ns", "service_account": "t", "role": [{"role": "Reader", "scope": rg}]},  # 8
        {
            "name": "owner-sub",
            "namespace": "ns",
            "service_account": "o",
            "roles": [{"role": "Owner", "scope": f"/subscriptions/{sandbox.subscription_id}"}],
        },  # 9
        {
            "name": "twice",
            "namespace": "ns",
            "service_account": "w",
            "roles": [{"role": "Reader", "scope": rg}, {"role": "Reader", "scope": rg + "/"}],
        },  # 10
        {
            "name": "cond",
            "namespace": "ns",
            "service_account": "c",
            "roles": [{"role": "Reader", "scope": rg, "condition_version": "2.0"}],
        },  # 11
        {
            "name": "too-many",
            "namespace": "ns",
            "service_account": "m",
            "roles": [],
            "extra_subjects": [f"system:serviceaccount:ns:s{i}" for i in range(20)],
        },  # 12
        {
            "name": "long-identity",
            "namespace": "ns",
            "service_account": "l",
            "roles": [],
            "identity_name": "x" * 200,
        },  # 13
    ]
    sandbox.control.reset_stats()
    done = play(
        sandbox,
        collections,
        tmp_path,
        batch_task(sandbox, "aks-mistakes", workloads),
        {"azure_auth": auth(sandbox)},
        expect_ok=False,
    )
    assert done.returncode != 0
    message = done.stdout
    for fragment in [
        "workload 'Orders'",
        "workload 'ok-one': namespace",
        "workload 'ok-two': service_account",
        "name: declared twice",
        "workload 'dup-sa': service_account: ns/x is already bound",
        "workload 'bad-scope': roles[0]: scope",
        "workload 'no-role': roles[0]: role: required",
        "workload 'typo': role: unknown field",
        "workload 'owner-sub': roles[0]: role: Owner",
        "workload 'twice': roles[1]: role: Reader at",
        "workload 'cond': roles[0]: condition_version",
        "workload 'too-many': extra_subjects: 21 federated credentials",
        "workload 'long-identity': identity_name",
    ]:
        assert fragment in message, fragment
    assert "13 problem(s) in the workloads of aks-mistakes" in message
    assert message.count("cluster aks-mistakes: workload") >= 13
    assert sandbox.control.stats()["totals"].get("arm", 0) == 0


def test_runtime_problems_surface_before_any_write(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    rg = sandbox.rg_id(RESOURCE_GROUP)
    sandbox.msi().user_assigned_identities.create_or_update(
        RESOURCE_GROUP,
        "id-other-cluster",
        {"location": "westeurope", "tags": {"managed-by": "workload_identity.aks", "wi-cluster": "aks-elsewhere"}},
    )
    workloads = [
        {"name": "fine", "namespace": "ns", "service_account": "fine", "roles": [{"role": "Reader", "scope": rg}]},
        {
            "name": "unknown-role",
            "namespace": "ns",
            "service_account": "u",
            "roles": [{"role": "Storage Blob Data Reeder", "scope": rg}],
        },
        {
            "name": "taken",
            "namespace": "ns",
            "service_account": "t",
            "identity_name": "id-other-cluster",
            "roles": [{"role": "Reader", "scope": rg}],
        },
        {
            "name": "nowhere",
            "namespace": "ns",
            "service_account": "n",
            "roles": [{"role": "Reader", "scope": f"{rg}/providers/Microsoft.Storage/storageAccounts/stnothere"}],
        },
        {"name": "homeless", "namespace": "ns", "service_account": "h", "identity_resource_group": "rg-not-there"},
        {
            "name": "granter",
            "namespace": "ns",
            "service_account": "g",
            "roles": [{"role": "Deployment Operator (grants roles)", "scope": rg}],
        },
    ]
    # A custom role that can write role assignments: as privileged as Owner, whatever its name.
    sandbox.authz().role_definitions.create_or_update(
        f"/subscriptions/{sandbox.subscription_id}",
        "5d3c1b2a-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
        {
            "role_name": "Deployment Operator (grants roles)",
            "role_type": "CustomRole",
            "assignable_scopes": [f"/subscriptions/{sandbox.subscription_id}"],
            "permissions": [{"actions": ["Microsoft.Resources/deployments/*", "Microsoft.Authorization/*/write"]}],
        },
    )
    sandbox.control.reset_stats()
    done = play(
        sandbox,
        collections,
        tmp_path,
        batch_task(sandbox, "aks-runtime", workloads),
        {"azure_auth": auth(sandbox)},
        expect_ok=False,
    )
    assert "workload 'unknown-role': roles[0]: role: 'Storage Blob Data Reeder' must name exactly one" in done.stdout
    # Used by a cluster this inventory does not declare: its role assignments are not this run's to change.
    assert (
        "workload 'taken': roles: identity id-other-cluster is also used by cluster aks-elsewhere, which this "
        "inventory does not declare"
    ) in " ".join(done.stdout.split())
    assert "workload 'nowhere': roles[0]: scope: " in done.stdout and "stnothere does not exist" in done.stdout
    assert "workload 'homeless': identity_resource_group: resource group rg-not-there does not exist" in done.stdout
    assert (
        "workload 'granter': roles[0]: role: Deployment Operator (grants roles) allows "
        "Microsoft.Authorization/roleAssignments/write"
    ) in done.stdout
    operations = sandbox.control.stats()["operations"]
    assert not [op for op in operations if op.endswith((".put", ".delete", ".patch"))]


def test_request_budget_cold_and_no_op(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    n = 12
    rg = sandbox.rg_id(RESOURCE_GROUP)
    workloads = [
        {
            "name": f"svc-{i:02d}",
            "namespace": f"team-{i % 3}",
            "service_account": f"svc-{i:02d}",
            "roles": [{"role": "Reader", "scope": rg}],
        }
        for i in range(n)
    ]
    task = batch_task(sandbox, "aks-budget", workloads, prune=True)
    counts = {}
    for run in ("cold", "no-op"):
        sandbox.control.reset_stats()
        folder = tmp_path / run
        folder.mkdir()
        done = play(sandbox, collections, folder, task, {"azure_auth": auth(sandbox)})
        counts[run] = sandbox.control.stats()["totals"].get("arm", 0)
        assert result_of(done.stdout)["changed"] is (run == "cold")
    report = {
        "workloads": n,
        "arm_requests_cold": counts["cold"],
        "arm_requests_no_op": counts["no-op"],
        "no_op_budget": n + 5,
        "cold_per_workload": round(counts["cold"] / n, 2),
    }
    print("\nrequest budget:", json.dumps(report))
    output = PROJECT / "tests" / "output"
    output.mkdir(exist_ok=True)
    (output / "workload-identities-requests.json").write_text(json.dumps(report, indent=2))
    assert counts["no-op"] <= n + 5, report
    cleanup = batch_task(sandbox, "aks-budget", [], prune=True, prune_confirm="aks-budget")
    play(sandbox, collections, tmp_path, cleanup, {"azure_auth": auth(sandbox)})


def test_a_custom_role_below_the_subscription_is_looked_up_once(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    rg = sandbox.rg_id(RESOURCE_GROUP)
    sandbox.authz().role_definitions.create_or_update(
        rg,
        "3f1d2c4b-5a6e-4f70-8192-a3b4c5d6e7f8",
        {
            "role_name": "Orders Reader (rg only)",
            "role_type": "CustomRole",
            "assignable_scopes": [rg],
            "permissions": [{"actions": ["Microsoft.Storage/storageAccounts/read"]}],
        },
    )
    workloads = [
        {
            "name": f"custom-{i}",
            "namespace": "ns",
            "service_account": f"custom-{i}",
            "roles": [{"role": "Orders Reader (rg only)", "scope": rg}],
        }
        for i in range(3)
    ]
    sandbox.control.reset_stats()
    done = play(
        sandbox,
        collections,
        tmp_path,
        batch_task(sandbox, "aks-custom", workloads, prune=True),
        {"azure_auth": auth(sandbox)},
    )
    assert [r["role_assignments"][0]["action"] for r in result_of(done.stdout)["workloads"]] == ["created"] * 3
    # Not visible at the subscription, so resolved at the scope: once, not once per workload.
    assert sandbox.control.stats()["operations"]["roleDefinitions.list"]["total"] == 2  # subscription + scope
    cleanup = batch_task(sandbox, "aks-custom", [], prune=True, prune_confirm="aks-custom")
    play(sandbox, collections, tmp_path, cleanup, {"azure_auth": auth(sandbox)})


def test_read_issuer_plans_with_the_cluster_issuer_read_once(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    """read_issuer: the batch module reads the cluster's issuer itself (one GET, as cluster_oidc_issuer's check mode
    would), plans with its URL (a placeholder before AKS assigns one, which only check mode may use), shows the
    cluster's change in its diff, and never changes the cluster."""
    sandbox.control.seed_cluster("rg-read-issuer", "aks-read-issuer", kube=False)
    workloads = [{"name": "api", "namespace": "shop", "service_account": "api"}]
    options = {"cluster_resource_group": "rg-read-issuer", "read_issuer": {"workload_identity": True}}

    def run(folder: str, flags: tuple[str, ...] = (), expect_ok: bool = True, **more: Any) -> Any:
        task = batch_task(sandbox, "aks-read-issuer", workloads, **{**options, **more})
        if "issuer_url" not in more:
            del task["tasks"][0]["workload_identity.aks.workload_identities"]["issuer_url"]
        (tmp_path / folder).mkdir()
        sandbox.control.reset_stats()
        return play(sandbox, collections, tmp_path / folder, task, {"azure_auth": auth(sandbox)}, expect_ok, flags)

    def operations() -> dict[str, Any]:
        return dict(sandbox.control.stats()["operations"])

    # Not enabled yet: check mode plans with the placeholder; the cluster's change is in the diff.
    plan = result_of(run("plan", ("--check", "--diff")).stdout)
    issuer = plan["cluster_issuer"]
    assert issuer["action"] == "updated" and issuer["issuer_url"] is None, issuer
    assert issuer["cluster"]["oidc_issuer_enabled"] and issuer["cluster"]["workload_identity_enabled"]
    assert "AKS assigns the issuer URL when the issuer is enabled" in issuer["notes"]
    before, after = plan["diff"]["before"]["(cluster OIDC issuer)"], plan["diff"]["after"]["(cluster OIDC issuer)"]
    assert not before["oidc_issuer_enabled"] and after["oidc_issuer_enabled"]
    assert plan["workloads"][0]["federated_credentials"][0]["action"] == "created"
    assert operations()["managedClusters.get"]["total"] == 1
    assert not [op for op in operations() if op.endswith((".put", ".patch", ".delete"))]

    # A real run cannot trust an issuer that does not exist: it fails naming the cluster, before any write.
    refused = run("refused", expect_ok=False)
    assert "cluster aks-read-issuer: its OIDC issuer is not enabled yet" in refused.stdout, refused.stdout[-3000:]
    assert not [op for op in operations() if op.endswith((".put", ".patch", ".delete"))]

    # Enabled (as the oidc_issuer role does): the credential trusts the URL read, the add-on left as asked.
    enabled = sandbox.control.seed_cluster("rg-read-issuer", "aks-read-issuer", oidc_issuer_enabled=True, kube=False)
    done = result_of(run("real", read_issuer={"workload_identity": None}).stdout)
    assert done["cluster_issuer"]["action"] == "unchanged" and done["cluster_issuer"]["issuer_url"]
    assert done["cluster_issuer"]["issuer_url"] == enabled["issuer_url"]
    identity = done["workloads"][0]["identity"]["name"]
    credentials = sandbox.msi().federated_identity_credentials.list(RESOURCE_GROUP, identity)
    assert [c.issuer for c in credentials] == [enabled["issuer_url"]]
    assert operations()["managedClusters.get"]["total"] == 1
    assert "managedClusters.put" not in operations()

    # Both ways of naming the issuer at once: refused before any request.
    both = run("both", expect_ok=False, issuer_url="https://issuer.example/x/")
    assert "read_issuer and issuer_url: give one" in both.stdout, both.stdout[-3000:]
    assert sandbox.control.stats()["totals"].get("arm", 0) == 0
    cleanup = batch_task(sandbox, "aks-read-issuer", [], prune=True, prune_confirm="aks-read-issuer")
    play(sandbox, collections, tmp_path, cleanup, {"azure_auth": auth(sandbox)})
