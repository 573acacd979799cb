# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): discovery's reading of what principals hold.

Read once for the subscription: its role definitions and assignments (one request each), its key vaults with their
access policies (one list), and its Cosmos DB accounts with their SQL roles (one list, two reads per account: its
definitions and assignments), and its PostgreSQL flexible servers with their Entra roles (one list, then each server
this run's principal administers: two ARM reads and one session). Each principal's grants are then declared as a
workload's ``roles`` would: role assignments, its entries on vaults that use access policies, its Cosmos DB SQL role
assignments, and its database role on each server (its memberships); what the site playbook would refuse is noted.
"""

from __future__ import annotations

from typing import Any

from ._azure_batch_access_policies import DATA_PREFIX, vault_above
from ._azure_batch_reads import AzureApis
from ._azure_cosmos import AccountState
from ._azure_key_vault import VaultState, entry_of
from ._azure_postgres import ServerState, read_server, role_of
from ._azure_role_assignment import assignment_state
from ._ids import InvalidScope, parse_scope
from ._inventory_fields import privileged_problem


class GrantsFound:
    def __init__(self) -> None:
        self.role_names: dict[str, str | None] = {}  # role GUID -> its name when no other role has it
        self.role_data: dict[str, tuple[str, ...]] = {}  # role GUID -> its data actions
        self.assignments: dict[str, list[Any]] = {}  # principal id (lower) -> SDK models
        self.vaults: list[VaultState] = []  # the subscription's key vaults, with their access policies
        self.accounts: list[AccountState] = []  # its Cosmos DB accounts, with their SQL roles and assignments
        self.servers: list[ServerState] = []  # its PostgreSQL flexible servers, with their Entra roles where read

    def read(self, apis: AzureApis, subscription: str) -> None:
        scope = f"/subscriptions/{subscription}"
        roles = apis.roles.list_definitions(scope)
        counts: dict[str, int] = {}
        for role in roles:
            counts[(role.name or "").lower()] = counts.get((role.name or "").lower(), 0) + 1
        self.role_names = {r.guid: r.name if r.name and counts[r.name.lower()] == 1 else None for r in roles}
        self.role_data = {r.guid: r.data_actions for r in roles}
        for model in apis.roles.list_at(scope):
            self.assignments.setdefault(str(model.principal_id).lower(), []).append(model)
        # Key vaults with access policies grant data by entry, not by role: one list of the subscription's vaults.
        if apis.vaults is not None:
            self.vaults = apis.vaults.list_all(subscription)
        # Cosmos DB grants data by its own SQL role assignments, which ARM's list of assignments does not hold.
        if apis.cosmos is not None:
            found = (apis.cosmos.account(a) for a in apis.cosmos.list_accounts(subscription))
            self.accounts = [a for a in found if a is not None]
        # A database role is the server's own: read as the server's Entra administrator, where this run is one.
        if apis.postgres is not None and apis.databases is not None:
            servers = (read_server(apis.postgres, apis.databases, s) for s in apis.postgres.list_servers(subscription))
            self.servers = [s for s in servers if s is not None]

    def declared(self, principal_id: str | None, notes: list[str]) -> list[dict[str, Any]]:
        """The principal's grants as a workload's ``roles`` declares them (problems the site would refuse noted)."""
        roles: list[dict[str, Any]] = []
        for model in self.assignments.get(str(principal_id).lower(), []) if principal_id else []:
            state = assignment_state(model)
            guid = state["role_definition_guid"]
            role: dict[str, Any] = {"role": self.role_names.get(guid) or guid, "scope": state["scope"]}
            if state["condition"]:
                role.update(condition=state["condition"], condition_version=state["condition_version"] or "2.0")
            try:
                kind = parse_scope(state["scope"]).kind
            except InvalidScope:
                kind = "unknown"
            problem = privileged_problem(guid, kind, state["scope"], "roles")
            if problem:
                notes.append(f"{problem}; without it the site playbook refuses this workload")
            vault = self._policy_vault(state["scope"])
            if vault is not None and any(a.lower().startswith(DATA_PREFIX) for a in self.role_data.get(guid, ())):
                notes.append(
                    f"role {role['role']} on key vault {vault['name']} grants nothing on its data (the vault uses "
                    "access policies): the site playbook refuses it; declare the vault's access_policy entry instead"
                )
            roles.append(role)
        for vault in self.vaults:
            entry = entry_of(vault, principal_id) if principal_id and not vault["rbac"] else None
            if entry is not None:
                roles.append({"scope": vault["id"], "access_policy": entry["permissions"]})
        for account in self.accounts:
            for assignment in account["assignments"] or []:
                if principal_id and assignment["principal_id"].lower() == principal_id.lower():
                    guid = assignment["role_definition_id"].rsplit("/", 1)[-1].lower()
                    known = next((d for d in account["definitions"] if d["guid"].lower() == guid), None)
                    roles.append({"role": known["name"] if known else guid, "scope": assignment["scope"]})
        roles += self._database_roles(principal_id, notes)
        return sorted(roles, key=lambda r: (r["scope"].lower(), str(r.get("role", ""))))

    def _database_roles(self, principal_id: str | None, notes: list[str]) -> list[dict[str, Any]]:
        """The principal's role on each server read, as an entry: its memberships, in the one database that is the
        application's (the server's only one besides PostgreSQL's and Azure's own), else ``postgres`` and a note."""
        found: list[dict[str, Any]] = []
        for server in self.servers if principal_id else []:
            user = role_of(server, str(principal_id))
            if user is None or server["roles"] is None:
                continue
            held = server["roles"][user]["member_of"] if user in server["roles"] else []
            own = [d for d in server["databases"] or [] if d not in ("postgres", "azure_maintenance", "azure_sys")]
            database = own[0] if len(own) == 1 else "postgres"
            if len(own) != 1:
                notes.append(
                    f"database role {user} on server {server['name']}: declared on database postgres; name the one "
                    f"the workload connects to (the server has {', '.join(own) or 'no other'})"
                )
            if not held:  # an entry grants at least one role: nothing to declare
                notes.append(f"database role {user} on server {server['name']} is a member of no role: not declared")
                continue
            entry: dict[str, Any] = {"scope": server["id"], "database": database, "database_roles": held}
            found.append({**entry, "database_user": user})
        return found

    def _policy_vault(self, scope: str) -> VaultState | None:
        """The vault with access policies a scope is (or is under), as listed."""
        try:
            vault_id = vault_above(scope)
        except InvalidScope:
            return None
        return next(
            (v for v in self.vaults if vault_id and v["id"].lower() == vault_id.lower() and not v["rbac"]), None
        )
