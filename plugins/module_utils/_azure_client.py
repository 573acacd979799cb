# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): authentication, clients, the module base.

Modules never build credentials themselves: they declare their own options, and
``AzureModule.client("msi" | "authorization" | "containerservice")`` hands them a client whose SDK
is imported on first use only, with the SDK's own retries off (see ``_retry``).
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any

from ansible.module_utils.basic import env_fallback

from ._azure_errors import NO_CREDENTIAL_HINT
from ._errors import ValidationError
from ._ids import IdentityRef, InvalidScope
from ._module import CollectionModule
from ._results import Outcome
from ._retry import DEFAULT_BUDGET, RetryPolicy

COLLECTION_VERSION = "0.1.0"

CLOUDS: dict[str, dict[str, str]] = {
    "AzureCloud": {
        "resource_manager": "https://management.azure.com",
        "authority": "https://login.microsoftonline.com",
        "graph": "https://graph.microsoft.com",
    },
    "AzureChinaCloud": {
        "resource_manager": "https://management.chinacloudapi.cn",
        "authority": "https://login.chinacloudapi.cn",
        "graph": "https://microsoftgraph.chinacloudapi.cn",
    },
    "AzureUSGovernment": {
        "resource_manager": "https://management.usgovcloudapi.net",
        "authority": "https://login.microsoftonline.us",
        "graph": "https://graph.microsoft.us",
    },
}
KNOWN_AUTHORITIES = {c["authority"].split("://", 1)[1] for c in CLOUDS.values()}
# Other spellings operators type into AWX's free-text "Azure Cloud Environment" field (azure-cli's and msrestazure's).
CLOUD_ALIASES = {
    "azurepubliccloud": "AzureCloud",
    "public": "AzureCloud",
    "azurechina": "AzureChinaCloud",
    "china": "AzureChinaCloud",
    "azureusgovernmentcloud": "AzureUSGovernment",
    "usgovernment": "AzureUSGovernment",
    **{name.lower(): name for name in CLOUDS},
}


def cloud_endpoints(params: dict[str, Any]) -> dict[str, str]:
    """The endpoints of ``cloud_environment`` (a name, or an Azure Stack / private Resource Manager URL), with the
    explicit endpoint options on top; a ValidationError names what is unknown or missing, before any request."""
    value = str(params.get("cloud_environment") or "AzureCloud").strip()
    explicit = {
        "resource_manager": params.get("resource_manager_endpoint"),
        "authority": params.get("authority_host"),
        "graph": params.get("graph_endpoint"),
    }
    if value.lower().startswith("https://"):
        # A private cloud's Resource Manager: its authority cannot be guessed (no metadata call before validation).
        if not explicit["authority"]:
            raise ValidationError(
                [
                    f"cloud_environment (AZURE_CLOUD_ENVIRONMENT) is the Resource Manager URL {value}: give its "
                    "authority_host (AZURE_AUTHORITY_HOST) too"
                ]
            )
        # azure.azcollection's users may give the metadata URL (https://<arm>/metadata/endpoints?api-version=...).
        resource_manager = value.split("/metadata/endpoints", 1)[0]
        base = {"resource_manager": resource_manager, "authority": "", "graph": CLOUDS["AzureCloud"]["graph"]}
    else:
        name = CLOUD_ALIASES.get(value.lower().replace(" ", "").replace("_", ""))
        if name is None:
            raise ValidationError(
                [
                    f"cloud_environment (AZURE_CLOUD_ENVIRONMENT) {value!r} is not a known cloud: use one of "
                    f"{', '.join(sorted(CLOUDS))}, or the Resource Manager URL (https://...) of an Azure Stack Hub or "
                    "private cloud with authority_host"
                ]
            )
        base = CLOUDS[name]
    return {key: str(explicit[key] or base[key]).rstrip("/") for key in base}


# AWX's Azure credential has username/password fields; a password grant cannot satisfy the MFA Entra ID requires of
# users signing in to Resource Manager, so it is refused with what to use instead rather than ignored.
PASSWORD_VARIABLES = ("AZURE_AD_USER", "AZURE_PASSWORD")

AUTH_ARGSPEC: dict[str, Any] = {
    "auth_source": {
        "type": "str",
        "default": "auto",
        "choices": ["auto", "env", "cli", "msi", "workload_identity"],
        "fallback": (env_fallback, ["AZURE_AUTH_SOURCE"]),
    },
    "subscription_id": {"type": "str", "fallback": (env_fallback, ["AZURE_SUBSCRIPTION_ID"])},
    "tenant": {
        "type": "str",
        "aliases": ["tenant_id"],
        "fallback": (env_fallback, ["AZURE_TENANT", "AZURE_TENANT_ID"]),
    },
    "client_id": {"type": "str", "fallback": (env_fallback, ["AZURE_CLIENT_ID"])},
    "secret": {
        "type": "str",
        "no_log": True,
        "aliases": ["client_secret"],
        "fallback": (env_fallback, ["AZURE_SECRET", "AZURE_CLIENT_SECRET"]),
    },
    "federated_token_file": {"type": "path", "fallback": (env_fallback, ["AZURE_FEDERATED_TOKEN_FILE"])},
    "cloud_environment": {
        "type": "str",
        "default": "AzureCloud",
        # Free text, as AWX's Azure credential injects it: a cloud's name in any case (see cloud_endpoints), or the
        # Resource Manager URL of an Azure Stack Hub or private cloud.
        "fallback": (env_fallback, ["AZURE_CLOUD_ENVIRONMENT"]),
    },
    "resource_manager_endpoint": {"type": "str", "fallback": (env_fallback, ["AZURE_RESOURCE_MANAGER_ENDPOINT"])},
    "graph_endpoint": {"type": "str", "fallback": (env_fallback, ["AZURE_GRAPH_ENDPOINT"])},
    "authority_host": {"type": "str", "fallback": (env_fallback, ["AZURE_AUTHORITY_HOST"])},
    "ca_bundle": {"type": "path", "fallback": (env_fallback, ["AZURE_CA_BUNDLE", "REQUESTS_CA_BUNDLE"])},
    "disable_instance_discovery": {"type": "bool", "fallback": (env_fallback, ["AZURE_DISABLE_INSTANCE_DISCOVERY"])},
    "retry_budget": {"type": "float", "fallback": (env_fallback, ["WORKLOAD_IDENTITY_RETRY_BUDGET"])},
}


def params_from_environment() -> dict[str, Any]:
    """The auth options as the environment sets them (their fallbacks), for code that is not a module with them."""
    params: dict[str, Any] = {}
    for name, spec in AUTH_ARGSPEC.items():
        names = spec.get("fallback", (None, []))[1]
        value: Any = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if value is not None and spec.get("type") == "bool":
            value = value.strip().lower() in ("1", "true", "yes", "on")
        params[name] = value if value is not None else spec.get("default")
    return params


_CLIENTS = {
    "msi": ("azure.mgmt.msi", "ManagedServiceIdentityClient"),
    "authorization": ("azure.mgmt.authorization", "AuthorizationManagementClient"),
    "containerservice": ("azure.mgmt.containerservice", "ContainerServiceClient"),
}


def _detected_source(secret: Any, token_file: Any) -> str:
    """auth_source auto: a secret, else a federated token file, else a managed identity's endpoint, else the CLI."""
    if secret:
        return "env"
    if token_file:
        return "workload_identity"
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT"):
        return "msi"
    return "cli"


class Connection:
    """Where Azure is and how to sign in; built from the auth options, validated before any request."""

    def __init__(self, params: dict[str, Any]) -> None:
        endpoints = cloud_endpoints(params)
        self.params = params
        self.resource_manager = endpoints["resource_manager"]
        self.authority = endpoints["authority"]
        self.graph_endpoint = endpoints["graph"]
        self.ca_bundle: str | None = params.get("ca_bundle")
        discovery_off = params.get("disable_instance_discovery")
        if discovery_off is None:
            # MSAL asks login.microsoftonline.com to vouch for any other authority host, which an
            # Azure Stack or private authority cannot pass: off unless it is a public cloud's.
            discovery_off = self.authority.split("://", 1)[-1] not in KNOWN_AUTHORITIES
        self.disable_instance_discovery = bool(discovery_off)
        self.subscription_id: str | None = params.get("subscription_id")
        self._credential: Any = None

    @property
    def scope(self) -> str:
        """The token scope for ARM: the public audience for public clouds, else the endpoint itself."""
        return f"{self.resource_manager}/.default"

    def _transport_kwargs(self) -> dict[str, Any]:
        return {"connection_verify": self.ca_bundle} if self.ca_bundle else {}

    def credential(self) -> Any:
        if self._credential is None:
            self._credential = self._make_credential()
        return self._credential

    def _make_credential(self) -> Any:
        p = self.params
        source = p.get("auth_source") or "auto"
        tenant, client_id, secret, token_file = (
            p.get("tenant"),
            p.get("client_id"),
            p.get("secret"),
            p.get("federated_token_file"),
        )
        common = {"authority": self.authority, **self._transport_kwargs()}
        if not secret and not token_file and any(os.environ.get(name) for name in PASSWORD_VARIABLES):
            raise ValidationError(
                [
                    "AZURE_AD_USER/AZURE_PASSWORD (a user name and password, as AWX's Azure credential can inject) are "
                    "not supported: Entra ID requires multifactor sign-in of users to Azure Resource Manager, which a "
                    "password grant cannot do. Give the credential a service principal (client id, secret, tenant), "
                    "or use workload identity or a managed identity (auth_source)"
                ]
            )
        if source == "auto":
            source = _detected_source(secret, token_file)
        if source == "env":
            missing = [n for n, v in (("tenant", tenant), ("client_id", client_id), ("secret", secret)) if not v]
            if missing:
                raise ValidationError(
                    [
                        f"auth_source=env needs {', '.join(missing)} (or AZURE_TENANT/AZURE_TENANT_ID, "
                        "AZURE_CLIENT_ID, AZURE_SECRET/AZURE_CLIENT_SECRET)"
                    ]
                )
            from azure.identity import ClientSecretCredential

            return ClientSecretCredential(
                str(tenant),
                str(client_id),
                str(secret),
                disable_instance_discovery=self.disable_instance_discovery,
                **common,
            )
        if source == "workload_identity":
            missing = [
                n
                for n, v in (("tenant", tenant), ("client_id", client_id), ("federated_token_file", token_file))
                if not v
            ]
            if missing:
                raise ValidationError(
                    [
                        f"auth_source=workload_identity needs {', '.join(missing)} (or AZURE_TENANT_ID, "
                        "AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE as the webhook injects them)"
                    ]
                )
            from azure.identity import WorkloadIdentityCredential

            return WorkloadIdentityCredential(
                tenant_id=tenant, client_id=client_id, token_file_path=token_file, **common
            )
        if source == "msi":
            from azure.identity import ManagedIdentityCredential

            return ManagedIdentityCredential(client_id=client_id, **self._transport_kwargs())
        if shutil.which("az") is None:
            chosen = "auth_source=cli" if p.get("auth_source") == "cli" else "no credential is set, and the fallback"
            raise ValidationError([f"{chosen} needs the Azure CLI (az), which is not on PATH. {NO_CREDENTIAL_HINT}"])
        from azure.identity import AzureCliCredential

        return AzureCliCredential(tenant_id=tenant or "")

    def client(self, name: str, credential: Any = None) -> Any:
        """An ARM SDK client as the automation principal, or with ``credential`` (a workload's own, to verify)."""
        module_name, class_name = _CLIENTS[name]
        if not self.subscription_id:
            raise ValidationError(["subscription_id is required (or AZURE_SUBSCRIPTION_ID)"])
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(
            credential or self.credential(),
            self.subscription_id,
            base_url=self.resource_manager,
            credential_scopes=[self.scope],
            retry_total=0,
            user_agent=f"workload_identity.aks/{COLLECTION_VERSION}",
            **self._transport_kwargs(),
        )

    def workload_credential(self, tenant_id: str, client_id: str, assertion: Any) -> Any:
        """A workload's own sign-in: its ServiceAccount token (``assertion``, a callable) exchanged at Entra, as the
        SDK in its pod does (the token stays in memory, never in a file or the module's result)."""
        from azure.identity import ClientAssertionCredential

        return ClientAssertionCredential(
            tenant_id,
            client_id,
            assertion,
            authority=self.authority,
            disable_instance_discovery=self.disable_instance_discovery,
            **self._transport_kwargs(),
        )

    def graph(self, policy: RetryPolicy) -> Any:
        """A Microsoft Graph client with the same credential (imported on first use only)."""
        from ._azure_graph import GraphClient

        return GraphClient(
            self.credential(),
            self.graph_endpoint,
            self.ca_bundle,
            f"workload_identity.aks/{COLLECTION_VERSION}",
            policy,
        )


class AzureModule(CollectionModule):
    """The collection's module base plus the shared Azure auth options and a client factory."""

    def __init__(self, argument_spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(argument_spec={**argument_spec, **AUTH_ARGSPEC}, **kwargs)
        try:
            self.connection = Connection(self.params)
        except ValidationError as error:
            self.fail_error(error)
        self.retry_policy = RetryPolicy(budget=self.params.get("retry_budget") or DEFAULT_BUDGET)
        self._clients: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        """An ARM SDK client ("msi", "authorization", "containerservice"), or "graph" (Microsoft Graph)."""
        if name not in self._clients:
            try:
                if name == "graph":
                    self._clients[name] = self.connection.graph(self.retry_policy)
                else:
                    self._clients[name] = self.connection.client(name)
            except ValidationError as exc:
                self.fail_problems(exc.problems)
        return self._clients[name]

    def exit_outcome(self, outcome: Outcome[Any], key: str, **extra: Any) -> None:
        """Exit with what an ensure_* engine did: changed, action, the object after, and a diff when asked."""
        result = {"changed": outcome.changed, "action": outcome.action, key: outcome.after or {}, **extra}
        if self._diff:
            result["diff"] = outcome.diff()
        self.exit_json(**result)

    def identity_ref(self, identity: str, resource_group: str | None) -> IdentityRef:
        """An identity given by name (with its resource group) or by resource id; fails naming the option."""
        if identity.startswith("/"):
            try:
                return IdentityRef.parse(identity)
            except InvalidScope as exc:
                self.fail_json(msg=f"identity: {exc}")
        if not resource_group:
            self.fail_json(msg="resource_group is required when identity is a name, not a resource id")
        return IdentityRef(self.connection.subscription_id or "", str(resource_group), identity)
