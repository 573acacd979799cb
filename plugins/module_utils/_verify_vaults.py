# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): verification on key vaults' data planes.

ARM's permissions API lists a role's data actions wherever the role is assigned, and a vault with access policies
ignores them: only the vault can say whether it lets the workload in. For each access policy entry the workload
declares, the entry as the vault holds it; and for each vault the workload may read secrets from (by its entry, or
by a role with Key Vault data actions), one harmless read with the workload's own token (``ArmProbe.vault_read``:
its secrets' names, or a secret no one has; never a value). A refusal is a finding with its remedy.
"""

from __future__ import annotations

from typing import Any

from ._azure_batch_access_policies import policy_key, vault_above
from ._azure_batch_reads import Reads
from ._azure_key_vault import covers, entry_of
from ._azure_role_assignment import Role
from ._ids import short_scope
from ._inventory import RoleSpec
from ._inventory_fields import AccessPolicySpec
from ._report import policy_text
from ._verify_checks import described_assignment, rerun
from ._verify_findings import Verdict
from ._verify_probes import ArmProbe

# The data actions that read a vault's secrets: their names, and their values.
SECRET_NAMES = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
SECRET_VALUES = "Microsoft.KeyVault/vaults/secrets/getSecret/action"


class VaultChecks:
    """One workload's grants on key vaults, checked where they take effect (handed the verification's reads)."""

    def __init__(self, reads: Reads, arm: ArmProbe, cluster: str) -> None:
        self.reads, self.arm, self.cluster = reads, arm, cluster

    def check(
        self,
        principal_id: str,
        name: str,
        policies: list[AccessPolicySpec],
        roles: list[tuple[RoleSpec, Role | None]],
        credential: Any,
        verdict: Verdict,
    ) -> int:
        """Each access policy entry as the vault holds it, and one read on each vault the workload may read secrets
        from (by its entry, or by a role); how many vaults answered yes."""
        asked: dict[str, bool] = {}  # vault key -> it let the workload read
        for policy in policies:
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
            vault_id = vault_above(spec.scope)
            vault = self.reads.vaults.get(policy_key(vault_id)) if vault_id else None
            if vault is None or role is None:
                continue
            names, values = role.grants(SECRET_NAMES), role.grants(SECRET_VALUES)
            if names or values:
                what = f"{described_assignment(role.name or spec.role, role.guid, spec.scope)}, on the vault itself"
                self._read_vault(vault, credential, names, (what, True), verdict, asked)
        return sum(asked.values())

    def extras(self, principal_id: str, name: str, policies: list[AccessPolicySpec], verdict: Verdict) -> int:
        """The access review's part on key vaults (those read): entries the principal holds that the workload does
        not declare, on vaults that use access policies. How many were found."""
        declared = {policy_key(p.vault) for p in policies}
        found = 0
        for key, vault in sorted(self.reads.vaults.items()):
            held = entry_of(vault, principal_id) if vault is not None and not vault["rbac"] else None
            if held is None or key in declared:
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
                f"{what}: could not be checked on the vault: {message}",
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
        verdict.find("permissions", f"{what}: the vault refuses the workload's read ({status}: {message})", remedy)
