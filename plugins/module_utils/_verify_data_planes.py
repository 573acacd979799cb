# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): verification on the services' own data planes.

ARM's permissions API lists a role's data actions wherever the role is assigned; only the service can say whether it
lets the workload in (a vault with access policies ignores role assignments for its data; a condition, a firewall, a
storage account that refuses Entra tokens). Where the workload declares it may read, one harmless read with its own
token, on the service itself:

- key vaults: each access policy entry as the vault holds it, then its secrets' names or a secret no one has
  (``ArmProbe.vault_read``; never a value), by an entry or by a role with Key Vault data actions;
- blob containers: a role that lets it read blobs, at a container, lists at most one blob's name
  (``ArmProbe.blob_list``);
- PostgreSQL flexible servers: each database role as the server holds it, then a sign-in as the workload
  (``_verify_databases``);
- Cosmos DB: each SQL role assignment as the account holds it (the account's own role system, which ARM's
  permissions API knows nothing of), then, as the workload, the metadata of its scope (the account, a database or a
  container: what ``readMetadata`` allows) and, where the role reads items, an item no one has in the container
  (``ArmProbe.cosmos_read``; never an item's content).

A refusal is a finding with its remedy.
"""

from __future__ import annotations

import re
from typing import Any

from ._azure_batch_access_policies import policy_key, vault_above
from ._azure_batch_cosmos import account_key, declared_grant_keys, grant_key
from ._azure_batch_reads import Reads
from ._azure_cosmos import definition_of, held
from ._azure_key_vault import covers, entry_of
from ._azure_role_assignment import Role, action_matches
from ._ids import short_scope
from ._inventory import RoleSpec, WorkloadSpec
from ._report import policy_text
from ._verify_checks import described_assignment, rerun
from ._verify_databases import DatabaseLogins
from ._verify_findings import Verdict
from ._verify_probes import ArmProbe

# A blob container's id, and the data action that lists (and reads) its blobs.
CONTAINER = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/(?P<account>[^/]+)"
    r"/blobServices/default/containers/(?P<container>[^/]+)",
    re.IGNORECASE,
)
READ_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
STORAGE_REMEDY = (
    "look for a condition on the assignment, a deny assignment, the account's firewall or private endpoint, or "
    "allowSharedKeyAccess-only settings; a new assignment can take minutes to apply"
)
COSMOS_ITEMS = "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items"
# The data actions that read a vault's secrets: their names, and their values.
SECRET_NAMES = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
SECRET_VALUES = "Microsoft.KeyVault/vaults/secrets/getSecret/action"


class DataPlanes:
    """One workload's grants on the services' data planes, checked where they take effect (handed the verification's
    reads)."""

    def __init__(self, reads: Reads, arm: ArmProbe, cluster: str) -> None:
        self.reads, self.arm, self.cluster = reads, arm, cluster
        self.databases = DatabaseLogins(reads, cluster)  # database roles, proven by signing in as the workload

    def check(
        self,
        principal_id: str,
        name: str,
        workload: WorkloadSpec,
        roles: list[tuple[RoleSpec, Role | None]],
        credential: Any,
        verdict: Verdict,
    ) -> int:
        """Each access policy entry as the vault holds it, one read on each vault the workload may read secrets from
        (by its entry, or by a role) and on each container it may read blobs from, each Cosmos DB SQL role as its
        account holds it; how many services answered yes."""
        asked: dict[str, bool] = {}  # vault key (or Cosmos DB scope) -> it let the workload read
        self._sql_roles(principal_id, name, workload, (len(roles), credential), verdict, asked)
        for policy in workload.access_policies:
            vault = self.reads.vaults.get(policy_key(policy.vault))
            where = f"access policy on key vault {short_scope(policy.vault)}"
            if vault is None or vault["rbac"]:
                why = "does not exist" if vault is None else "uses Azure RBAC, where an access policy grants nothing"
                verdict.find("permissions", f"{where}: the vault {why}", "correct the workload's roles")
                continue
            held = entry_of(vault, principal_id)
            if held is None or not covers(held["permissions"], {k: list(v) for k, v in policy.permissions.items()}):
                verdict.find(
                    "permissions",
                    f"{where}: the vault's entry for {name} grants "
                    f"{policy_text(held['permissions']) if held else 'nothing'}, not all that is declared",
                    rerun(self.cluster, "it writes the entry"),
                )
                continue
            secrets = {p.lower() for p in policy.permissions.get("secrets", ())}
            if secrets & {"get", "list", "all"}:
                listing = "list" in secrets or "all" in secrets
                self._read_vault(vault, credential, listing, (where, False), verdict, asked)
        for spec, role in roles:
            if role is None:
                continue
            what = f"{described_assignment(role.name or spec.role, role.guid, spec.scope)}, on the service itself"
            vault_id = vault_above(spec.scope)
            vault = self.reads.vaults.get(policy_key(vault_id)) if vault_id else None
            names, values = role.grants(SECRET_NAMES), role.grants(SECRET_VALUES)
            if vault is not None and (names or values):
                self._read_vault(vault, credential, names, (what, True), verdict, asked)
            container = CONTAINER.fullmatch(spec.scope)
            if container is not None and role.grants(READ_BLOBS) and spec.scope.lower() not in asked:
                status, message = self.arm.blob_list(credential, container["account"], container["container"])
                asked[spec.scope.lower()] = status == 200
                if status != 200:
                    verdict.find(
                        "permissions", f"{what}: the storage account {refusal(status, message)}", STORAGE_REMEDY
                    )
        first = len(roles) + len(workload.cosmos_roles)
        return sum(asked.values()) + self.databases.check(principal_id, name, workload, (first, credential), verdict)

    def _sql_roles(
        self,
        principal_id: str,
        name: str,
        workload: WorkloadSpec,
        place: tuple[int, Any],
        verdict: Verdict,
        asked: dict[str, bool],
    ) -> None:
        """Each declared SQL role as its account holds it, then read as the workload on the account's data plane
        (``place``: the first SQL role's place after the ARM roles in the verdict, and the workload's credential)."""
        first, credential = place
        for index, spec in enumerate(workload.cosmos_roles, start=first):
            account = self.reads.cosmos_accounts.get(account_key(spec.account))
            definition = definition_of(account, spec.role) if account is not None else None
            what = f"Cosmos DB SQL role {spec.role} @ {short_scope(spec.scope)}"
            if account is None or definition is None:
                why = "the account does not exist" if account is None else "the account defines no such SQL role"
                verdict.roles[index]["granted"] = False
                verdict.find("permissions", f"{what}: {why}", "correct the workload's roles")
                continue
            found = held(account, principal_id, definition["id"], spec.scope)
            verdict.roles[index]["granted"] = found is not None
            if found is None:
                verdict.find(
                    "permissions",
                    f"{what}: Cosmos DB account {account['name']} holds no such assignment for {name}",
                    rerun(self.cluster, "it assigns the SQL role"),
                )
            elif spec.scope.lower() not in asked:
                reads_items = any(action_matches(a, f"{COSMOS_ITEMS}/read") for a in definition["data_actions"])
                asked[spec.scope.lower()] = self._read_cosmos(account["name"], spec, reads_items, credential, verdict)

    def _read_cosmos(self, account: str, spec: Any, reads_items: bool, credential: Any, verdict: Verdict) -> bool:
        """The SQL role's scope read as the workload (its metadata), and an item no one has where it reads items."""
        path = spec.scope[len(spec.account.rstrip("/")) :] or "/"
        what = f"Cosmos DB SQL role {spec.role} @ {short_scope(spec.scope)}, on the service itself"
        status, message = self.arm.cosmos_read(credential, account, path)
        if status == 200 and reads_items and "/colls/" in path:
            status, message = self.arm.cosmos_read(credential, account, path, partition_paths=1)
            # An item no one has: 404 says the read was allowed (400: a hierarchical key; the metadata said yes).
            status = 200 if status in (400, 404) else status
        if status == 200:
            return True
        if status == 0:
            remedy = (
                "verify reads Cosmos DB as the workload, from where the playbook runs: give that machine a way to it: "
                "its private endpoint's DNS zone (privatelink.documents.azure.com) or HTTPS_PROXY"
            )
        else:
            remedy = (
                "a new SQL role assignment can take minutes to apply; look for the account's firewall or private "
                "endpoint, and for a role whose data actions do not cover the read"
            )
        verdict.find("permissions", f"{what}: Cosmos DB {refusal(status, message)}", remedy)
        return False

    def extras(self, principal_id: str, name: str, workload: WorkloadSpec, verdict: Verdict) -> int:
        """The access review's part on key vaults and Cosmos DB accounts (those read): entries and SQL role
        assignments the principal holds that the workload does not declare. How many were found."""
        found = self._vault_extras(principal_id, name, workload, verdict)
        found += self.databases.extras(principal_id, name, workload, verdict)
        declared = declared_grant_keys(workload, self.reads)
        accounts = [a for _key, a in sorted(self.reads.cosmos_accounts.items()) if a is not None]
        for account in accounts:
            for assignment in account["assignments"] or []:
                key = grant_key(assignment["role_definition_id"], assignment["scope"])
                if assignment["principal_id"].lower() != principal_id.lower() or key in declared:
                    continue
                found += 1
                group = assignment["scope"].split("/")[4]
                verdict.find(
                    "assignments",
                    f"{name} holds Cosmos DB SQL role {assignment['role_definition_id'].rsplit('/', 1)[-1]} @ "
                    f"{short_scope(assignment['scope'])}, which the workload does not declare",
                    f"remove it (az cosmosdb sql role assignment delete --account-name {account['name']} "
                    f"--resource-group {group} --role-assignment-id {assignment['name']}) or declare it in the "
                    "workload's roles; verify removes nothing",
                )
        return found

    def _vault_extras(self, principal_id: str, name: str, workload: WorkloadSpec, verdict: Verdict) -> int:
        declared = {policy_key(p.vault) for p in workload.access_policies}
        found = 0
        for key, vault in sorted(self.reads.vaults.items()):
            if vault is None or vault["rbac"] or key in declared:
                continue
            held = entry_of(vault, principal_id)
            if held is None:
                continue
            found += 1
            verdict.find(
                "assignments",
                f"{name} holds an access policy entry on key vault {short_scope(vault['id'])} "
                f"({policy_text(held['permissions'])}), which the workload does not declare",
                f"remove it (az keyvault delete-policy --name {vault['name']} --object-id {principal_id}) or declare "
                "it in the workload's roles; verify removes nothing",
            )
        return found

    def _read_vault(
        self,
        vault: Any,
        credential: Any,
        list_names: bool,
        granted: tuple[str, bool],
        verdict: Verdict,
        asked: dict[str, bool],
    ) -> None:
        """``granted``: what grants the read, and whether it is a role (which a vault with access policies ignores)."""
        what, by_role = granted
        key = policy_key(vault["id"])
        if key in asked:
            return
        status, message = self.arm.vault_read(credential, vault["uri"], list_names)
        asked[key] = 0 < status < 400 or (status == 404 and not list_names)
        if asked[key]:
            return
        if status == 0:
            verdict.find(
                "permissions",
                f"{what}: {refusal(status, message)}",
                "verify reads each vault as the workload, from where the playbook runs: give that machine (the AWX "
                "execution environment) a way to it: its private endpoint's DNS zone (privatelink.vaultcore.azure.net) "
                "or HTTPS_PROXY",
            )
            return
        remedy = (
            "the vault uses access policies, which ignore role assignments for its data: declare its entry instead "
            "(roles: {scope: <vault>, access_policy: {secrets: [get, list]}})"
            if by_role and not vault["rbac"]
            else "look for a firewall or private endpoint on the vault, or a condition or deny assignment; a new "
            "grant can take minutes to apply"
        )
        verdict.find("permissions", f"{what}: the vault {refusal(status, message)}", remedy)


def refusal(status: int, message: str) -> str:
    """How a data plane's answer reads in a finding (status 0: the service's name does not resolve from here)."""
    if status == 0:
        return f"could not be checked: {message}"
    return f"refuses the workload's read ({status}: {message})"
