"""Two clusters claiming one shared identity at the same moment, from two controllers that share no disk (two
execution nodes, as AWX spreads a sliced job): each run in its own ansible-playbook process with its own temp
directory, so the controller-local lock (``_lock.py``) cannot serialise them. ARM replaces an identity's tags whole and
keeps no ETag for them; the sandbox holds each cluster's read of the identity for a few seconds (as a slow network
would) so that both read before either writes.

Claims are written by name through ARM's Tags API (``Merge``), each atomic at ARM: both claims stay. Written as a
whole-tags PUT (before issue 42, and still when the automation may not use the Tags API), one of the two was lost, 5
times out of 5; ``test_without_the_tags_api_a_claim_is_lost_and_the_run_says_so`` keeps that fallback's limit in
view."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, auth, play, play_command
from .test_workload_identities import batch_task

SHARED = {"identity_name": "id-race-shared", "identity_resource_group": RESOURCE_GROUP}


class ClaimLost(Exception):
    """The one failure the xfail stands for: anything else fails the test."""


def workload() -> dict[str, object]:
    return {"name": "orders", "namespace": "orders", "service_account": "api", "roles": [], **SHARED}


def race(
    sandbox: Sandbox, collections: str, tmp_path: Path, nodes: bool, signed_in: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """aks-race-a makes the identity; then aks-race-b and aks-race-c claim it at once, each read held 6 s (``nodes``:
    each in a temp directory of its own, as on two execution nodes; ``signed_in``: the racing runs' principal). The
    claims left on it, and what the racing runs printed."""
    (tmp_path / "a").mkdir()
    first = play(
        sandbox,
        collections,
        tmp_path / "a",
        batch_task(sandbox, "aks-race-a", [workload()]),
        {"azure_auth": auth(sandbox)},
    )
    assert first.returncode == 0
    sandbox.control.reset_stats()
    sandbox.control.add_fault(operation="userAssignedIdentities.get", status=None, delay_after=6, count=2)
    processes = []
    try:
        for cluster in ("aks-race-b", "aks-race-c"):
            folder = tmp_path / cluster
            (folder / "node-tmp").mkdir(parents=True)
            task = batch_task(sandbox, cluster, [workload()])
            racing = auth(sandbox, **(signed_in or {}))
            command, env = play_command(sandbox, collections, folder, task, {"azure_auth": racing})
            if nodes:
                env["TMPDIR"] = str(folder / "node-tmp")  # another node: another disk, another lock file
            processes.append(
                subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            )
        outputs = [p.communicate(timeout=600)[0] for p in processes]
    finally:
        sandbox.control.clear_faults()
    assert all(p.returncode == 0 for p in processes), outputs
    # Both fresh reads of the identity were held: the runs really overlapped.
    assert sandbox.control.stats()["operations"]["userAssignedIdentities.get"]["total"] >= 2
    tags = sandbox.msi().user_assigned_identities.get(RESOURCE_GROUP, "id-race-shared").tags
    found = sorted(k for k in tags if k.startswith("wi-uses:"))
    sandbox.msi().user_assigned_identities.delete(RESOURCE_GROUP, "id-race-shared")  # the next race starts afresh
    return found, outputs


CLAIMS = ["wi-uses:aks-race-a", "wi-uses:aks-race-b", "wi-uses:aks-race-c"]


def test_on_one_controller_the_lock_keeps_both_claims(sandbox: Sandbox, collections: str, tmp_path: Path) -> None:
    assert race(sandbox, collections, tmp_path, nodes=False)[0] == CLAIMS


def test_two_clusters_claiming_one_identity_at_once_from_two_nodes_both_keep_their_claim(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    claims, outputs = race(sandbox, collections, tmp_path, nodes=True)
    if claims != CLAIMS:
        raise ClaimLost(f"claims left on the identity: {claims}")
    assert not any("may not write tags by name" in output for output in outputs)


def test_without_the_tags_api_the_run_writes_tags_whole_and_says_what_to_grant(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    """An automation with Managed Identity Contributor but no Microsoft.Resources/tags/write: the claims are written
    whole (what the README's roles before issue 42 allowed), and each run says the claim may be lost and to grant Tag
    Contributor. (Whether one is lost depends on the race; on the sandbox, holding both reads, it is.)"""
    automation = sandbox.control.create_principal(
        display_name="automation-no-tags",
        roles=[
            {"role": "Reader", "scope": f"/subscriptions/{sandbox.subscription_id}"},
            {"role": "Managed Identity Contributor", "scope": sandbox.rg_id(RESOURCE_GROUP)},
        ],
    )
    signed_in = {"client_id": automation["client_id"], "secret": automation["client_secret"]}
    claims, outputs = race(sandbox, collections, tmp_path, nodes=True, signed_in=signed_in)
    assert "wi-uses:aks-race-a" in claims and 2 <= len(claims) <= 3
    for output in outputs:
        said = " ".join(output.replace("\\n", " ").split())
        assert (
            "the automation principal may not write tags by name (Microsoft.Resources/tags/write) in resource "
            f"group(s) {RESOURCE_GROUP.lower()}: identity tags were written whole"
        ) in said, said[-3000:]
        assert "grant it Tag Contributor there" in said
    # The single-object module says the same, naming the identity: a tag of another writer may be lost.
    name = "id-tags-whole"
    sandbox.msi().user_assigned_identities.create_or_update(RESOURCE_GROUP, name, {"location": "westeurope"})
    task = {
        "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
        "tasks": [
            {
                "name": "tag",
                "workload_identity.aks.user_assigned_identity": {
                    "name": name,
                    "resource_group": RESOURCE_GROUP,
                    "location": "westeurope",
                    "tags": {"team": "payments"},
                },
            }
        ],
    }
    (tmp_path / "module").mkdir()
    tagged = play(sandbox, collections, tmp_path / "module", task, {"azure_auth": auth(sandbox, **signed_in)})
    said = " ".join((tagged.stdout + tagged.stderr).replace("\\n", " ").split())
    assert (
        f"identity {name}: the automation principal may not write tags by name (Microsoft.Resources/tags/write) in "
        f"resource group(s) {RESOURCE_GROUP.lower()}: identity tags were written whole, which can lose a tag another "
        "writer set at the same moment; grant it Tag Contributor there"
    ) in said, said[-3000:]
    assert (sandbox.msi().user_assigned_identities.get(RESOURCE_GROUP, name).tags or {}).get("team") == "payments"
    sandbox.msi().user_assigned_identities.delete(RESOURCE_GROUP, name)
