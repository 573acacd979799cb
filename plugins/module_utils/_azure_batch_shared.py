# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): one identity used by workloads on several clusters.

Multi-region and blue-green clusters run the same workload, which keeps one identity (its client id, its role
assignments) with one federated credential per cluster issuer. An identity is shared when workloads of several
clusters name it explicitly (``identity_name``; a default name carries its cluster's, so it never is).

- Each cluster that uses an identity this collection made records a claim on it (``_ownership.Claim``). Every
  cluster converging in the run writes the claims of all of them, so that clusters converging one identity at the
  same time write the same tags (no update lost between them), and the first of them (by name) is the one it is
  made for.
- The declarations must agree: every cluster of the inventory that names the identity declares the same role
  assignments (scope, role, condition) and tags. A difference is refused before any write, naming both clusters and
  the difference: a union would grant one cluster's workload what another's declares, without anyone seeing it.
- A cluster not in the inventory that uses the identity (its claim is there) is not known to agree: a run changes
  none of the identity's role assignments while it does, and says so.
- The 20 federated credentials Azure allows per identity are counted for the whole inventory before any write.
- Letting go (prune, teardown) of an identity another cluster still uses removes only this cluster's credentials
  and its claim; the identity and its role assignments go with the last claim.
"""

from __future__ import annotations

from typing import Any

from ._azure_batch_reads import Batch, BatchContext, Peer, Reads, Resolved, ref_key, resolve, role_key, shared_key
from ._errors import ValidationError
from ._ids import parse_role, parse_scope
from ._inventory import WorkloadSpec, validate_workloads
from ._limits import FICS_PER_IDENTITY
from ._ownership import (
    Claim,
    application_claims,
    application_format_mark,
    application_made_for,
    application_marks,
    application_with_claims,
    claims,
    cluster_scope,
    fic_name,
    format_mark,
    identity_marks,
    made_for,
    tags_with_record,
    with_claims,
)


def peers_from(entries: list[dict[str, Any]], subscription_id: str, cluster: str, scope: str | None) -> list[Peer]:
    """The inventory's other clusters, as the ``shared_with`` option gives them, with their workloads that name an
    identity in this subscription explicitly. A workload of theirs that is not valid is left out: their own run
    reports it."""
    found: list[Peer] = []
    for entry in entries:
        subscription = entry.get("subscription_id") or subscription_id
        if subscription.lower() != subscription_id.lower():
            continue  # another subscription's identities are other identities
        where = cluster_scope(subscription, entry.get("cluster_resource_group"))
        name = str(entry["cluster_name"])
        if name == cluster and (where is None or scope is None or where == scope):
            continue  # this cluster itself, listed under another inventory name
        validated = validate_workloads(
            name,
            entry.get("workloads") or [],
            identity_resource_group=entry.get("identity_resource_group"),
            allow_privileged_roles=True,
        )
        named = [w for w in validated.specs if shared_key(w, w.identity_resource_group or "") is not None]
        if named:
            found.append(Peer(name, where, bool(entry.get("in_run", True)), named, entry.get("issuer_url")))
    return found


RoleDeclared = tuple[str, str, str]  # (scope key, role definition GUID, or the reference as written; condition)


def _roles_of(ctx: BatchContext, workload: WorkloadSpec, reads: Reads) -> dict[RoleDeclared, str]:
    """A workload's declared assignments, comparable across clusters (a role by name or by GUID is one), each with
    how a person reads it."""
    found: dict[RoleDeclared, str] = {}
    for spec in workload.roles:
        try:
            role = resolve(ctx, spec, reads)
            ref, name = role.guid, role.name or role.guid
        except ValidationError:
            ref, name = spec.role.lower(), spec.role  # its own cluster reports it
        condition = " ".join((spec.condition or "").split())
        found[(parse_scope(spec.scope).key, ref, condition)] = f"{name} @ {spec.scope}" + (
            " (with a condition)" if condition else ""
        )
    return found


def named(workload: WorkloadSpec) -> str:
    """The workload's identity or application, as a person reads it."""
    if workload.is_application:
        return f"application {workload.application_unique_name or workload.application_id}"
    return f"identity {workload.identity_name}"


def needed_by_others(ctx: BatchContext, batch: Batch, workload: WorkloadSpec, reads: Reads) -> set[tuple[str, str]]:
    """The (scope key, role GUID) pairs that the inventory's other clusters naming this workload's identity declare
    and keep using (not torn down in this run): an assignment this cluster created there may be one they need."""
    return {
        (key[0], key[1])
        for peer, theirs in batch.sharing(workload)
        if not peer.in_run
        for key in _roles_of(ctx, theirs, reads)
    }


def disagreements(ctx: BatchContext, batch: Batch, workload: WorkloadSpec, reads: Reads) -> list[str]:
    """Each other cluster whose workload names this identity with other roles or tags: one problem each."""
    problems: list[str] = []
    mine = _roles_of(ctx, workload, reads)
    for peer, theirs in batch.sharing(workload):
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        other = f"cluster {peer.cluster} (workload '{theirs.name}')"
        shared = f"{named(workload)} is shared with {other}"
        roles = _roles_of(ctx, theirs, reads)
        if set(roles) != set(mine):
            only_here = sorted(mine[k] for k in set(mine) - set(roles)) or ["none"]
            only_there = sorted(roles[k] for k in set(roles) - set(mine)) or ["none"]
            problems.append(
                f"{where}: roles: {shared}, which declares other role assignments (only on {batch.cluster}: "
                f"{', '.join(only_here)}; only on {peer.cluster}: {', '.join(only_there)}); a shared identity holds "
                "one set of assignments: declare them identically on every cluster that names it"
            )
        if theirs.tags != workload.tags:
            keys = sorted(
                k for k in set(theirs.tags) | set(workload.tags) if theirs.tags.get(k) != workload.tags.get(k)
            )
            problems.append(
                f"{where}: tags: {shared}, which declares other tags ({', '.join(keys)} differ); declare them "
                "identically on every cluster that names it"
            )
    return problems


def credential_problem(batch: Batch, workload: WorkloadSpec, reads: Reads) -> str | None:
    """The 20-credential limit for the whole inventory: the credentials already on the identity that none of its
    clusters will keep, plus one per subject of every cluster's workload that names it."""
    sharing = batch.sharing(workload)
    if not sharing:
        return None
    users: list[tuple[str, str | None, WorkloadSpec]] = [(batch.cluster, batch.issuer_url, workload)]
    users += [(peer.cluster, peer.issuer_url, theirs) for peer, theirs in sharing]
    names = {fic_name(c, s).lower() for c, _i, w in users for s in w.subjects}
    trusted = {(i, s) for _c, i, w in users if i for s in w.subjects}
    if workload.is_application:
        app = reads.applications.get(workload.name, (None, None))[0]
        existing = reads.app_fics.get(str(app["id"]), []) if app else []
    else:
        existing = reads.fics.get(ref_key(batch.ref(workload)), [])
    others = [f for f in existing if f["name"].lower() not in names and (f["issuer"], f["subject"]) not in trusted]
    needed = len(others) + sum(len(w.subjects) for _c, _i, w in users)
    if needed <= FICS_PER_IDENTITY:
        return None
    counts = ", ".join(f"{c} ({len(w.subjects)})" for c, _i, w in sorted(users, key=lambda u: u[0]))
    already = f", and {len(others)} already on it for others" if others else ""
    field = "application_unique_name" if workload.is_application else "identity_name"
    return (
        f"cluster {batch.cluster}: workload '{workload.name}': {field}: {named(workload)} would need {needed} "
        f"federated credentials, more than Azure allows per identity ({FICS_PER_IDENTITY}): clusters {counts}"
        f"{already}; give a group of these clusters another {field} (an identity, or an app registration, takes "
        f"{FICS_PER_IDENTITY} credentials)"
    )


def outside_claims(batch: Batch, others: list[Claim]) -> list[Claim]:
    """The other clusters that use this identity (or application) and that the inventory does not declare: nothing
    says they agree."""
    return [c for c in others if not any(c.of(peer.cluster, peer.scope) for peer in batch.peers)]


def outside_problem(
    batch: Batch, workload: WorkloadSpec, outside: list[Claim], resolved: Resolved, reads: Reads, held: list[Any]
) -> str | None:
    """An identity a cluster outside the inventory uses: refused unless its role assignments are exactly the declared
    ones. A run would otherwise change them under that cluster, or hand this workload what it does not declare."""
    if not outside or workload.named_by_default:
        return None  # a default name is never shared: one used elsewhere is refused as such
    declared: dict[tuple[str, str], str] = {}
    for spec in workload.roles:
        role = resolved.get(role_key(workload, spec.role, spec.scope))
        if role is not None:
            declared[(parse_scope(spec.scope).key, role.guid)] = f"{role.name or role.guid} @ {spec.scope}"
    holds = {
        (parse_scope(m.scope).key, parse_role(m.role_definition_id).guid): (
            f"{reads.role_of(batch.subscription_id, m).name or parse_role(m.role_definition_id).guid} @ {m.scope}"
        )
        for m in held
    }
    missing = sorted(v for k, v in declared.items() if k not in holds)
    extra = sorted(v for k, v in holds.items() if k not in declared)
    if not missing and not extra:
        return None
    what = "; ".join(
        [
            *([f"it would grant {', '.join(missing)}"] if missing else []),
            *([f"it also holds {', '.join(extra)}"] if extra else []),
        ]
    )
    return (
        f"roles: {named(workload)} is also used by {', '.join(c.described() for c in outside)}, which this inventory "
        "does not declare, so nothing says it agrees: this run changes none of its role assignments, and uses it only "
        f"when it holds exactly the declared ones ({what}); declare it from an inventory that declares every cluster "
        f"that uses it (a cluster that no longer exists: remove its claim, {', '.join(c.tag for c in outside)}, from "
        f"the {'application' if workload.is_application else 'identity'})"
    )


def _run_claimants(batch: Batch, workload: WorkloadSpec) -> list[tuple[str, str | None, WorkloadSpec]]:
    run: list[tuple[str, str | None, WorkloadSpec]] = [(batch.cluster, batch.cluster_scope, workload)]
    return run + [(peer.cluster, peer.scope, theirs) for peer, theirs in batch.sharing(workload) if peer.in_run]


def application_tags(batch: Batch, workload: WorkloadSpec, current: list[str] | None) -> list[str]:
    """As :func:`identity_tags`, for an application this collection makes or uses (its string tags)."""
    run = _run_claimants(batch, workload)
    if current is None:
        cluster, scope, first = min(run, key=lambda u: (u[0], u[1] or ""))
        marks = [*application_marks(cluster, first.namespace, first.name, scope), application_format_mark()]
    elif application_made_for(current, batch.cluster, batch.cluster_scope):
        marks = application_marks(batch.cluster, workload.namespace, workload.name, batch.cluster_scope)
    else:
        marks = []
    tags = list(dict.fromkeys([*(current or []), *marks]))
    kept = [c for c in application_claims(current) if not batch.released(c)]
    return application_with_claims(tags, kept, [(c, s) for c, s, _w in run])


def identity_tags(batch: Batch, workload: WorkloadSpec, current: dict[str, str] | None) -> dict[str, str]:
    """The tags of an identity this collection makes or uses for the workload: the inventory's, the marks of the
    cluster and workload it is made for (the first of the run's clusters that name it, by name, so that every one of
    them writes the same; kept as they are on one made for another cluster), and the claim of each of them."""
    run = _run_claimants(batch, workload)
    if current is None:
        cluster, scope, first = min(run, key=lambda u: (u[0], u[1] or ""))
        marks = {**identity_marks(cluster, first.namespace, first.service_account, first.name, scope), **format_mark()}
    elif made_for(current, batch.cluster, batch.cluster_scope):
        marks = identity_marks(
            batch.cluster, workload.namespace, workload.service_account, workload.name, batch.cluster_scope
        )
    else:
        marks = {}
    tags = tags_with_record(current, workload.tags, marks)
    kept = [c for c in claims(current) if not batch.released(c)] if current else []
    return with_claims(tags, kept, [(c, s) for c, s, _w in run])
