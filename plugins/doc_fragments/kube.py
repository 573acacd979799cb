# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared documentation: how the Kubernetes modules reach a cluster's API server."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - Falls back to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then C(~/.kube/config).
    type: path
  context:
    description:
      - The kubeconfig context to use; the way to name one cluster per inventory host.
      - A context is used whole, never mixed with O(host) or O(api_key) (whether given or injected as
        E(K8S_AUTH_HOST) and E(K8S_AUTH_API_KEY)), so that one cluster's token is never sent to another; when both
        are present the module warns that they were ignored.
      - Falls back to E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - The API server's URL, used with O(api_key) when no context is named (what an AWX OpenShift or Kubernetes
        API Bearer Token credential injects).
      - Falls back to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - A bearer token for O(host).
      - Falls back to E(K8S_AUTH_API_KEY).
    type: str
  ca_cert:
    description:
      - The CA bundle that signed the API server's certificate, with O(host) (a context carries its own).
      - Falls back to E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  validate_certs:
    description:
      - Whether to verify the API server's certificate.
      - Falls back to E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  kube_auth:
    description:
      - How to reach the API server.
      - V(kubeconfig) - from O(context), O(kubeconfig), O(host) and O(api_key), or the in-cluster service account.
      - V(azure) - from the Azure credential alone (for M(workload_identity.aks.verify) its Azure options; for the
        other modules the environment's, E(AZURE_CLIENT_ID), E(AZURE_SECRET), E(AZURE_TENANT) and the rest, as the
        Azure options fall back to them) - the API server and its CA from the cluster's credential in ARM
        (O(aks_credential)), and, on a cluster with Entra ID integration, an Entra token for the AKS server
        application, refreshed before it expires; no kubeconfig file, no kubelogin. O(context), O(kubeconfig),
        O(host) and O(api_key) are ignored.
    type: str
    choices: [kubeconfig, azure]
    default: kubeconfig
    version_added: 0.2.0
  aks_cluster:
    description:
      - With O(kube_auth=azure), the AKS cluster - its resource id, or C(<resource group>/<name>) in the
        subscription of E(AZURE_SUBSCRIPTION_ID).
    type: str
    version_added: 0.2.0
  aks_credential:
    description:
      - With O(kube_auth=azure), which of the cluster's credentials to read.
      - V(user) - C(listClusterUserCredential); the principal needs C(Azure Kubernetes Service Cluster User Role)
        and, on a cluster with Azure RBAC for Kubernetes, an AKS RBAC role for what the module does.
      - V(admin) - C(listClusterAdminCredential), a local account; refused by clusters with local accounts disabled.
    type: str
    choices: [user, admin]
    default: user
    version_added: 0.2.0
  retry_budget:
    description:
      - Seconds one call may spend waiting out throttling (429, with its C(Retry-After) honoured), transient server
        errors and lost connections, however many attempts that takes; then it fails, naming the operation.
      - Falls back to E(WORKLOAD_IDENTITY_RETRY_BUDGET); default 300.
    type: float
notes:
  - Which cluster, in this order, the first that applies - a named O(context); O(host) (with O(api_key)); the
    kubeconfig's current context; the in-cluster service account.
  - Calls are retried on throttling (429, honouring C(Retry-After)), server errors (5xx), connection errors and
    optimistic-concurrency conflicts (409 C(Conflict)), with the same policy as the Azure modules.
  - Without a kubeconfig, context or host, the in-cluster service account is used (the collection running in a pod,
    as an AWX container group does).
"""
