"""The Azure CLI, a client nobody here wrote, pointed at the sandbox like at a custom cloud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.integration.sandbox_helpers import AZ, Cli, Sandbox

pytestmark = pytest.mark.skipif(not AZ, reason="SANDBOX_AZ_CLI names no az binary (make integration installs one)")


@pytest.fixture()
def az(sandbox: Sandbox, tmp_path: Path) -> Cli:
    return Cli.for_sandbox(sandbox, tmp_path / "azure")


def test_cloud_registration_reads_the_metadata_endpoint(az: Cli, sandbox: Sandbox) -> None:
    endpoints = az.json("cloud", "show", "-n", "Sandbox")["endpoints"]
    assert endpoints["resourceManager"] == sandbox.url + "/"
    assert endpoints["activeDirectory"] == sandbox.url + "/"


def test_login_and_the_workload_identity_objects(az: Cli, sandbox: Sandbox) -> None:
    wrong = az.run(
        "login",
        "--service-principal",
        "-u",
        sandbox.env["AZURE_CLIENT_ID"],
        "--password=not-the-secret",
        "--tenant",
        sandbox.tenant_id,
        check=False,
    )
    assert wrong.returncode != 0 and "AADSTS7000215" in wrong.stderr
    accounts = az.login(sandbox)
    assert [a["id"] for a in accounts] == [sandbox.subscription_id]
    az.run("group", "create", "-n", "rg-cli", "-l", "westeurope")
    identity = az.json("identity", "create", "-g", "rg-cli", "-n", "orders-api")
    assert identity["clientId"] and identity["principalId"]
    az.run(
        "identity",
        "federated-credential",
        "create",
        "-g",
        "rg-cli",
        "--identity-name",
        "orders-api",
        "-n",
        "aks-dev",
        "--issuer",
        "https://issuer.example/",
        "--subject",
        "system:serviceaccount:orders:api",
    )
    fics = az.json("identity", "federated-credential", "list", "-g", "rg-cli", "--identity-name", "orders-api")
    assert [(f["name"], f["subject"]) for f in fics] == [("aks-dev", "system:serviceaccount:orders:api")]
    assignment = az.json(
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        identity["principalId"],
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "Storage Blob Data Reader",
        "--scope",
        sandbox.rg_id("rg-cli"),
    )
    assert assignment["principalType"] == "ServicePrincipal"
    assert assignment["roleDefinitionId"].endswith("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1")
    az.run("identity", "delete", "-g", "rg-cli", "-n", "orders-api")
    missing = az.run("identity", "show", "-g", "rg-cli", "-n", "orders-api", check=False)
    assert missing.returncode != 0 and "ResourceNotFound" in missing.stderr


def test_aks_update_enables_the_issuer_and_workload_identity(az: Cli, sandbox: Sandbox) -> None:
    az.login(sandbox)
    seeded = sandbox.control.seed_cluster("rg-aks", "aks-cli")
    cluster = az.json(
        "aks", "update", "-g", "rg-aks", "-n", "aks-cli", "--enable-oidc-issuer", "--enable-workload-identity"
    )
    assert cluster["provisioningState"] == "Succeeded"
    assert cluster["oidcIssuerProfile"]["issuerUrl"] == seeded["issuer_url"]
    assert cluster["securityProfile"]["workloadIdentity"]["enabled"] is True
    discovery = requests.get(seeded["issuer_url"] + ".well-known/openid-configuration", verify=sandbox.ca, timeout=10)
    assert discovery.json()["issuer"] == seeded["issuer_url"]
    shown = az.json("aks", "show", "-g", "rg-aks", "-n", "aks-cli")
    assert shown["oidcIssuerProfile"]["enabled"] is True


def test_app_registrations_through_microsoft_graph(az: Cli, sandbox: Sandbox) -> None:
    """The app-registration way, unmodified az commands, and role assignments that resolve principals in Graph."""
    assert az.json("cloud", "show", "-n", "Sandbox")["endpoints"]["microsoftGraphResourceId"] == sandbox.url + "/graph/"
    az.login(sandbox)
    app = az.json("ad", "app", "create", "--display-name", "orders-api")
    assert app["appId"] and app["displayName"] == "orders-api"
    # Created again by display name: az finds it and patches it instead of duplicating.
    assert az.json("ad", "app", "create", "--display-name", "orders-api")["id"] == app["id"]
    assert [a["id"] for a in az.json("ad", "app", "list", "--display-name", "orders-api")] == [app["id"]]
    assert az.json("ad", "app", "show", "--id", app["appId"])["id"] == app["id"]
    sp = az.json("ad", "sp", "create", "--id", app["appId"])
    assert sp["appId"] == app["appId"] and sp["servicePrincipalType"] == "Application"
    assert az.json("ad", "sp", "show", "--id", app["appId"])["id"] == sp["id"]
    parameters = {
        "name": "aks-dev",
        "issuer": "https://oidc.example/tenant/aks-dev/",
        "subject": "system:serviceaccount:orders:orders-api",
        "audiences": ["api://AzureADTokenExchange"],
    }
    az.run("ad", "app", "federated-credential", "create", "--id", app["appId"], "--parameters", json.dumps(parameters))
    listed = az.json("ad", "app", "federated-credential", "list", "--id", app["appId"])
    assert [(f["name"], f["subject"]) for f in listed] == [("aks-dev", parameters["subject"])]
    shown = az.json(
        "ad", "app", "federated-credential", "show", "--id", app["appId"], "--federated-credential-id", "aks-dev"
    )
    assert shown["issuer"] == parameters["issuer"]
    az.run("ad", "app", "federated-credential", "delete", "--id", app["appId"], "--federated-credential-id", "aks-dev")
    assert az.json("ad", "app", "federated-credential", "list", "--id", app["appId"]) == []
    # --assignee <appId> and --assignee <managed identity client id>: az looks both up in Graph.
    az.run("group", "create", "-n", "rg-graph", "-l", "westeurope")
    by_app = az.json(
        "role",
        "assignment",
        "create",
        "--assignee",
        app["appId"],
        "--role",
        "Reader",
        "--scope",
        sandbox.rg_id("rg-graph"),
    )
    assert by_app["principalId"] == sp["id"] and by_app["principalType"] == "ServicePrincipal"
    identity = az.json("identity", "create", "-g", "rg-graph", "-n", "id-orders")
    by_client_id = az.json(
        "role",
        "assignment",
        "create",
        "--assignee",
        identity["clientId"],
        "--role",
        "Reader",
        "--scope",
        sandbox.rg_id("rg-graph"),
    )
    assert by_client_id["principalId"] == identity["principalId"]
    az.run("ad", "app", "delete", "--id", app["appId"])
    gone = az.run("ad", "app", "show", "--id", app["appId"], check=False)
    assert gone.returncode != 0
