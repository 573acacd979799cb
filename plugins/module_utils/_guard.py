# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): deletion is deliberate.

Prune (and teardown of everything) deletes what this collection made and the list no longer declares. An
inventory that lost its list by mistake would delete a whole cluster's access in one run, so a plan that deletes
more than ``prune_max`` objects, or everything this collection made on the cluster, is refused, every deletion
listed, unless ``prune_confirm`` names the cluster. The same rule on both sides: the Azure batch and the
Kubernetes batch each count their own deletions.
"""

from __future__ import annotations

from ._errors import ValidationError
from ._results import AzureBatchResult, KubeBatchResult, Pruned, WorkloadResult, deleted_principal

DEFAULT_PRUNE_MAX = 5
CONFIRM_VARIABLE = "workload_identity_prune_confirm"


def azure_deletions(result: AzureBatchResult) -> tuple[int, list[str]]:
    """What an Azure batch plan deletes: how many units (an identity or application with everything on it; a
    credential or assignment on one that stays), and one line per object."""
    units, found = 0, []
    for workload in result.get("workloads", []):
        count, lines = _workload_deletions(workload)
        units += count
        found.extend(lines)
    orphaned = [o for o in result.get("orphaned_assignments", []) if o["action"] == "deleted"]
    pruned = result.get("pruned")
    if pruned:
        # A principal deleted by hand is one unit, whatever it still held (role assignments, entries, SQL roles).
        counted = {deleted_principal(o["principal_id"]) for o in orphaned}
        count, lines = _pruned_deletions(pruned, counted)
        units += count
        found.extend(lines)
    found.extend(
        f"role assignment {o['role'] or o['role_definition_guid']} @ {o['scope']} of {o['granted_to']} (orphaned)"
        for o in orphaned
    )
    units += len({o["principal_id"] for o in orphaned})  # one unit per principal, as a pruned identity is one
    return units, found


def _workload_deletions(workload: WorkloadResult) -> tuple[int, list[str]]:
    """A listed workload's: its identity whole (one unit), or its credentials and assignments one by one."""
    identity = workload["identity"]
    gone = identity.get("action") == "deleted"
    found = (
        [f"{identity.get('kind') or 'identity'} {identity.get('name')} (workload {workload['name']})"] if gone else []
    )
    fics = [f"federated credential {f['name']}" for f in workload["federated_credentials"] if f["action"] == "deleted"]
    roles = [
        f"role assignment {r['role'] or r['role_definition_guid']} @ {r['scope']}"
        for r in workload["role_assignments"]
        if r["action"] == "deleted"
    ]
    # The grants data services keep (key vault entries, Cosmos DB SQL role assignments) dropped from the list.
    data = (
        [f"access policy @ {p['vault']}" for p in workload.get("access_policies") or [] if p["action"] == "deleted"]
        + [
            f"Cosmos DB SQL role {c['role']} @ {c['scope']}"
            for c in workload.get("cosmos_roles") or []
            if c["action"] == "deleted"
        ]
        + [
            f"database role {d['user']} @ {d['server']}"
            for d in workload.get("database_roles") or []
            if d["action"] == "deleted"
        ]
    )
    return (1 if gone else len(fics) + len(roles) + len(data)), found + fics + roles + data


def _pruned_deletions(pruned: Pruned, counted: set[str]) -> tuple[int, list[str]]:
    """What prune takes: identities and applications whole, and what goes from one that stays (``counted``: holders
    already counted as a unit elsewhere)."""
    gone_names = {i["name"] for i in pruned["identities"]} | {a["name"] for a in pruned["applications"]}
    units = len(gone_names)
    found = [f"identity {i['name']} (pruned)" for i in pruned["identities"]]
    found.extend(f"application {a['name']} (pruned)" for a in pruned["applications"])
    for fic in pruned["federated_credentials"]:
        found.append(f"federated credential {fic['identity']}/{fic['name']} (pruned)")
        units += fic["identity"] not in gone_names
    for replaced in pruned.get("replaced", []):
        # Kept until no pod signs in as it, then deleted by the same run: a deletion all the same.
        found.append(
            f"{replaced.get('kind', 'identity')} {replaced['name']} (replaced for workload {replaced['workload']})"
        )
        units += 1
    for role in pruned["role_assignments"]:
        found.append(
            f"role assignment {role['role'] or role['role_definition_guid']} @ {role['scope']} of "
            f"{role['identity']} (pruned)"
        )
        units += role["identity"] not in gone_names
    # A removed identity's key vault entries and SQL role assignments go with it; those of a principal deleted by hand
    # (the orphans) are one unit per principal, as a pruned identity is one.
    data = [(p["identity"], f"access policy @ {p['vault']}") for p in pruned.get("access_policies") or []]
    data += [
        (c["identity"], f"Cosmos DB SQL role {c['role']} @ {c['scope']}") for c in pruned.get("cosmos_roles") or []
    ]
    data += [(d["identity"], f"database role {d['user']} @ {d['server']}") for d in pruned.get("database_roles") or []]
    found.extend(f"{what} of {holder} (pruned)" for holder, what in data)
    units += len({holder for holder, _what in data} - gone_names - counted)
    return units, found


def kube_deletions(result: KubeBatchResult) -> tuple[int, list[str]]:
    """What a Kubernetes batch plan deletes or releases: how many units (a workload released, a namespace deleted),
    and one line per object."""
    undone = {"deleted", "unbound", "released"}
    rows = [*result.get("controllers", []), *result.get("service_accounts", []), *result.get("namespaces", [])]
    gone = [row for row in rows if row.get("action") in undone]
    units = len({row.get("workload") for row in gone if row.get("kind") != "Namespace"})
    units += sum(1 for row in gone if row.get("kind") == "Namespace")
    found = [
        f"{row.get('kind')} {str(row.get('namespace')) + '/' if row.get('namespace') else ''}{row.get('name')} "
        f"({row.get('action')})"
        for row in gone
    ]
    return units, found


def check_deletions(
    cluster: str, units: int, deletions: list[str], everything: bool, prune_max: int, confirm: str | None
) -> None:
    """Refuse, naming every deletion, a plan that deletes more than prune_max units or all of the cluster's.

    ``everything``: the plan removes whatever this collection made on the cluster (prune with no workload listed,
    or teardown of everything).
    """
    if not deletions or confirm == cluster:
        return
    if everything:
        why = "everything this collection made on the cluster"
    elif units > prune_max:
        why = f"{units} workloads' or objects' worth, more than prune_max ({prune_max})"
    else:
        return
    listed = "; ".join(deletions)
    raise ValidationError(
        [
            f"cluster {cluster}: prune would delete {why}: {listed}. If that is intended, set "
            f"{CONFIRM_VARIABLE}: {cluster} (the modules' prune_confirm) for this run; if not, check the workload "
            "list (a misspelled or missing workload_identity_workloads declares none)"
        ]
    )
