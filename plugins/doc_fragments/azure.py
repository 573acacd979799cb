# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared documentation: how the Azure modules sign in and where Azure is."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  auth_source:
    description:
      - How to sign in to Azure.
      - V(auto) picks V(env) when a secret is set, else V(workload_identity) when a federated token file is set,
        else V(msi) when a managed-identity endpoint is present, else V(cli).
      - V(env) uses a service principal's client secret (O(tenant), O(client_id), O(secret)).
      - V(workload_identity) exchanges a Kubernetes service-account token (O(federated_token_file)), so the
        collection can run in a pod that has workload identity.
      - V(msi) uses the managed identity of the machine (O(client_id) selects a user-assigned one).
      - V(cli) uses the Azure CLI's signed-in account.
      - Falls back to E(AZURE_AUTH_SOURCE).
    type: str
    default: auto
    choices: [auto, env, cli, msi, workload_identity]
  subscription_id:
    description:
      - The subscription to work in.
      - Falls back to E(AZURE_SUBSCRIPTION_ID).
    type: str
  tenant:
    description:
      - The Entra tenant id.
      - Falls back to E(AZURE_TENANT) (what AWX injects), then E(AZURE_TENANT_ID).
    type: str
    aliases: [tenant_id]
  client_id:
    description:
      - The application (client) id to sign in as.
      - Falls back to E(AZURE_CLIENT_ID).
    type: str
  secret:
    description:
      - The client secret of O(client_id). Never logged.
      - Falls back to E(AZURE_SECRET) (what AWX injects), then E(AZURE_CLIENT_SECRET).
    type: str
    aliases: [client_secret]
  federated_token_file:
    description:
      - A file holding a federated (Kubernetes service-account) token, for O(auth_source=workload_identity).
      - Falls back to E(AZURE_FEDERATED_TOKEN_FILE), which the workload-identity webhook sets in pods.
    type: path
  cloud_environment:
    description:
      - The Azure cloud, which sets the default O(resource_manager_endpoint), O(graph_endpoint) and O(authority_host).
      - One of C(AzureCloud), C(AzureChinaCloud), C(AzureUSGovernment), in any case, or another common spelling
        (C(AzurePublicCloud), C(AzureUSGovernmentCloud)), as AWX's free-text field may carry it.
      - Or the Resource Manager URL (C(https://...)) of an Azure Stack Hub or private cloud; O(authority_host) is then
        required.
      - Anything else is an error naming the accepted values, before any request.
      - Falls back to E(AZURE_CLOUD_ENVIRONMENT).
    type: str
    default: AzureCloud
  resource_manager_endpoint:
    description:
      - Azure Resource Manager's base URL, for clouds not listed in O(cloud_environment)
        (Azure Stack, a local emulator).
      - Falls back to E(AZURE_RESOURCE_MANAGER_ENDPOINT).
    type: str
  graph_endpoint:
    description:
      - Microsoft Graph's base URL (used for app registrations), for clouds not listed in O(cloud_environment).
      - Falls back to E(AZURE_GRAPH_ENDPOINT).
    type: str
  authority_host:
    description:
      - Entra ID's base URL, for clouds not listed in O(cloud_environment).
      - Falls back to E(AZURE_AUTHORITY_HOST).
    type: str
  ca_bundle:
    description:
      - A PEM file of certificate authorities to trust instead of the default ones.
      - Falls back to E(AZURE_CA_BUNDLE), then E(REQUESTS_CA_BUNDLE).
    type: path
  disable_instance_discovery:
    description:
      - Whether to skip Entra's instance discovery (a call to C(login.microsoftonline.com)).
      - By default it is skipped when O(authority_host) is not a public cloud's, because it cannot succeed there.
      - Falls back to E(AZURE_DISABLE_INSTANCE_DISCOVERY).
    type: bool
  retry_budget:
    description:
      - Seconds one call may spend waiting out throttling (429, with its C(Retry-After) honoured), transient server
        errors and lost connections, however many attempts that takes; then it fails, naming the operation.
      - Falls back to E(WORKLOAD_IDENTITY_RETRY_BUDGET); default 300.
    type: float
requirements:
  - python >= 3.10
  - azure-identity >= 1.19
  - azure-mgmt-msi >= 7.0 (user-assigned identities, federated credentials; its client also reads and updates clusters)
  - azure-mgmt-authorization >= 4.0 (role assignments and definitions)
  - azure-mgmt-containerservice >= 34 (an AKS cluster's credentials, for kube_auth azure)
notes:
  - Every option falls back to the environment variables named, so AWX's Microsoft Azure Resource Manager
    credential or C(module_defaults) with C(group/workload_identity.aks.azure) sets them once per play.
  - Throttling (429), transient server errors and connection errors are retried with C(Retry-After) honoured.
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts, without changing anything.
    support: full
  diff_mode:
    description: Returns details of what changed (or would change in check mode) with C(--diff).
    support: full
  idempotent:
    description: Running it again with the same arguments changes nothing.
    support: full
"""

    INFO_ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Reads only, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Reads only; there is nothing to diff.
    support: N/A
  idempotent:
    description: Reads only.
    support: full
"""
