"""One identity for a workload on several clusters (multi-region, blue-green), with the playbooks, on two (then three)
kube-backed sandbox clusters at once: one inventory, one host per cluster, the hosts run in parallel (forks).

Each cluster's ServiceAccount token, issued by its own API server, is exchanged at Entra for the shared identity's
client id, and that token used on ARM: a sign-in check after every step. Azure is read with the SDKs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.kube.rollout_runs import cluster_host
from tests.integration.sandbox_helpers import PROJECT, Sandbox
from tests.sandbox.demo import ansible_env, deploy_apps, ensure_resource_chain, service_account_token, sign_in

CLUSTERS = {"aks-blue": "rg-aks-blue", "aks-green": "rg-aks-green", "aks-teal": "rg-aks-teal"}
IDENTITY_RG, DATA_RG = "rg-identities-shared", "rg-data-shared"
APPS = [("Deployment", "orders", "orders-api", "ghcr.io/contoso/orders-api:2.4.1")]
SUBJECT = "system:serviceaccount:orders:orders-api"


@dataclass
class Estate:
    box: Sandbox
    scope: str
    env: dict[str, str]
    root: Path
    runs: int = 0

    def workloads(self, identity_name: str, *more_roles: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "name": "orders-api",
                "namespace": "orders",
                "service_account": "orders-api",
                "identity_name": identity_name,
                "roles": [{"role": "Storage Blob Data Reader", "scope": self.scope}, *more_roles],
                "controllers": [{"kind": "Deployment", "name": "orders-api"}],
            }
        ]

    def run(
        self,
        inventory: dict[str, list[dict[str, Any]]],
        playbook: str = "site.yml",
        *options: str,
        expect_ok: bool = True,
    ) -> tuple[dict[str, int], str]:
        """The playbook on an inventory of these clusters (each with its workloads), hosts in parallel: the changed
        count per host, and the output."""
        self.runs += 1
        folder = self.root / f"run-{self.runs}"
        folder.mkdir()
        hosts = {
            cluster: {
                "ansible_connection": "local",
                "workload_identity_report_dir": str(folder / "reports"),
                "workload_identity_prune": True,
                **cluster_host(cluster, CLUSTERS[cluster], IDENTITY_RG, workloads),
            }
            for cluster, workloads in inventory.items()
        }
        (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        command = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(folder / "hosts.yml"),
            str(PROJECT / "playbooks" / playbook),
            "--forks",
            "3",
            *options,
        ]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=900, check=False)
        output = done.stdout + done.stderr
        (folder / "output.txt").write_text(output)
        assert (done.returncode == 0) is expect_ok, output[-8000:]
        changed = {h: int(c) for h, c in re.findall(r"^(aks-\w+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}
        return changed, output

    # -- what is there -----------------------------------------------------------------------------
    def identities(self) -> dict[str, Any]:
        return {i.name: i for i in self.box.msi().user_assigned_identities.list_by_resource_group(IDENTITY_RG)}

    def credentials(self, name: str) -> dict[str, str]:
        """Name -> issuer."""
        fics = self.box.msi().federated_identity_credentials.list(IDENTITY_RG, name)
        return {f.name: f.issuer for f in fics}

    def assignments(self, principal_id: str) -> list[tuple[str, str]]:
        authz = self.box.authz()
        found = authz.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'")
        return sorted((a.role_definition_id.rsplit("/", 1)[1], a.scope.lower()) for a in found)

    def issuer(self, cluster: str) -> str:
        managed = self.box.aks().managed_clusters.get(CLUSTERS[cluster], cluster)
        return str(managed.oidc_issuer_profile.issuer_url)

    def core(self, cluster: str) -> Any:
        return k8s.CoreV1Api(k8s_config.new_client_from_config(str(self.box.state_dir / "kubeconfig"), context=cluster))

    def client_id(self, cluster: str) -> str | None:
        """The client id the cluster's ServiceAccount names (None: no such account)."""
        try:
            account = self.core(cluster).read_namespaced_service_account("orders-api", "orders")
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return (account.metadata.annotations or {}).get("azure.workload.identity/client-id")

    def signs_in(self, cluster: str, client_id: str) -> str:
        """The cluster's ServiceAccount token exchanged at Entra for this client id, then used on ARM: what it may
        do at the data scope, or what Entra said."""
        token = service_account_token(self.box.state_dir, cluster, "orders", "orders-api")
        env = json.loads((self.box.state_dir / "sandbox.json").read_text())
        granted, _elsewhere = sign_in(env, token, client_id, self.scope, self.box.subscription_id)
        return granted


@pytest.fixture(scope="module")
def estate(kube_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    box = kube_sandbox
    for cluster, group in CLUSTERS.items():
        box.control.seed_cluster(group, cluster, kube=True)
        deploy_apps(box.state_dir, cluster, APPS)
    box.resource_group(IDENTITY_RG)
    box.resource_group(DATA_RG)
    scope = f"{box.rg_id(DATA_RG)}/providers/Microsoft.Storage/storageAccounts/stshared"
    ensure_resource_chain(box.url, box.ca, box.token(), scope)
    root = tmp_path_factory.mktemp("multi-cluster")
    sandbox_env = json.loads((box.state_dir / "sandbox.json").read_text())
    env = {**ansible_env(sandbox_env, box.state_dir), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(root)}
    yield Estate(box, scope, env, root)


def signed_in(granted: str) -> bool:
    return not granted.startswith("refused")


def test_one_identity_on_two_clusters_in_parallel_then_teardown_one_at_a_time(estate: Estate) -> None:
    both = {c: estate.workloads("id-orders-shared") for c in ("aks-blue", "aks-green")}
    plan, output = estate.run(both, "site.yml", "--check")
    assert all(plan[c] > 0 for c in both), output[-4000:]
    assert "id-orders-shared" not in estate.identities()
    changed, output = estate.run(both)
    assert all(changed[c] > 0 for c in both)
    identity = estate.identities()["id-orders-shared"]
    # One identity, one credential per issuer, one set of assignments; both claims on it.
    assert estate.credentials(identity.name) == {
        "aks-blue-orders-orders-api": estate.issuer("aks-blue"),
        "aks-green-orders-orders-api": estate.issuer("aks-green"),
    }
    assert len(estate.assignments(identity.principal_id)) == 1
    assert {k: v for k, v in identity.tags.items() if k.startswith("wi-uses:")} == {
        f"wi-uses:{c}": f"{estate.box.subscription_id}/{CLUSTERS[c]}".lower() for c in both
    }
    assert estate.client_id("aks-blue") == estate.client_id("aks-green") == identity.client_id
    for cluster in both:
        assert signed_in(estate.signs_in(cluster, identity.client_id)), cluster
    # The one assignment was made by one of the two hosts; the other's report says it found it, and whose it is.
    reports = {c: json.loads((estate.root / f"run-{estate.runs}" / "reports" / f"{c}.json").read_text()) for c in both}
    roles = {c: r["workloads"][0]["roles"][0]["action"] for c, r in reports.items()}
    assert sorted(roles.values()) == ["created", "unchanged"], roles
    (maker,) = [c for c, action in roles.items() if action == "created"]
    (finder,) = set(both) - {maker}
    assert any(
        f"made by cluster {maker} (its workload orders/orders-api), which shares the identity; found here" in note
        for note in reports[finder]["workloads"][0]["notes"]
    ), reports[finder]["workloads"][0]["notes"]
    changed, output = estate.run(both)
    assert changed == {"aks-blue": 0, "aks-green": 0}, output[-6000:]

    # Declared otherwise on one cluster: both plans stop before any change, naming both clusters.
    other = {**both, "aks-green": estate.workloads("id-orders-shared", {"role": "Reader", "scope": estate.scope})}
    _changed, output = estate.run(other, expect_ok=False)
    flat = " ".join(output.split())
    assert "identity id-orders-shared is shared with cluster aks-green (workload 'orders-api'), which declares" in flat
    assert "identity id-orders-shared is shared with cluster aks-blue (workload 'orders-api'), which declares" in flat
    assert len(estate.assignments(identity.principal_id)) == 1

    # Tearing down one cluster (a run limited to it) keeps the identity and the other's sign-in.
    changed, output = estate.run(both, "teardown.yml", "--limit", "aks-blue")
    assert changed["aks-blue"] > 0 and "aks-green" not in changed
    assert estate.identities()["id-orders-shared"].client_id == identity.client_id
    assert estate.credentials(identity.name) == {"aks-green-orders-orders-api": estate.issuer("aks-green")}
    assert len(estate.assignments(identity.principal_id)) == 1
    assert estate.client_id("aks-blue") is None
    assert signed_in(estate.signs_in("aks-green", identity.client_id))
    # Its credential gone, a token of aks-blue for the same account (made again by hand) is refused.
    estate.core("aks-blue").create_namespaced_service_account(
        "orders", k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="orders-api"))
    )
    assert estate.signs_in("aks-blue", identity.client_id).startswith("refused by Entra ID (AADSTS")
    estate.core("aks-blue").delete_namespaced_service_account("orders-api", "orders")
    changed, output = estate.run(both, "teardown.yml", "--limit", "aks-blue")
    assert changed == {"aks-blue": 0}, output[-6000:]

    # The last one lets go: everything goes.
    estate.run({"aks-green": both["aks-green"]}, "teardown.yml")
    assert "id-orders-shared" not in estate.identities()
    assert estate.assignments(identity.principal_id) == []


def test_blue_green_upgrade_recipe_keeps_the_client_id_and_the_sign_in_at_every_step(estate: Estate) -> None:
    workloads = estate.workloads("id-orders-bluegreen")
    # 1. The old cluster, as it runs today.
    estate.run({"aks-blue": workloads})
    client_id = estate.client_id("aks-blue")
    assert client_id and signed_in(estate.signs_in("aks-blue", client_id))
    # 2. The new cluster added to the inventory, the same workloads: a credential for its issuer, the same client id;
    #    its pods sign in at once, the old cluster's too.
    changed, output = estate.run({"aks-blue": workloads, "aks-green": workloads})
    assert changed["aks-green"] > 0
    assert estate.client_id("aks-green") == client_id
    for cluster in ("aks-blue", "aks-green"):
        assert signed_in(estate.signs_in(cluster, client_id)), cluster
    changed, output = estate.run({"aks-blue": workloads, "aks-green": workloads})
    assert changed == {"aks-blue": 0, "aks-green": 0}, output[-6000:]
    # 3. Traffic moves to aks-green (outside this collection). 4. The old cluster retired: its host torn down.
    estate.run({"aks-blue": workloads, "aks-green": workloads}, "teardown.yml", "--limit", "aks-blue")
    identity = estate.identities()["id-orders-bluegreen"]
    assert identity.client_id == client_id
    assert set(estate.credentials(identity.name)) == {"aks-green-orders-orders-api"}
    assert signed_in(estate.signs_in("aks-green", client_id))
    # 5. Removed from the inventory: the new cluster alone changes nothing, and its prune takes nothing.
    changed, output = estate.run({"aks-green": workloads})
    assert changed == {"aks-green": 0}, output[-6000:]
    assert signed_in(estate.signs_in("aks-green", client_id))
    assert [k for k in estate.identities()["id-orders-bluegreen"].tags if k.startswith("wi-uses:")] == [
        "wi-uses:aks-green"
    ]
    estate.run({"aks-green": workloads}, "teardown.yml")
    assert "id-orders-bluegreen" not in estate.identities()


def test_three_clusters_at_once_and_a_run_limited_to_one_touches_no_other_credential(estate: Estate) -> None:
    three = {c: estate.workloads("id-orders-three") for c in CLUSTERS}
    estate.run(three)
    identity = estate.identities()["id-orders-three"]
    assert len(estate.credentials(identity.name)) == 3 and len(estate.assignments(identity.principal_id)) == 1
    # A role added on every cluster, run for one: the shared identity gets it (all declare it), no other credential
    # is touched, and the other clusters' next runs change nothing on Azure.
    more = {c: estate.workloads("id-orders-three", {"role": "Reader", "scope": estate.scope}) for c in CLUSTERS}
    before = estate.credentials(identity.name)
    changed, output = estate.run(more, "site.yml", "--limit", "aks-teal")
    assert changed["aks-teal"] > 0 and set(changed) == {"aks-teal"}
    assert estate.credentials(identity.name) == before
    assert len(estate.assignments(identity.principal_id)) == 2
    changed, output = estate.run(more)
    assert changed == {c: 0 for c in CLUSTERS}, output[-6000:]
    for cluster in CLUSTERS:
        assert signed_in(estate.signs_in(cluster, identity.client_id)), cluster
    estate.run(more, "teardown.yml")
    assert "id-orders-three" not in estate.identities()


def test_an_app_registration_shared_by_two_clusters(estate: Estate) -> None:
    app = [
        {
            **estate.workloads("unused")[0],
            "identity_type": "application",
            "application_unique_name": "wi-orders-shared-app",
        }
    ]
    del app[0]["identity_name"]
    both = {"aks-blue": app, "aks-green": app}
    estate.run(both)
    client_id = estate.client_id("aks-blue")
    assert client_id and estate.client_id("aks-green") == client_id
    for cluster in both:
        assert signed_in(estate.signs_in(cluster, client_id)), cluster
    changed, output = estate.run(both)
    assert changed == {"aks-blue": 0, "aks-green": 0}, output[-6000:]
    estate.run(both, "teardown.yml", "--limit", "aks-blue")
    assert signed_in(estate.signs_in("aks-green", client_id))
    found = estate.box.graph("GET", "/applications(uniqueName='wi-orders-shared-app')").json()
    assert [t for t in found["tags"] if t.startswith("wi-uses:")] == [
        f"wi-uses:aks-green={estate.box.subscription_id}/{CLUSTERS['aks-green']}".lower()
    ]
    estate.run({"aks-green": app}, "teardown.yml")
    assert estate.box.graph("GET", "/applications(uniqueName='wi-orders-shared-app')").status_code == 404


def test_a_cluster_deleted_without_teardown_is_noticed_released_and_torn_down_by_its_marks(estate: Estate) -> None:
    """aks-teal shares an identity with aks-blue and has one of its own; it is deleted in Azure, never torn down.
    aks-blue's plan notices its claim and says so; with workload_identity_release_gone_clusters it releases the claim
    and aks-teal's credential; aks-teal's own teardown skips Kubernetes and removes its identity and assignment. Nothing
    of aks-blue's is touched, and it signs in throughout."""
    shared = estate.workloads("id-orders-gone")
    solo = {
        "name": "solo",
        "namespace": "orders",
        "service_account": "solo",
        "roles": [{"role": "Reader", "scope": estate.scope}],
    }
    inventory = {"aks-blue": shared, "aks-teal": [*shared, solo]}
    estate.run(inventory)
    identity = estate.identities()["id-orders-gone"]
    own = estate.identities()["id-aks-teal-orders-solo"]
    assert set(estate.credentials(identity.name)) == {"aks-blue-orders-orders-api", "aks-teal-orders-orders-api"}
    estate.box.aks().managed_clusters.begin_delete(CLUSTERS["aks-teal"], "aks-teal", polling_interval=0.2).result()

    # Still in the inventory, limited out: aks-blue's plan names the claim of a cluster that is gone, changes nothing.
    changed, output = estate.run(inventory, "site.yml", "--limit", "aks-blue")
    flat = " ".join(output.split())
    assert changed == {"aks-blue": 0}, output[-6000:]
    assert (
        "identity id-orders-gone is also claimed by cluster aks-teal in resource group rg-aks-teal of subscription "
        f"{estate.box.subscription_id}, which ARM says no longer exists"
    ) in flat, flat[-4000:]
    # Asked to, aks-blue releases that claim and aks-teal's credential (the plan says so first).
    release = ("--limit", "aks-blue", "-e", "workload_identity_release_gone_clusters=true")
    _plan, planned = estate.run(inventory, "site.yml", "--check", *release)
    assert "released the claim of cluster aks-teal" in " ".join(planned.split()), planned[-4000:]
    assert set(estate.credentials(identity.name)) == {"aks-blue-orders-orders-api", "aks-teal-orders-orders-api"}
    changed, output = estate.run(inventory, "site.yml", *release)
    assert changed["aks-blue"] > 0
    assert estate.credentials(identity.name) == {"aks-blue-orders-orders-api": estate.issuer("aks-blue")}
    assert [k for k in estate.identities()[identity.name].tags if k.startswith("wi-uses:")] == ["wi-uses:aks-blue"]
    assert signed_in(estate.signs_in("aks-blue", identity.client_id))

    # aks-teal's own teardown: no Kubernetes to reach, said as a warning; its own identity and assignment go by marks.
    changed, output = estate.run(inventory, "teardown.yml", "--limit", "aks-teal")
    flat = " ".join(output.split())
    assert "ARM says cluster aks-teal no longer exists" in flat, output[-6000:]
    assert changed["aks-teal"] > 0
    assert "id-aks-teal-orders-solo" not in estate.identities()
    assert estate.assignments(own.principal_id) == []
    assert estate.identities()[identity.name].client_id == identity.client_id
    assert len(estate.assignments(identity.principal_id)) == 1
    assert signed_in(estate.signs_in("aks-blue", identity.client_id))
    changed, output = estate.run(inventory, "teardown.yml", "--limit", "aks-teal")
    assert changed == {"aks-teal": 0}, output[-6000:]
    estate.run({"aks-blue": shared}, "teardown.yml")
    assert identity.name not in estate.identities()
