# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what letting go of an identity or application removes.

Both identity kinds remove this cluster's federated credentials the same way, through the engine, and say what
letting go of a shared one did in the same shape (``Released``).
"""

from __future__ import annotations

from typing import NamedTuple

from ._azure_batch_reads import Batch
from ._azure_federated_credential import FicParent, ensure_federated_credential
from ._ownership import fic_name, own_credential_names
from ._results import FederatedCredentialRow, FederatedCredentialState, PrunedAssignment


class Released(NamedTuple):
    """What letting go of a shared identity did: this cluster's credentials removed, and ``released`` (its claim
    removed, others' left), ``deleted`` (no other claim was left by then: the identity went whole, ``roles`` first),
    or ``kept`` (nothing of this cluster's was on it)."""

    credentials: list[FederatedCredentialRow]
    action: str
    roles: list[PrunedAssignment]


def trusted_elsewhere(batch: Batch, label: str, listed: list[FederatedCredentialState], warnings: list[str]) -> bool:
    """Before deleting an identity or application no cluster claims any more: does a credential of another issuer than
    this cluster's (``listed``: read afresh) still trust it? Then a cluster may still sign in with it (its claim lost
    to a writer of whole tags, or its credential made by hand): it stays, and the run says so. Credentials are objects
    of their own, each created and deleted atomically, so unlike tags they are never lost to a concurrent writer."""
    others = sorted({f["issuer"] for f in listed if f["issuer"] != batch.issuer_url})
    if others:
        warnings.append(
            f"cluster {batch.cluster}: {label} is claimed by no cluster any more, but federated credentials of other "
            f"issuers trust it ({', '.join(others)}): kept, as a cluster may still sign in with it; delete it by hand "
            "once nothing uses it"
        )
    return bool(others)


def this_clusters_credentials(
    batch: Batch, listed: list[FederatedCredentialState], subjects: list[str] | None
) -> list[str]:
    """This cluster's credentials on a shared identity or application: for these subjects (named by ``fic_name``,
    trusting its issuer when known); for none given, every one named after it that trusts its issuer (none when
    the issuer is unknown: the name alone could be another cluster's, ``aks-dev-2`` starts like ``aks-dev``)."""
    if subjects is not None:
        return own_credential_names(batch.cluster, subjects, batch.issuer_url, listed)
    prefix = f"{batch.cluster}-".lower()
    return [f["name"] for f in listed if f["issuer"] == batch.issuer_url and f["name"].lower().startswith(prefix)]


def stale_credentials(batch: Batch, listed: list[FederatedCredentialState], subjects: list[str]) -> list[str]:
    """On an identity or application of ours that a workload still uses: this cluster's credentials (trusting its
    issuer) for subjects it no longer declares."""
    wanted = {fic_name(batch.cluster, s).lower() for s in subjects}
    return [
        f["name"]
        for f in listed
        if f["issuer"] == batch.issuer_url and f["name"].lower() not in wanted and f["subject"] not in subjects
    ]


def remove_credentials(
    parent: FicParent, listed: list[FederatedCredentialState], names: list[str], check_mode: bool
) -> list[FederatedCredentialRow]:
    """The named credentials, through the engine; returns what was (or would be) deleted."""
    removed: list[FederatedCredentialRow] = []
    for name in names:
        outcome = ensure_federated_credential(
            parent,
            name,
            state="absent",
            issuer=None,
            subject=None,
            audiences=None,
            check_mode=check_mode,
            siblings=listed,
        )
        if outcome.before is not None and outcome.action == "deleted":
            removed.append({"name": outcome.before["name"], "subject": outcome.before["subject"], "action": "deleted"})
    return removed
