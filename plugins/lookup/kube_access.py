# Copyright: workload_identity.aks maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An AKS cluster's API server, CA and bearer token from the Azure credential alone, for kubernetes.core tasks."""

from __future__ import annotations

DOCUMENTATION = r"""
name: kube_access
short_description: Reach an AKS cluster's API server with the Azure credential alone
version_added: 0.2.0
author: workload_identity.aks maintainers (@workload-identity)
description:
  - For the tasks this collection runs through C(kubernetes.core) (C(helm), C(helm_info), C(k8s_info)) when
    C(workload_identity_kube_auth) is V(azure); the collection's own modules do the same with C(kube_auth=azure).
  - Reads the cluster's credential from ARM (C(listClusterUserCredential), or C(listClusterAdminCredential)) with
    the Azure credential of the environment (E(AZURE_CLIENT_ID), E(AZURE_SECRET), E(AZURE_TENANT),
    E(AZURE_SUBSCRIPTION_ID), E(AZURE_FEDERATED_TOKEN_FILE), a managed identity or the Azure CLI, as the Azure
    modules sign in), and on a cluster with Entra ID integration gets an Entra token for the AKS server application.
  - Returns the API server's URL (C(host)), the token (C(api_key), to pass to options that are C(no_log)) and the
    path of a file holding the cluster's CA (C(ca_cert); public, under Ansible's per-run temporary directory, which
    Ansible removes at the end of the run). Nothing secret is written to disk.
  - Evaluated when the task runs, so a long run gets a fresh token for each task; one ARM read and one token per
    task and cluster however many options use it.
options:
  _terms:
    description: The AKS cluster - its resource id, or C(<resource group>/<name>) in E(AZURE_SUBSCRIPTION_ID).
    type: list
    elements: str
    required: true
  credential:
    description: Which of the cluster's credentials, V(user) or V(admin) (as the modules' C(aks_credential)).
    type: str
    default: user
"""

EXAMPLES = r"""
- name: Read a release with the Azure credential alone
  kubernetes.core.helm_info:
    name: workload-identity-webhook
    release_namespace: azure-workload-identity-system
    host: "{{ access.host }}"
    api_key: "{{ access.api_key }}"
    ca_cert: "{{ access.ca_cert }}"
  vars:
    access: "{{ lookup('workload_identity.aks.kube_access', 'rg-aks/aks-prod') }}"
"""

RETURN = r"""
_raw:
  description: One dictionary with C(host), C(api_key) and C(ca_cert).
  type: list
  elements: dict
"""

import hashlib
import os
import time
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

# Per process: the options of one task template the lookup several times; a minute, so a token is never stale.
_CACHE: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_CACHE_SECONDS = 60


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        from ansible import constants
        from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import AksAccess, ClusterRef
        from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import (
            Connection,
            params_from_environment,
        )
        from ansible_collections.workload_identity.aks.plugins.module_utils._errors import (
            ApiError,
            ValidationError,
        )

        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or not terms[0]:
            raise AnsibleError("kube_access takes one AKS cluster (its resource id, or <resource group>/<name>)")
        credential = str(self.get_option("credential") or "user")
        key = (str(terms[0]), credential)
        if key in _CACHE and time.monotonic() - _CACHE[key][0] < _CACHE_SECONDS:
            return [_CACHE[key][1]]
        try:
            connection = Connection(params_from_environment())
            access = AksAccess(connection, ClusterRef(str(terms[0]), connection.subscription_id), credential).load()
            token = access.token()
        except ValidationError as exc:
            raise AnsibleError(f"kube_access {terms[0]}: {'; '.join(exc.problems)}") from None
        except ApiError as exc:
            raise AnsibleError(f"kube_access {terms[0]}: {exc}") from None
        _CACHE[key] = (time.monotonic(), helm_access(access, token, constants.DEFAULT_LOCAL_TMP))
        return [_CACHE[key][1]]


def helm_access(access: Any, token: str | None, local_tmp: str) -> dict[str, Any]:
    """host, api_key and ca_cert for kubernetes.core's options, from a loaded AksAccess and its token now.

    kubernetes.core's helm modules take a bearer token, not a client certificate: a credential with a certificate only
    (a cluster without Entra ID integration whose kubeconfig carries no token) is refused, saying what to use instead.
    """
    if not token:
        raise AnsibleError(
            f"kube_access {access.cluster.id}: the cluster's {access.credential_kind} credential holds a client "
            "certificate and no token, which the helm steps cannot use; give this cluster a kubeconfig context "
            "(workload_identity_kube_context) instead of workload_identity_kube_auth azure"
        )
    ca_cert = None
    if access.ca_pem:
        # Public: the CA that signed the API server's certificate. Ansible removes its local tmp at exit.
        digest = hashlib.sha256(access.cluster.id.lower().encode()).hexdigest()[:16]
        ca_cert = os.path.join(local_tmp, f"aks-{digest}-ca.pem")
        with open(ca_cert, "wb") as stream:
            stream.write(access.ca_pem)
    return {"host": access.server, "api_key": token, "ca_cert": ca_cert}
