# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): may the automation principal do what the plan will do?

Asked of ARM's permissions API (``{scope}/providers/Microsoft.Authorization/permissions``: what the caller holds at
a scope, inherited included) before any write, at each scope where the plan writes: a role assignment created,
updated or deleted; an identity made, re-tagged or deleted, and its federated credentials; a key vault's access
policy entry (at the vault) and a Cosmos DB SQL role assignment (at the account) made, changed or removed. A
missing permission is a plan problem naming the workload and field, the scope, the action and the built-in role that
grants it: the run stops before its first write rather than half-way on Azure's bare 403. Costs nothing when the
plan writes nothing, and one request per distinct scope otherwise (identities: their resource group; one identity is
asked about alone only when its resource group says no). App registrations are judged by Graph's app roles, read
from the token (``_azure_batch_apps``).

What this cannot see: deny assignments and a condition on the automation's own ``roleAssignments/write`` (the
delegation conditions of Role Based Access Control Administrator), which ARM applies at the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._azure_batch_reads import Batch, BatchContext, Reads
from ._azure_postgres import server_key
from ._azure_role_assignment import Role
from ._errors import AzureApiError
from ._ids import parse_scope, short_scope
from ._inventory_fields import cosmos_account_above
from ._results import AzureBatchResult

ASSIGN = "Microsoft.Authorization/roleAssignments/write"
UNASSIGN = "Microsoft.Authorization/roleAssignments/delete"
IDENTITY_WRITE = "Microsoft.ManagedIdentity/userAssignedIdentities/write"
IDENTITY_DELETE = "Microsoft.ManagedIdentity/userAssignedIdentities/delete"
TRUST_WRITE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write"
TRUST_DELETE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete"
POLICY_WRITE = "Microsoft.KeyVault/vaults/accessPolicies/write"  # add, replace and remove alike
SQL_ASSIGN = "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments/write"
SQL_UNASSIGN = "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments/delete"
SERVER_WRITE = "Microsoft.DBforPostgreSQL/flexibleServers/write"  # Entra sign-ins enabled (database_admin_name)
ENTRA_ADMIN_WRITE = "Microsoft.DBforPostgreSQL/flexibleServers/administrators/write"

# The least privileged built-in role that grants each action.
ROLE_TO_GRANT = {
    ASSIGN: "Role Based Access Control Administrator (or User Access Administrator)",
    UNASSIGN: "Role Based Access Control Administrator (or User Access Administrator)",
    IDENTITY_WRITE: "Managed Identity Contributor",
    IDENTITY_DELETE: "Managed Identity Contributor",
    TRUST_WRITE: "Managed Identity Contributor",
    TRUST_DELETE: "Managed Identity Contributor",
    POLICY_WRITE: "Key Vault Contributor",
    SQL_ASSIGN: "DocumentDB Account Contributor (or a custom role with sqlRoleAssignments/*)",
    SQL_UNASSIGN: "DocumentDB Account Contributor (or a custom role with sqlRoleAssignments/*)",
    SERVER_WRITE: "Contributor on the server (or a custom role with flexibleServers/write)",
    ENTRA_ADMIN_WRITE: "Contributor on the server (or a custom role with flexibleServers/administrators/write)",
}
WRITES = ("created", "updated")


@dataclass(frozen=True)
class Need:
    """One action the plan takes at a scope, and where in the inventory (or the plan) it comes from."""

    scope: str
    action: str
    where: str  # "cluster c: workload 'w': roles[0]: scope", or what prune removes
    identity: str | None = None  # an identity's own id: asked about alone when its resource group says no


def needs(batch: Batch, planned: AzureBatchResult, reads: Reads) -> list[Need]:
    """Every write of the plan, as (scope, action)."""
    found: list[Need] = []
    sub = batch.subscription_id
    for row in planned["workloads"]:
        where = f"cluster {batch.cluster}: workload '{row['name']}'"
        identity = row["identity"]
        if identity.get("kind") != "application" and identity.get("resource_group"):
            group = f"/subscriptions/{sub}/resourceGroups/{identity['resource_group']}"
            own = str(identity.get("id") or "") if identity["action"] != "created" else None
            if identity["action"] in WRITES:
                found.append(Need(group, IDENTITY_WRITE, f"{where}: identity_name", own))
            if any(f["action"] in WRITES for f in row["federated_credentials"]):
                found.append(Need(group, TRUST_WRITE, f"{where}: service_account (its federated credential)", own))
        for position, role in enumerate(row["role_assignments"]):
            if role["action"] in WRITES:
                found.append(Need(parse_scope(role["scope"]).path, ASSIGN, f"{where}: roles[{position}]: scope"))
        found += _data_grant_needs(row.get("access_policies") or [], row.get("cosmos_roles") or [], where)
    found += _server_set_up_needs(batch, planned, reads)
    pruned = planned["pruned"]
    prune = f"cluster {batch.cluster}: prune"
    for gone in pruned["identities"]:
        group = f"/subscriptions/{sub}/resourceGroups/{gone['resource_group']}"
        found.append(Need(group, IDENTITY_DELETE, f"{prune}: identity {gone['name']}"))
    for released in pruned["released"]:
        if released["resource_group"]:  # an identity's claim is one of its tags
            group = f"/subscriptions/{sub}/resourceGroups/{released['resource_group']}"
            found.append(Need(group, IDENTITY_WRITE, f"{prune}: identity {released['name']} (its claim)"))
    for fic in pruned["federated_credentials"]:
        known = next((i for i in reads.identities.values() if i["name"] == fic["identity"]), None)
        if known is not None:  # an application's are Graph's
            group = f"/subscriptions/{sub}/resourceGroups/{known['resource_group']}"
            found.append(Need(group, TRUST_DELETE, f"{prune}: federated credential {fic['identity']}/{fic['name']}"))
    for assignment in pruned["role_assignments"]:
        what = f"{prune}: role assignment {assignment['role'] or assignment['role_definition_guid']}"
        found.append(Need(parse_scope(assignment["scope"]).path, UNASSIGN, f"{what} of {assignment['identity']}"))
    for removed in pruned.get("access_policies") or []:
        found += _data_grant_needs([{**removed, "action": "deleted"}], [], f"{prune}: {removed['identity']}")
    for removed_role in pruned.get("cosmos_roles") or []:
        found += _data_grant_needs([], [{**removed_role, "action": "deleted"}], f"{prune}: {removed_role['identity']}")
    for orphan in planned["orphaned_assignments"]:
        if orphan["action"] == "deleted":
            what = f"{prune}: orphaned role assignment {orphan['role'] or orphan['role_definition_guid']}"
            found.append(Need(parse_scope(orphan["scope"]).path, UNASSIGN, what))
    return found


def _server_set_up_needs(batch: Batch, planned: AzureBatchResult, reads: Reads) -> list[Need]:
    """With database_admin_name: the ARM writes that set up a server the plan makes database roles on (its Entra
    sign-ins, this run's principal as its Entra administrator)."""
    if not batch.database_admin_name:
        return []
    found: list[Need] = []
    named = {server_key(d["server"]) for row in planned["workloads"] for d in row.get("database_roles") or []}
    for key in sorted(named):
        state = reads.postgres_servers.get(key)
        if state is None or state["admin_role"]:
            continue
        where = f"cluster {batch.cluster}: database_admin_name (PostgreSQL flexible server {state['name']})"
        if not state["entra"]:
            found.append(Need(state["id"], SERVER_WRITE, where))
        found.append(Need(state["id"], ENTRA_ADMIN_WRITE, where))
    return found


def _data_grant_needs(policies: list[Any], sql_roles: list[Any], where: str) -> list[Need]:
    """The writes of a workload's (or a removed identity's) key vault entries and Cosmos DB SQL role assignments."""
    found = [
        Need(p["vault"], POLICY_WRITE, f"{where}: roles (access_policy on key vault {short_scope(p['vault'])})")
        for p in policies
        if p["action"] != "unchanged"
    ]
    for role in sql_roles:
        if role["action"] in ("created", "deleted"):
            account = cosmos_account_above(role["scope"]) or role["scope"]
            action = SQL_ASSIGN if role["action"] == "created" else SQL_UNASSIGN
            found.append(Need(account, action, f"{where}: roles ({role['role']} at {short_scope(role['scope'])})"))
    return found


def permission_problems(ctx: BatchContext, batch: Batch, planned: AzureBatchResult, reads: Reads) -> list[str]:
    """The plan's writes the automation principal may not make, each naming what to grant and where."""
    held: dict[str, Role | None] = {}  # scope key -> what the caller holds there (None: not readable)

    def allows(scope: str, action: str) -> bool | None:
        key = parse_scope(scope).key
        if key not in held:
            try:
                blocks = ctx.roles.permissions(scope)
            except AzureApiError as exc:
                # Not readable by the automation, or a scope ARM answers no permissions at (a management group's,
                # say): not checked, and said; a throttled or failing ARM fails the run as any read does.
                if exc.status is None or not 400 <= exc.status < 500 or exc.status in (401, 429):
                    raise
                ctx.warnings.append(
                    f"cluster {batch.cluster}: the automation principal's permissions at {scope} could not be read "
                    f"({exc.code}): not checked before the run"
                )
                blocks = None
            held[key] = None if blocks is None else Role("", "", None, blocks)
        role = held[key]
        return None if role is None else role.allows(action)

    problems: list[str] = []
    for need in needs(batch, planned, reads):
        allowed = allows(need.scope, need.action)
        if allowed is False and need.identity:
            allowed = allows(need.identity, need.action)  # granted on the identity itself, not its group
        if allowed is False:
            problems.append(
                f"{need.where}: the automation principal may not {need.action} at {need.scope} (ARM's permissions "
                f"API); grant it {ROLE_TO_GRANT[need.action]} there or above, then run again (nothing was changed)"
            )
    return problems
