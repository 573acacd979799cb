# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): claims of clusters that no longer exist.

A cluster deleted in Azure without a teardown leaves its claim on the identities and applications it shared with
others, and its federated credentials on them (they trust an issuer nobody serves any more). Its own teardown
releases them by its marks (``teardown.yml --limit <it>`` skips its Kubernetes side); a run of another cluster that
shares them notices it too: ARM is asked whether each other claimant still exists (one request per cluster, only
for claims of clusters not converging in this run, whose place is known and in this subscription), and a claim of
one that does not is

- reported, as a warning naming the identity, the cluster and what to do (never silently), or
- with ``release_gone`` (``workload_identity_release_gone_clusters``), released by this run: the claim goes from the
  identity's (or application's) tags and its credentials from it, named as that cluster's credentials are
  (``_ownership.fic_name``) and trusting another issuer than this cluster's or a known peer's. The plan shows both.
"""

from __future__ import annotations

from typing import Any

from ._azure_batch_kinds import Ensured
from ._azure_batch_reads import Batch, BatchContext, Reads
from ._azure_batch_removal import remove_credentials
from ._inventory import WorkloadSpec
from ._ownership import Claim, application_others, fic_name
from ._results import FederatedCredentialRow, FederatedCredentialState


def find_gone(ctx: BatchContext, batch: Batch, reads: Reads) -> None:
    """The other claims on what the listed workloads use, of clusters ARM says no longer exist: warned about, or, with
    ``release_gone``, recorded in ``batch.released_claims`` for this run to release."""
    clusters = ctx.apis.clusters
    if clusters is None:
        return
    in_run = [peer for peer in batch.peers if peer.in_run]
    asked: dict[tuple[str, str | None], bool] = {}  # (cluster, place) -> it exists
    for workload in batch.workloads:
        named, claims = claims_on(batch, workload, reads)
        gone: list[Claim] = []
        for claim in claims:
            if any(claim.of(peer.cluster, peer.scope) for peer in in_run) or not claim.scope:
                continue  # its own host reads it in this run; or its place is not recorded: nothing to ask
            subscription, _slash, group = claim.scope.partition("/")
            if subscription.lower() != batch.subscription_id.lower() or not group:
                continue  # another subscription's clusters: not asked with this one's credential
            key = (claim.cluster, claim.scope)
            if key not in asked:
                asked[key] = clusters.get(group, claim.cluster) is not None
            if not asked[key]:
                gone.append(claim)
        for claim in gone:
            if batch.release_gone:
                batch.released_claims.add((claim.cluster, claim.scope))
                continue
            ctx.warnings.append(
                f"cluster {batch.cluster}: workload '{workload.name}': {named} is also claimed by "
                f"{claim.described()}, which ARM says no longer exists: its claim and credentials stay on it until "
                f"`teardown.yml --limit <that cluster's host>` releases them, or a run with "
                "workload_identity_release_gone_clusters: true on a cluster that uses it"
            )


def claims_on(batch: Batch, workload: WorkloadSpec, reads: Reads) -> tuple[str, list[Claim]]:
    """What the workload uses, as a person reads it, and the other clusters' claims on it (none on what an operator
    made: this collection records no claim there)."""
    if workload.is_application:
        app = reads.applications.get(workload.name, (None, None))[0]
        name = f"application {workload.application_unique_name or workload.application_id}"
        return name, application_others(app.get("tags"), batch.cluster, batch.cluster_scope) if app else []
    identity = reads.identity(batch.ref(workload))
    return f"identity {workload.identity_name}", batch.others(identity["tags"]) if identity else []


def release_gone(
    batch: Batch,
    workload: WorkloadSpec,
    reads: Reads,
    ensured: Ensured,
    check_mode: bool,
    sides: tuple[dict[str, Any], list[str]],
) -> list[FederatedCredentialRow]:
    """With ``release_gone``: on the workload's identity or application, the credentials of the clusters that no
    longer exist whose claims this run releases (their claims go with its tags, ``_azure_batch_shared``), deleted:
    named as theirs are, trusting neither this cluster's issuer nor a known peer's. ``sides``: the diff's before and
    the workload's notes, filled in."""
    seen, notes = sides
    _named, claims = claims_on(batch, workload, reads)
    released = [c for c in claims if batch.released(c)]
    if not released:
        return []
    gone = batch.released_claims
    alive = {batch.issuer_url, *(p.issuer_url for p in batch.peers if (p.cluster, p.scope) not in gone)} - {None}
    names = [
        f["name"]
        for f in ensured.siblings
        if f["issuer"] not in alive and any(f["name"].lower() in _names(c.cluster, f) for c in released)
    ]
    removed = remove_credentials(ensured.parent, ensured.siblings, names, check_mode)
    for row in removed:
        seen["federated_credentials"][row["name"]] = {"subject": row["subject"]}
    notes.append(
        f"released the claim of {', '.join(c.described() for c in released)}, which ARM says no longer exists"
        + (f"; its federated credentials removed: {', '.join(r['name'] for r in removed)}" if removed else "")
    )
    return removed


def _names(cluster: str, fic: FederatedCredentialState) -> set[str]:
    """The names a cluster's credential for this subject and issuer can have."""
    return {fic_name(cluster, fic["subject"]).lower(), fic_name(cluster, fic["subject"], fic["issuer"]).lower()}
