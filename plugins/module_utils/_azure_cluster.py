# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): an AKS cluster's OIDC issuer.

The cluster is read and written as raw JSON, so a PUT carries back every field exactly as AKS
gave it (no SDK model in between to drop fields it does not know) and changes only
``oidcIssuerProfile.enabled`` and, when asked, ``securityProfile.workloadIdentity.enabled``.
"""

from __future__ import annotations

import copy
from typing import Any

from ._azure_errors import azure_call
from ._errors import AzureApiError, ValidationError
from ._results import IssuerState, Outcome
from ._retry import RetryPolicy


def _raw(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    return pipeline_response.http_response.json()


def issuer_state(body: dict[str, Any]) -> IssuerState:
    props = body.get("properties") or {}
    oidc = props.get("oidcIssuerProfile") or {}
    workload = (props.get("securityProfile") or {}).get("workloadIdentity") or {}
    return {
        "id": body.get("id"),
        "name": body.get("name"),
        "oidc_issuer_enabled": bool(oidc.get("enabled")),
        "issuer_url": oidc.get("issuerURL") or oidc.get("issuerUrl"),
        "workload_identity_enabled": bool(workload.get("enabled")),
        "provisioning_state": props.get("provisioningState"),
        "kubernetes_version": props.get("currentKubernetesVersion") or props.get("kubernetesVersion"),
    }


class ClusterApi:
    def __init__(self, client: Any, policy: RetryPolicy | None = None, polling_interval: float = 5) -> None:
        self.ops = client.managed_clusters
        self.policy = policy or RetryPolicy()
        self.polling_interval = polling_interval

    def get(self, resource_group: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                azure_call(f"get cluster {name}", lambda: self.ops.get(resource_group, name, cls=_raw), self.policy)
            )
        except AzureApiError as exc:
            if exc.status == 404:
                return None
            raise

    def put(self, resource_group: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start the long-running update, wait for it, read the result."""

        def update() -> None:
            self.ops.begin_create_or_update(resource_group, name, body, polling_interval=self.polling_interval).result()

        azure_call(f"update cluster {name}", update, self.policy)
        after = self.get(resource_group, name)
        if after is None:
            raise AzureApiError(f"cluster {name} disappeared during the update", operation=f"update cluster {name}")
        return after


def ensure_issuer(
    api: ClusterApi,
    resource_group: str,
    name: str,
    *,
    oidc_issuer: bool,
    workload_identity: bool | None,
    check_mode: bool,
) -> Outcome[IssuerState]:
    body = api.get(resource_group, name)
    if body is None:
        raise ValidationError([f"cluster: no AKS cluster {name} in resource group {resource_group}"])
    before = issuer_state(body)
    if not oidc_issuer:
        if before["oidc_issuer_enabled"]:
            raise ValidationError(
                [
                    f"oidc_issuer: the OIDC issuer of {name} is enabled and AKS cannot disable it "
                    "(once on, it stays on; the issuer URL is what federated credentials trust)"
                ]
            )
        if workload_identity:
            raise ValidationError(["workload_identity: the managed add-on needs the OIDC issuer (oidc_issuer: true)"])
    want_oidc = oidc_issuer or before["oidc_issuer_enabled"]
    want_workload = before["workload_identity_enabled"] if workload_identity is None else workload_identity
    if (want_oidc, want_workload) == (before["oidc_issuer_enabled"], before["workload_identity_enabled"]):
        return Outcome(False, "unchanged", before, before)
    new = copy.deepcopy(body)
    props = new.setdefault("properties", {})
    props.setdefault("oidcIssuerProfile", {})["enabled"] = want_oidc
    if workload_identity is not None:
        security = props.get("securityProfile") or {}
        security.setdefault("workloadIdentity", {})["enabled"] = want_workload
        props["securityProfile"] = security
    predicted = IssuerState(**{**before, "oidc_issuer_enabled": want_oidc, "workload_identity_enabled": want_workload})
    if check_mode:
        notes = [] if before["oidc_issuer_enabled"] else ["AKS assigns the issuer URL when the issuer is enabled"]
        return Outcome(True, "updated", before, predicted, notes)
    after = issuer_state(api.put(resource_group, name, new))
    return Outcome(True, "updated", before, after)
