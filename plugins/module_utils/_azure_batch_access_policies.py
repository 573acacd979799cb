# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): Key Vault access policies, the batch's second grant kind.

A vault whose ``enableRbacAuthorization`` is false ignores role assignments for its data: "Key Vault Secrets User"
assigned there grants nothing (ARM's permissions API still lists the data action, so nothing but the vault itself
would say so). A workload declares its entry in ``roles`` as ``{scope: <vault id>, access_policy: {secrets: [get,
list]}}``; this kind gives its principal exactly that entry, and refuses before any write what could not work:

- an access policy on a vault that uses Azure RBAC (it would grant nothing), and the role to declare instead;
- a role with Key Vault data actions on (or under) a vault with access policies, and the entry to declare instead;
- a role that may change such a vault or its policies (``accessPolicies/write``, ``vaults/write``): the workload
  could grant itself any access to the vault's data (unless ``allow_privileged_roles``);
- a vault that does not exist, and a vault whose entries would exceed Key Vault's limit.

Each vault named is read once (``read``: one GET returns its policies), whatever the number of workloads; the
entries are written by ``ensure_access_policy`` with ``accessPolicies/add|replace|remove`` (other principals'
entries stay). An entry has no description to carry the collection's mark: an identity or application this
collection made holds exactly its declared entries (removed with it); on an operator's, the entry is adopted as it
is when it already grants what is declared (extra permissions kept), and extended otherwise.
"""

from __future__ import annotations

import threading
from typing import Any

from ._azure_batch_reads import PENDING, Batch, Reads, Resolved, role_key
from ._azure_key_vault import KeyVaultApi, VaultState, ensure_access_policy, normalise
from ._errors import ValidationError
from ._ids import parse_scope, short_scope
from ._inventory import WorkloadSpec
from ._inventory_fields import vault_of
from ._limits import KEY_VAULT_POLICY_ACTIONS, KEY_VAULT_POLICY_LIMIT
from ._ownership import ACCESS_POLICY_RECORD, policy_digest
from ._results import AccessPolicyRow, PrunedAccessPolicy, RoleAssignmentRow

# A role's Key Vault data actions, and the access policy permissions that grant the same (for the refusal's remedy).
_EQUIVALENT = (
    ("Microsoft.KeyVault/vaults/secrets/getSecret/action", "secrets", "get"),
    ("Microsoft.KeyVault/vaults/secrets/readMetadata/action", "secrets", "list"),
    ("Microsoft.KeyVault/vaults/secrets/setSecret/action", "secrets", "set"),
    ("Microsoft.KeyVault/vaults/secrets/delete", "secrets", "delete"),
    ("Microsoft.KeyVault/vaults/keys/read", "keys", "get"),
    ("Microsoft.KeyVault/vaults/keys/read", "keys", "list"),
    ("Microsoft.KeyVault/vaults/keys/encrypt/action", "keys", "encrypt"),
    ("Microsoft.KeyVault/vaults/keys/decrypt/action", "keys", "decrypt"),
    ("Microsoft.KeyVault/vaults/keys/wrap/action", "keys", "wrapKey"),
    ("Microsoft.KeyVault/vaults/keys/unwrap/action", "keys", "unwrapKey"),
    ("Microsoft.KeyVault/vaults/keys/sign/action", "keys", "sign"),
    ("Microsoft.KeyVault/vaults/keys/verify/action", "keys", "verify"),
    ("Microsoft.KeyVault/vaults/certificates/read", "certificates", "get"),
    ("Microsoft.KeyVault/vaults/certificates/read", "certificates", "list"),
)
# And the other way: the built-in role to declare on an RBAC vault for an access policy's kind.
_ROLE_FOR_KIND = {
    "secrets": "Key Vault Secrets User",
    "keys": "Key Vault Crypto User",
    "certificates": "Key Vault Certificate User",
    "storage": "Key Vault Administrator (storage accounts managed by Key Vault have no narrower role)",
}
DATA_PREFIX = "microsoft.keyvault/vaults/"


def policy_key(vault: str) -> str:
    return vault.lower()


class AccessPolicies:
    """Key Vault access policy entries of the batch's principals (identities' and applications' alike)."""

    report_key = "access_policies"

    def __init__(self, api: KeyVaultApi | None) -> None:
        self.api = api
        self._listing = threading.Lock()

    # -- reading ------------------------------------------------------------------------------------
    def vaults_named(self, batch: Batch) -> dict[str, str]:
        """The vaults the workloads name (in an access policy, or as a role's scope at or under a vault)."""
        named: dict[str, str] = {}
        for workload in batch.converged_workloads:
            for policy in workload.access_policies:
                named[policy_key(policy.vault)] = policy.vault
            for spec in workload.roles:
                vault = vault_above(spec.scope)
                if vault:
                    named[policy_key(vault)] = vault
        return named

    def read(self, batch: Batch, reads: Reads) -> None:
        """Each vault named, once (its access policies come with it): one GET each, or, when the run needs every vault
        of the subscription anyway (``wants_all``), that one list alone."""
        named = self.vaults_named(batch)
        if named and self.api is None:
            raise ValidationError([f"cluster {batch.cluster}: key vaults are named, and no ARM client reads them"])
        if named and self.wants_all(batch):
            self.all_vaults(batch, reads)
            for key in named:
                reads.vaults.setdefault(key, None)  # not listed: it does not exist
            return
        for key, vault in sorted(named.items()):
            if key not in reads.vaults:
                reads.vaults[key] = self.api.get(vault) if self.api is not None else None

    # -- before any write ---------------------------------------------------------------------------
    def check(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: Resolved,
        problems: list[str],
        principal: str | None,
    ) -> None:
        """Each entry on a vault that exists and uses access policies; each role on such a vault refused when it would
        grant nothing on its data, or let the workload change its policies."""
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        for policy in workload.access_policies:
            at = f"{where}: roles[{policy.position}]"
            vault = reads.vaults.get(policy_key(policy.vault))
            if vault is None:
                problems.append(f"{at}: scope: key vault {policy.vault} does not exist")
            elif vault["rbac"]:
                roles = sorted({_ROLE_FOR_KIND[k] for k in policy.permissions})
                problems.append(
                    f"{at}: access_policy: key vault {vault['name']} uses Azure RBAC (enableRbacAuthorization), so an "
                    f"access policy grants nothing there; declare a role instead, e.g. {{role: {roles[0]}, scope: "
                    f"{policy.vault}}}"
                )
            elif len(vault["policies"]) >= KEY_VAULT_POLICY_LIMIT and not any(
                str(e.get("objectId", "")).lower() == str(principal).lower() for e in vault["policies"]
            ):
                problems.append(
                    f"{at}: access_policy: key vault {vault['name']} holds {len(vault['policies'])} access policies, "
                    f"Key Vault's limit ({KEY_VAULT_POLICY_LIMIT}); remove unused entries or move it to Azure RBAC"
                )
        for index, spec in enumerate(workload.roles):
            vault_id = vault_above(spec.scope)
            vault = reads.vaults.get(policy_key(vault_id)) if vault_id else None
            role = resolved.get(role_key(workload, spec.role, spec.scope))
            if vault is None or vault["rbac"] or role is None:
                continue
            at = f"{where}: roles[{spec.listed_at(index)}]"
            data = [a for a in role.data_actions if a.lower().startswith(DATA_PREFIX)]
            if data:
                problems.append(
                    f"{at}: role: key vault {vault['name']} uses access policies (enableRbacAuthorization is false), "
                    f"which ignore role assignments for its data: {role.name or role.guid} would grant nothing there. "
                    f"Declare its entry instead: {{scope: {vault_id}, access_policy: {_equivalent(role)}}}"
                )
            elif not batch.allow_privileged_roles and any(map(role.allows, KEY_VAULT_POLICY_ACTIONS)):
                problems.append(
                    f"{at}: role: {role.name or role.guid} may change key vault {vault['name']} or its access "
                    "policies, which decide who reads its data: the workload could grant itself any access to it. "
                    "Refused for a workload identity (set allow_privileged_roles to allow it)"
                )

    # -- writing ------------------------------------------------------------------------------------
    def ensure(
        self,
        workload: WorkloadSpec,
        principal: str,
        reads: Reads,
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any]],
        exact: bool,
        recorded: set[str] | frozenset[str] = frozenset(),
    ) -> list[AccessPolicyRow]:
        """Exactly the declared entries for the principal (``exact``: its identity is this collection's; ``recorded``:
        the vaults where an operator's identity records the entry as this collection's), or at least them."""
        seen, planned = sides
        rows: list[AccessPolicyRow] = []
        for policy in workload.access_policies:
            vault = reads.vaults.get(policy_key(policy.vault))
            if vault is None or self.api is None:  # check refused the plan: not reached
                raise ValidationError([f"roles[{policy.position}]: scope: key vault {policy.vault} was not read"])
            wanted = {k: list(v) for k, v in policy.permissions.items()}
            ours = exact or policy_key(policy.vault) in recorded
            outcome = ensure_access_policy(
                self.api, vault, principal, permissions=wanted, state="present", check_mode=check_mode, exact=ours
            )
            if outcome.before:
                seen[self.report_key].append(diff_line(policy.vault, outcome.before["permissions"]))
            if outcome.after:
                planned[self.report_key].append(diff_line(policy.vault, outcome.after["permissions"]))
            notes = []
            if outcome.action == "unchanged" and outcome.before and outcome.before["permissions"] != normalise(wanted):
                notes.append(f"its entry grants more than declared ({_text(outcome.before['permissions'])}): kept")
            rows.append(
                {
                    "vault": policy.vault,
                    "permissions": normalise(wanted),
                    "action": outcome.action,
                    "adopted": outcome.before is not None and not ours,
                    "notes": notes,
                }
            )
        return rows

    def remove(
        self,
        batch: Batch,
        principal_id: str | None,
        label: str,
        reads: Reads,
        check_mode: bool,
        keep: set[str] | frozenset[str] = frozenset(),
        only: set[str] | None = None,
    ) -> list[PrunedAccessPolicy]:
        """The principal's entries on every vault of the subscription but those in ``keep`` (by vault key), removed;
        with ``only``, on those vaults alone (as read for the plan: no list of the subscription's vaults)."""
        if not principal_id or principal_id == PENDING or self.api is None:
            return []
        removed: list[PrunedAccessPolicy] = []
        vaults = self.all_vaults(batch, reads) if only is None else {k: reads.vaults.get(k) for k in only}
        for key, vault in sorted(vaults.items()):
            if vault is None or key in keep:
                continue
            outcome = ensure_access_policy(
                self.api, vault, principal_id, permissions=None, state="absent", check_mode=check_mode
            )
            if outcome.action == "deleted" and outcome.before is not None:
                removed.append({"identity": label, "vault": vault["id"], "permissions": outcome.before["permissions"]})
        return removed

    @staticmethod
    def removed_rows(gone: list[PrunedAccessPolicy], notes: list[str]) -> list[AccessPolicyRow]:
        """Entries removed (or to be), as a workload's rows."""
        return [
            {
                "vault": g["vault"],
                "permissions": g["permissions"],
                "action": "deleted",
                "adopted": False,
                "notes": notes,
            }
            for g in gone
        ]

    @staticmethod
    def to_record(rows: list[AccessPolicyRow]) -> list[RoleAssignmentRow]:
        """The entries this run created, as the rows an operator's identity or application records (beside the role
        assignments it created), so that teardown removes those and leaves the ones it found."""
        return [
            {
                "role": None,
                "role_definition_guid": ACCESS_POLICY_RECORD,
                "scope": row["vault"],
                "name": None,
                "action": row["action"],
                "adopted": False,
                "notes": [],
            }
            for row in rows
            if row["action"] == "created"
        ]

    @staticmethod
    def declared(workload: WorkloadSpec) -> list[Any]:
        return list(workload.access_policies)

    @staticmethod
    def declared_keys(workload: WorkloadSpec, reads: Reads) -> set[str]:
        del reads  # a vault's id is its key
        return {policy_key(p.vault) for p in workload.access_policies}

    @staticmethod
    def diff_lines(gone: list[PrunedAccessPolicy]) -> list[str]:
        return [diff_line(g["vault"], g["permissions"]) for g in gone]

    def made_here(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, principal: str | None, recorded: set[str]
    ) -> set[str]:
        """The workload's declared vaults whose entry the record says this collection created (and no other cluster
        of the inventory sharing the identity declares)."""
        del principal  # an entry has no mark of its own: the record says
        theirs = {policy_key(p.vault) for _peer, other in batch.sharing(workload) for p in other.access_policies}
        declared = self.declared_keys(workload, reads)
        return {key for key in declared - theirs if policy_digest(key) in recorded}

    def wants_all(self, batch: Batch) -> bool:
        """Whether this run looks at every vault of the subscription: prune and teardown look for entries the list no
        longer declares, verification for entries beyond the declared ones (only when the list declares some)."""
        return self.in_use(batch) and (batch.prune or batch.state == "absent" or batch.read_only)

    def in_use(self, batch: Batch) -> bool:
        """Whether this cluster's list declares access policies: only then are entries looked for on vaults it no
        longer names (one list of the subscription's vaults), so an estate without any pays no request for them."""
        return any(w.access_policies for w in batch.workloads)

    def all_vaults(self, batch: Batch, reads: Reads) -> dict[str, VaultState | None]:
        """Every vault of the subscription (one list, once per run, whichever worker asks first): a principal let go
        of may hold entries on vaults no listed workload names any more, and the access review lists every entry."""
        with self._listing:
            if not reads.all_vaults_read and self.api is not None:
                for vault in self.api.list_all(batch.subscription_id):
                    reads.vaults.setdefault(policy_key(vault["id"]), vault)
                reads.all_vaults_read = True
        return dict(reads.vaults)


def vault_above(scope: str) -> str | None:
    """The vault a scope is (or is under): ``.../vaults/<name>[/secrets/<name>...]``."""
    parts = parse_scope(scope).path.split("/")
    return vault_of("/".join(parts[:9])) if len(parts) >= 9 else None


def _equivalent(role: Any) -> str:
    granted: dict[str, set[str]] = {}
    for action, kind, permission in _EQUIVALENT:
        if role.grants(action):
            granted.setdefault(kind, set()).add(permission)
    text = ", ".join(f"{k}: [{', '.join(sorted(v))}]" for k, v in sorted(granted.items()))
    return "{" + (text or "secrets: [get]") + "}"


def diff_line(vault: str, permissions: dict[str, list[str]]) -> str:
    """An entry as ``--diff`` shows it: the vault as a person reads it, and its permissions."""
    return f"{short_scope(vault)}: {_text(permissions)}"


def _text(permissions: dict[str, list[str]]) -> str:
    return "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(permissions.items()))
