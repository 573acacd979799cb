"""Module behaviour that needs the sandbox's hands: adoption, replication delay, concurrent writes."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, auth, play

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def tasks(sandbox: Sandbox, *items: dict[str, Any]) -> dict[str, Any]:
    return {"module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"}, "tasks": list(items)}


def test_an_assignment_made_elsewhere_is_adopted(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    scope = sandbox.rg_id(RESOURCE_GROUP)
    principal = (
        sandbox.msi()
        .user_assigned_identities.create_or_update(RESOURCE_GROUP, "id-adopt", {"location": "westeurope"})
        .principal_id
    )
    random_name = str(uuid.uuid4())  # as the portal, az or Terraform would name it
    sandbox.authz().role_assignments.create(
        scope,
        random_name,
        {
            "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": principal,
            "principal_type": "ServicePrincipal",
        },
    )
    sandbox.control.reset_stats()
    done = play(
        sandbox,
        collections,
        tmp_path,
        tasks(
            sandbox,
            {
                "name": "adopt",
                "register": "adopted",
                "workload_identity.aks.role_assignment": {"principal_id": principal, "role": "Reader", "scope": scope},
            },
            {
                "ansible.builtin.assert": {
                    "that": ["adopted is not changed", f"adopted.assignment.name == '{random_name}'"]
                }
            },
        ),
        {"azure_auth": auth(sandbox)},
    )
    assert "failed=0" in done.stdout
    ops = sandbox.control.stats()["operations"]
    assert "roleAssignments.put" not in ops  # no write, hence no 409
    assert ops["roleAssignments.list"]["total"] == 1  # one scoped lookup, not the subscription


def test_principal_not_found_is_waited_out(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    # Long enough that the play reaches its first write inside the window on a loaded machine (4 s was not, once, with
    # two workers busy); the module waits up to 120 s for a principal.
    sandbox.control.configure({"principal_replication_seconds": 15})
    try:
        user = sandbox.control.create_principal(replicated=False, principal_type="User")
        sandbox.control.reset_stats()
        play(
            sandbox,
            collections,
            tmp_path,
            tasks(
                sandbox,
                {
                    "name": "assign to a user created a moment ago",
                    "workload_identity.aks.role_assignment": {
                        "principal_id": user["principal_id"],
                        "principal_type": "User",
                        "role": "Reader",
                        "scope": sandbox.rg_id(RESOURCE_GROUP),
                    },
                },
            ),
            {"azure_auth": auth(sandbox)},
        )
        puts = sandbox.control.stats()["operations"]["roleAssignments.put"]["by_status"]
        assert puts.get("400", 0) >= 1 and puts.get("201") == 1
    finally:
        sandbox.control.configure({"principal_replication_seconds": 10})


def test_concurrent_fic_writes_on_one_identity_are_retried(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    # Wide enough that three ansible-playbook processes started together always collide.
    sandbox.control.configure({"fic_write_seconds": 5.0})
    try:
        sandbox.msi().user_assigned_identities.create_or_update(RESOURCE_GROUP, "id-busy", {"location": "westeurope"})
        sandbox.control.reset_stats()
        barrier = threading.Barrier(3)
        results: list[str] = []

        def run(index: int) -> None:
            folder = tmp_path / f"run{index}"
            folder.mkdir()
            barrier.wait()
            done = play(
                sandbox,
                collections,
                folder,
                tasks(
                    sandbox,
                    {
                        "name": "fic",
                        "workload_identity.aks.federated_credential": {
                            "name": f"writer-{index}",
                            "identity": "id-busy",
                            "resource_group": RESOURCE_GROUP,
                            "issuer": "https://issuer.example/",
                            "subject": f"system:serviceaccount:ns:sa{index}",
                        },
                    },
                ),
                {"azure_auth": auth(sandbox)},
            )
            results.append(done.stdout)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 3 and all("changed=1" in r for r in results)
        puts = sandbox.control.stats()["operations"]["federatedIdentityCredentials.put"]["by_status"]
        assert puts.get("201") == 3
        assert puts.get("409", 0) >= 1  # they did collide, and were retried
    finally:
        sandbox.control.configure({"fic_write_seconds": 0.25})


def test_a_racing_creation_is_resolved_by_reading(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    """Our lookup says 'absent'; before our write, someone else creates the same assignment under another
    name; our write meets 409 RoleAssignmentExists, and the module adopts theirs instead of failing."""
    scope = sandbox.rg_id(RESOURCE_GROUP)
    principal = (
        sandbox.msi()
        .user_assigned_identities.create_or_update(RESOURCE_GROUP, "id-race", {"location": "westeurope"})
        .principal_id
    )
    # The module's lookup is answered as of now, but delivered 3 s later.
    sandbox.control.add_fault(operation="roleAssignments.list", status=None, delay_after=3.0, count=1)
    competitor = str(uuid.uuid4())

    def compete() -> None:
        import time

        # The fault rule is consumed when the module's lookup arrives: from then on, its answer
        # ("no assignment") is in flight for 3 s, and this write lands in that window.
        deadline = time.monotonic() + 60
        while sandbox.control.call("GET", "/_sandbox/faults")["faults"] and time.monotonic() < deadline:
            time.sleep(0.05)
        sandbox.authz().role_assignments.create(
            scope,
            competitor,
            {
                "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
                "principal_id": principal,
                "principal_type": "ServicePrincipal",
            },
        )

    sandbox.control.reset_stats()
    thread = threading.Thread(target=compete)
    thread.start()
    done = play(
        sandbox,
        collections,
        tmp_path,
        tasks(
            sandbox,
            {
                "name": "assign",
                "register": "raced",
                "workload_identity.aks.role_assignment": {"principal_id": principal, "role": "Reader", "scope": scope},
            },
            {
                "ansible.builtin.assert": {
                    "that": [
                        "raced is not changed",
                        f"raced.assignment.name == '{competitor}'",
                        "raced.notes[0] is search('created concurrently')",
                    ]
                }
            },
        ),
        {"azure_auth": auth(sandbox)},
    )
    thread.join()
    assert "failed=0" in done.stdout
    puts = sandbox.control.stats()["operations"]["roleAssignments.put"]["by_status"]
    assert puts.get("409") == 1  # the race really happened


def test_entra_throttling_and_errors_on_sign_in_are_retried(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    """The token endpoint and its metadata throttle and fail like any Azure endpoint: retried, not a sign-in error."""
    sandbox.control.clear_faults()
    sandbox.control.reset_stats()
    for operation, status in (("entra.openid", 429), ("entra.token", 429), ("entra.token", 500)):
        sandbox.control.add_fault(operation=operation, status=status, retry_after=1, count=2)
    try:
        done = play(
            sandbox,
            collections,
            tmp_path,
            tasks(sandbox, {"workload_identity.aks.user_assigned_identity_info": {"resource_group": RESOURCE_GROUP}}),
            {"azure_auth": auth(sandbox)},
            expect_ok=False,
        )
        assert "failed=0" in done.stdout, done.stdout[-3000:]
        ops = sandbox.control.stats()["operations"]
        assert ops["entra.openid"]["by_status"]["429"] == 2
        assert (ops["entra.token"]["by_status"]["429"], ops["entra.token"]["by_status"]["500"]) == (2, 2)
    finally:
        sandbox.control.clear_faults()


def test_a_cluster_busy_with_another_operation_is_waited_for_and_the_update_sent_once(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    """An upgrade (here: another client's update) is running: AKS answers 409 to any new one until it ends."""
    sandbox.control.seed_cluster("rg-busy", "aks-busy", kube=False)
    sandbox.control.configure({"lro_seconds": 4})
    try:
        aks = sandbox.aks()
        cluster = aks.managed_clusters.get("rg-busy", "aks-busy")
        cluster.tags = {"team": "platform"}
        aks.managed_clusters.begin_create_or_update("rg-busy", "aks-busy", cluster)  # not waited for
        sandbox.control.reset_stats()
        play(
            sandbox,
            collections,
            tmp_path,
            tasks(
                sandbox,
                {
                    "workload_identity.aks.cluster_oidc_issuer": {
                        "name": "aks-busy",
                        "resource_group": "rg-busy",
                        "polling_interval": 1,
                    }
                },
            ),
            {"azure_auth": auth(sandbox)},
        )
        puts = sandbox.control.stats()["operations"]["managedClusters.put"]["by_status"]
        assert puts == {"200": 1}  # waited for the other operation: never a 409, sent once
        after = aks.managed_clusters.get("rg-busy", "aks-busy")
        assert after.oidc_issuer_profile.enabled and after.tags == {"team": "platform"}  # its change kept
    finally:
        sandbox.control.configure({"lro_seconds": 0.5})


def test_an_update_that_fails_on_the_server_is_reported_then_reconciled_by_the_next_run(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    """AKS accepts the update, then the operation fails: the run fails naming the cluster's provisioning state; the
    cluster records the issuer as asked for but does not serve it, so the next run sends the update again."""
    sandbox.control.seed_cluster("rg-failing", "aks-failing", kube=False)
    task = tasks(
        sandbox,
        {
            "workload_identity.aks.cluster_oidc_issuer": {
                "name": "aks-failing",
                "resource_group": "rg-failing",
                "polling_interval": 1,
            }
        },
    )
    sandbox.control.add_fault(operation="managedClusters.operation", status=500, count=1)
    (tmp_path / "failed").mkdir()
    failed = play(sandbox, collections, tmp_path / "failed", task, {"azure_auth": auth(sandbox)}, expect_ok=False)
    assert failed.returncode != 0
    assert "the update of cluster aks-failing ended Failed (its provisioningState)" in failed.stdout, failed.stdout
    info = sandbox.control.cluster("rg-failing", "aks-failing")
    recorded = sandbox.aks().managed_clusters.get("rg-failing", "aks-failing")
    assert recorded.provisioning_state == "Failed" and recorded.oidc_issuer_profile.enabled
    assert info["issuer_published"] is False  # asked for, not carried out
    sandbox.control.reset_stats()
    (tmp_path / "reconciled").mkdir()
    reconciled = play(sandbox, collections, tmp_path / "reconciled", task, {"azure_auth": auth(sandbox)})
    assert "aks-failing is Failed (its last operation failed): the update is sent again" in reconciled.stderr
    assert sandbox.control.stats()["operations"]["managedClusters.put"]["by_status"] == {"200": 1}
    assert sandbox.control.cluster("rg-failing", "aks-failing")["issuer_published"] is True
    (tmp_path / "again").mkdir()
    again = play(sandbox, collections, tmp_path / "again", task, {"azure_auth": auth(sandbox)})
    assert "changed=0" in again.stdout
