# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): an AKS cluster's OIDC issuer.

The cluster is read and written as raw JSON, so a PUT carries back every field exactly as AKS
gave it (no SDK model in between to drop fields it does not know) and changes only
``oidcIssuerProfile.enabled`` and, when asked, ``securityProfile.workloadIdentity.enabled``.
Its two requests go through an ARM client's pipeline (``_azure_arm_rest``), as Key Vault's do:
the container service SDK is not imported for them (about 0.15 s of every module run that reads a
cluster: the plan's, the converge's, cluster_oidc_issuer's).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from ._azure_arm_rest import ArmRestClient
from ._errors import AzureApiError, ValidationError
from ._ids import cluster_id
from ._results import IssuerState, Outcome
from ._retry import RetryPolicy

# What azure-mgmt-containerservice 41 sends; the cluster is read and written back at the same version.
API_VERSION = "2026-08-01"


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


# Before the issuer is enabled its URL is unknown: a plan (check mode) names this one, which no credential is ever made
# with (the converge runs once AKS has assigned the real one).
UNKNOWN_ISSUER = "https://issuer-known-once-enabled.invalid/"
# The cluster's issuer in the diff of a plan that read it (workload_identities' read_issuer), beside its workloads'
# names (which cannot hold parentheses or spaces).
ISSUER_DIFF_KEY = "(cluster OIDC issuer)"

# provisioningState values after which an AKS operation is over.
TERMINAL_STATES = ("Succeeded", "Failed", "Canceled")
OPERATION_IN_PROGRESS = "OperationNotAllowed"  # AKS's 409 while another operation runs on the cluster


class ClusterApi:
    """Reads, and one long-running update: sent once, then followed by reading the cluster until it settles.

    Polling reads the cluster (each read retried on its own): a failed poll is polled again, never re-sent, so
    an update is not started twice. A cluster busy with another operation (an upgrade, a scale) is waited for,
    read again and only then changed, so the update never carries back a stale copy over what that operation did.
    """

    def __init__(
        self,
        client: Any,
        subscription_id: str,
        policy: RetryPolicy | None = None,
        polling_interval: float = 5,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 3600,
    ) -> None:
        """``client``: an ARM SDK client of the subscription whose pipeline carries the requests: msi's (as Key
        Vault's ride authorization's). Not the container service SDK's: its pipeline formats URLs from a template."""
        self.rest = ArmRestClient(client, API_VERSION, policy)
        self.subscription_id = subscription_id
        self.polling_interval = polling_interval
        self.sleep = sleep
        self.max_wait = max_wait

    def get(self, resource_group: str, name: str) -> dict[str, Any] | None:
        return self.rest.get_or_none(cluster_id(self.subscription_id, resource_group, name), f"get cluster {name}")

    def settled(self, resource_group: str, name: str, interval: float | None = None) -> dict[str, Any]:
        """The cluster once no operation is running on it, read every ``interval`` seconds (what AKS asked for with
        Retry-After when it accepted the update), else every polling_interval; up to max_wait."""
        interval = interval or self.polling_interval
        waited = 0.0
        while True:
            body = self.get(resource_group, name)
            if body is None:
                raise AzureApiError(f"cluster {name} disappeared", status=404, operation=f"wait for cluster {name}")
            if issuer_state(body)["provisioning_state"] in TERMINAL_STATES + (None,):
                return body
            if waited >= self.max_wait:
                state = issuer_state(body)["provisioning_state"]
                raise AzureApiError(
                    f"cluster {name} is still {state} after {int(waited)} s", operation=f"wait for cluster {name}"
                )
            self.sleep(interval)
            waited += interval

    def send(self, resource_group: str, name: str, body: dict[str, Any]) -> float | None:
        """Start the update (the PUT alone, not polled here): retried only while AKS has not accepted it. Returns the
        seconds AKS asked the client to wait between polls (its Retry-After), if it said."""
        _accepted, interval = self.rest.start(
            "PUT", cluster_id(self.subscription_id, resource_group, name), f"update cluster {name}", body
        )
        return interval


class ClusterNotFound(ValidationError):
    """ARM says the cluster does not exist (deleted, or never made in that resource group)."""


def _changed(body: dict[str, Any], oidc: bool, workload_identity: bool | None) -> dict[str, Any]:
    new = copy.deepcopy(body)
    props = new.setdefault("properties", {})
    props.setdefault("oidcIssuerProfile", {})["enabled"] = oidc
    if workload_identity is not None:
        security = props.get("securityProfile") or {}
        security.setdefault("workloadIdentity", {})["enabled"] = workload_identity
        props["securityProfile"] = security
    return new


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
        raise ClusterNotFound([f"cluster: no AKS cluster {name} in resource group {resource_group}"])
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
    # A Failed cluster records the state its last operation was asked for, not what it carried out (an issuer it was
    # to enable may not be served): the update is sent again, as `az aks update` reconciles a failed cluster.
    failed = before["provisioning_state"] == "Failed"
    if (want_oidc, want_workload) == (
        before["oidc_issuer_enabled"],
        before["workload_identity_enabled"],
    ) and not failed:
        return Outcome(False, "unchanged", before, before)
    predicted = IssuerState(**{**before, "oidc_issuer_enabled": want_oidc, "workload_identity_enabled": want_workload})
    reconcile = [f"cluster {name} is Failed (its last operation failed): the update is sent again to reconcile it"]
    if check_mode:
        notes = [] if before["oidc_issuer_enabled"] else ["AKS assigns the issuer URL when the issuer is enabled"]
        notes += reconcile if failed else []
        if before["provisioning_state"] not in TERMINAL_STATES + (None,):
            notes.append(f"the cluster is {before['provisioning_state']}: the run waits for that operation first")
        return Outcome(True, "updated", before, predicted, notes)
    while True:
        current = api.settled(resource_group, name)
        try:
            interval = api.send(resource_group, name, _changed(current, want_oidc, workload_identity))
            break
        except AzureApiError as exc:
            if exc.status != 409 or exc.code != OPERATION_IN_PROGRESS:
                raise
            # Another operation started between the read and the update: wait for it, read again, change that.
    after = issuer_state(api.settled(resource_group, name, interval))
    if after["provisioning_state"] != "Succeeded":
        raise AzureApiError(
            f"the update of cluster {name} ended {after['provisioning_state']} (its provisioningState); AKS keeps the "
            "cluster as the operation left it: see the cluster's activity log, then run again",
            code=f"Operation{after['provisioning_state']}",
            operation=f"update cluster {name}",
        )
    return Outcome(True, "updated", before, after, reconcile if failed else [])
