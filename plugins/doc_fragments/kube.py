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
      - A context is used whole, never mixed with O(host) or O(api_key) from the environment, so that one
        cluster's token is never sent to another.
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
      - The CA bundle that signed the API server's certificate.
      - Falls back to E(K8S_AUTH_SSL_CA_CERT) when O(host) is used.
    type: path
  validate_certs:
    description:
      - Whether to verify the API server's certificate.
      - Falls back to E(K8S_AUTH_VERIFY_SSL).
    type: bool
notes:
  - Without a kubeconfig, context or host, the in-cluster service account is used (the collection running in a pod,
    as an AWX container group does).
"""
