"""managedClusters through azure-mgmt-containerservice: realistic bodies, LROs, the OIDC issuer rules."""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.integration.sandbox_helpers import Sandbox


def test_seeded_cluster_looks_like_aks(sandbox: Sandbox) -> None:
    sandbox.control.seed_cluster("rg-aks", "aks-dev", location="northeurope")
    cluster = sandbox.aks().managed_clusters.get("rg-aks", "aks-dev")
    assert cluster.provisioning_state == "Succeeded" and cluster.location == "northeurope"
    assert cluster.identity.type == "SystemAssigned" and cluster.identity.principal_id
    assert cluster.identity_profile["kubeletidentity"].client_id
    assert cluster.network_profile.network_plugin == "azure"
    assert cluster.agent_pool_profiles[0].mode == "System"
    assert cluster.kubernetes_version and cluster.fqdn.endswith(".azmk8s.io")
    assert cluster.oidc_issuer_profile.enabled is False and cluster.oidc_issuer_profile.issuer_url is None
    assert [c.name for c in sandbox.aks().managed_clusters.list_by_resource_group("rg-aks")] == ["aks-dev"]
    assert [c.name for c in sandbox.aks().managed_clusters.list()] == ["aks-dev"]


def test_enabling_the_issuer_is_a_long_running_operation(sandbox: Sandbox) -> None:
    seeded = sandbox.control.seed_cluster("rg-aks", "aks-dev")
    discovery = seeded["issuer_url"] + ".well-known/openid-configuration"
    assert requests.get(discovery, verify=sandbox.ca, timeout=10).status_code == 404
    clusters = sandbox.aks().managed_clusters
    cluster = clusters.get("rg-aks", "aks-dev")
    cluster.oidc_issuer_profile.enabled = True
    cluster.security_profile.workload_identity = {"enabled": True}
    poller = clusters.begin_create_or_update("rg-aks", "aks-dev", cluster, polling_interval=0.2)
    assert clusters.get("rg-aks", "aks-dev").provisioning_state == "Updating"
    done = poller.result()
    assert done.provisioning_state == "Succeeded"
    issuer = done.oidc_issuer_profile.issuer_url
    assert issuer == f"{sandbox.url}/{sandbox.tenant_id}/{seeded['issuer_url'].rstrip('/').rsplit('/', 1)[1]}/"
    assert done.security_profile.workload_identity.enabled is True
    doc = requests.get(discovery, verify=sandbox.ca, timeout=10).json()
    assert doc["issuer"] == issuer and doc["jwks_uri"] == issuer + "openid/v1/jwks"
    keys = requests.get(doc["jwks_uri"], verify=sandbox.ca, timeout=10).json()["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"
    stats = sandbox.control.stats()["operations"]
    assert stats["operations.get"]["total"] >= 1 and stats["managedClusters.put"]["total"] == 1


def test_issuer_rules(sandbox: Sandbox) -> None:
    sandbox.control.seed_cluster("rg-aks", "aks-wi")
    clusters = sandbox.aks().managed_clusters
    cluster = clusters.get("rg-aks", "aks-wi")
    cluster.security_profile.workload_identity = {"enabled": True}
    with pytest.raises(HttpResponseError) as needs_issuer:
        clusters.begin_create_or_update("rg-aks", "aks-wi", cluster).result()
    assert needs_issuer.value.status_code == 400 and "OIDC" in needs_issuer.value.error.message
    sandbox.control.seed_cluster("rg-aks", "aks-on", oidc_issuer_enabled=True)
    enabled = clusters.get("rg-aks", "aks-on")
    enabled.oidc_issuer_profile.enabled = False
    with pytest.raises(HttpResponseError) as cannot_disable:
        clusters.begin_create_or_update("rg-aks", "aks-on", enabled).result()
    assert cannot_disable.value.status_code == 400 and "cannot be disabled" in cannot_disable.value.error.message


def test_operation_in_progress_blocks_another(sandbox: Sandbox) -> None:
    sandbox.control.configure({"lro_seconds": 3})
    sandbox.control.seed_cluster("rg-aks", "aks-dev")
    clusters = sandbox.aks().managed_clusters
    cluster = clusters.get("rg-aks", "aks-dev")
    cluster.oidc_issuer_profile.enabled = True
    poller = clusters.begin_create_or_update("rg-aks", "aks-dev", cluster, polling_interval=0.2)
    with pytest.raises(HttpResponseError) as busy:
        clusters.begin_create_or_update("rg-aks", "aks-dev", cluster).result()
    assert busy.value.status_code == 409 and busy.value.error.code == "OperationNotAllowed"
    assert poller.result().oidc_issuer_profile.enabled is True


def test_delete_cluster_and_resource_group(sandbox: Sandbox) -> None:
    sandbox.control.seed_cluster("rg-aks", "aks-dev")
    clusters = sandbox.aks().managed_clusters
    clusters.begin_delete("rg-aks", "aks-dev", polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError):
        clusters.get("rg-aks", "aks-dev")
    sandbox.control.seed_cluster("rg-aks", "aks-two")
    sandbox.msi().user_assigned_identities.create_or_update("rg-aks", "inside", {"location": "westeurope"})
    response = sandbox.raw("DELETE", sandbox.rg_id("rg-aks"), api_version="2022-09-01")
    assert response.status_code == 202 and "Location" in response.headers
    assert sandbox.raw("GET", sandbox.rg_id("rg-aks"), api_version="2022-09-01").status_code == 404
    assert list(sandbox.msi().user_assigned_identities.list_by_subscription()) == []
