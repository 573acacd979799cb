"""Where Azure is and how to sign in, as AWX's Azure Resource Manager credential injects it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import Connection, cloud_endpoints
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_errors import translate
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import ValidationError


@pytest.mark.parametrize(
    ("typed", "resource_manager"),
    [
        ("AzureCloud", "https://management.azure.com"),
        ("azurecloud", "https://management.azure.com"),
        ("AzurePublicCloud", "https://management.azure.com"),
        (" AzureUSGovernment ", "https://management.usgovcloudapi.net"),
        ("AzureUSGovernmentCloud", "https://management.usgovcloudapi.net"),
        ("azure_china_cloud", "https://management.chinacloudapi.cn"),
        (None, "https://management.azure.com"),
    ],
)
def test_a_free_text_cloud_name_is_read_in_any_case_and_spelling(typed: str | None, resource_manager: str) -> None:
    assert cloud_endpoints({"cloud_environment": typed})["resource_manager"] == resource_manager


def test_a_private_cloud_is_its_resource_manager_url_with_an_authority() -> None:
    endpoints = cloud_endpoints(
        {
            "cloud_environment": "https://management.local.azurestack.external/metadata/endpoints?api-version=1",
            "authority_host": "https://adfs.local.azurestack.external/",
        }
    )
    assert endpoints["resource_manager"] == "https://management.local.azurestack.external"
    assert endpoints["authority"] == "https://adfs.local.azurestack.external"
    with pytest.raises(ValidationError, match=r"give its authority_host \(AZURE_AUTHORITY_HOST\)"):
        cloud_endpoints({"cloud_environment": "https://management.local.azurestack.external"})


def test_an_unknown_cloud_name_is_an_error_naming_the_accepted_ones() -> None:
    with pytest.raises(ValidationError) as raised:
        Connection({"cloud_environment": "AzureGermanCloud"})
    assert "'AzureGermanCloud' is not a known cloud: use one of AzureChinaCloud, AzureCloud, AzureUSGovernment" in str(
        raised.value
    )


def test_a_user_name_and_password_is_refused_with_what_to_use_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_AD_USER", "ops@contoso.example")
    monkeypatch.setenv("AZURE_PASSWORD", "hunter2")
    with pytest.raises(ValidationError) as raised:
        Connection({"subscription_id": "s"}).credential()
    message = str(raised.value)
    assert "AZURE_AD_USER/AZURE_PASSWORD" in message and "service principal" in message
    assert "hunter2" not in message
    # A service principal beside them (both filled in AWX) is what is used.
    chosen = Connection({"tenant": "t", "client_id": "c", "secret": "s"}).credential()
    assert type(chosen).__name__ == "ClientSecretCredential"


@pytest.mark.parametrize("auth_source", [None, "cli"])
def test_no_credential_and_no_azure_cli_says_what_to_set_before_any_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, auth_source: str | None
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no az anywhere
    for name in ("IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_AD_USER", "AZURE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError) as raised:
        Connection({"subscription_id": "s", "auth_source": auth_source}).credential()
    message = str(raised.value)
    for needed in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT", "auth_source", "az login", "not on PATH"):
        assert needed in message, needed
    assert "401" not in message and "AuthenticationFailed" not in message


def test_a_credential_azure_identity_could_not_find_is_not_reported_as_an_answer_from_azure() -> None:
    from azure.identity import CredentialUnavailableError

    translated = translate(CredentialUnavailableError("Please run 'az login' to set up an account"), "read identity")
    assert translated is not None and translated.status is None and translated.code == "CredentialUnavailable"
    assert "Please run 'az login'" in str(translated) and "AZURE_CLIENT_ID" in str(translated)
