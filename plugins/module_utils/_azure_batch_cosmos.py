# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): Cosmos DB SQL role assignments, the batch's third grant kind.

Cosmos DB (NoSQL API) grants access to its data through its own role system, not ARM's: "DocumentDB Account
Contributor" on an account reads no item. A workload declares a SQL role in the same ``roles`` list,
``{role: Cosmos DB Built-in Data Reader, scope: <account id>/dbs/<db>/colls/<container>}``; which entries are SQL roles
is told by their form (``_inventory_fields.cosmos_by_form``) and, for a role named at an account itself, by the
account's own SQL role definitions (``split``): a custom SQL role there is one, any other role stays an ARM role.

Each account named is read once, whatever the number of workloads: its assignments (one GET), and its SQL role
definitions only where a custom role is named or an ARM role at the account could be one (the built-ins are known).
Refused before any write: an account that does not exist, a role that is none of its SQL roles (and none of ARM's:
the message names both), a scope outside the definition's assignable scopes, an account at Cosmos DB's assignment
limit, and an ARM role on (or under) an account that may grant itself any access to its data
(``COSMOS_ACCESS_ACTIONS``, unless ``allow_privileged_roles``). Written by ``ensure_sql_role_assignment``; what this
collection creates is named deterministically, so removal takes only its own from an operator's principal.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from ._azure_batch_reads import PENDING, Batch, Reads, Resolved, role_key
from ._azure_cosmos import (
    AccountState,
    CosmosApi,
    built_in_state,
    definition_of,
    ensure_sql_role_assignment,
    held,
    ours,
    within,
)
from ._errors import ValidationError
from ._ids import role_guid, short_scope
from ._inventory import RoleSpec, WorkloadSpec
from ._inventory_fields import CosmosRoleSpec, cosmos_account_above, cosmos_account_of, is_built_in
from ._limits import COSMOS_ACCESS_ACTIONS, COSMOS_ROLE_ASSIGNMENT_LIMIT
from ._results import CosmosRoleAssignmentState, CosmosRoleRow, PrunedCosmosRole, RoleAssignmentRow


def account_key(account: str) -> str:
    return account.rstrip("/").lower()


def grant_key(definition_id: str, scope: str) -> str:
    """One assignment of a principal: its role definition and its scope (which names the account)."""
    return f"{role_guid(definition_id)}|{scope.strip('/').lower()}"


class CosmosRoles:
    """Cosmos DB SQL role assignments of the batch's principals (identities' and applications' alike)."""

    report_key = "cosmos_roles"

    def __init__(self, api: CosmosApi | None) -> None:
        self.api = api
        self._listing = threading.Lock()

    # -- reading ------------------------------------------------------------------------------------
    def read(self, batch: Batch, reads: Reads) -> None:
        """The SQL roles named at an account told apart from ARM roles (``split``); then each account the workloads
        grant on, once, with its assignments; or every account of the subscription when the run needs them all."""
        self.split(batch, reads)
        specs = [s for w in batch.converged_workloads for s in w.cosmos_roles]
        named = {account_key(s.account): s.account for s in specs}
        custom = {account_key(s.account) for s in specs if not is_built_in(s.role)}  # their definitions are read
        if named and self.api is None:
            raise ValidationError(
                [f"cluster {batch.cluster}: Cosmos DB accounts are named, and no ARM client reads them"]
            )
        if named and self.wants_all(batch):
            self.all_accounts(batch, reads)
        for key, account_id in sorted(named.items()):
            self._account(reads, account_id, with_assignments=True, definitions=key in custom)
        for peer in batch.peers:  # what a cluster sharing an identity declares is resolved against the same accounts
            for spec in (s for w in peer.workloads for s in w.cosmos_roles):
                self._account(reads, spec.account, with_assignments=False, definitions=not is_built_in(spec.role))

    def split(self, batch: Batch, reads: Reads) -> None:
        """A role named at a Cosmos DB account itself is one of its SQL roles when the account defines one of that
        name, GUID or id; the workload's entry moves from ``roles`` to ``cosmos_roles``. The others stay ARM roles,
        with what was looked for in the account, for the message should ARM not know them either."""
        batch.workloads = [self._split(reads, w, own=True) for w in batch.workloads]
        for peer in batch.peers:
            peer.workloads = [self._split(reads, w, own=False) for w in peer.workloads]

    def _split(self, reads: Reads, workload: WorkloadSpec, own: bool) -> WorkloadSpec:
        """One workload's entries told apart; ``own``: this cluster's (a peer's problems are its own run's)."""
        moved: list[CosmosRoleSpec] = []
        kept: list[RoleSpec] = []
        for index, spec in enumerate(workload.roles):
            account_id = cosmos_account_of(spec.scope)
            account = self._account(reads, account_id, with_assignments=False, definitions=True) if account_id else None
            if account is None or account_id is None:
                kept.append(spec)
                continue
            definition = definition_of(account, spec.role)
            if definition is None:
                if own:
                    names = ", ".join(d["name"] for d in account["definitions"])
                    reads.role_hints[role_key(workload, spec.role, spec.scope)] = (
                        f"; nor is it a SQL role of Cosmos DB account {account['name']} (its SQL roles: {names})"
                    )
                kept.append(spec)
                continue
            position = spec.listed_at(index)
            moved.append(CosmosRoleSpec(account_id, spec.role, spec.scope, position))
            for key in ("condition", "condition_version", "description"):
                if own and getattr(spec, key) is not None:
                    reads.cosmos_problems.setdefault(workload.name, []).append(
                        f"roles[{position}]: {key}: {definition['name']} is a SQL role of Cosmos DB account "
                        f"{account['name']}, whose assignments have no {key}"
                    )
        if not moved:
            return workload
        return dataclasses.replace(workload, roles=kept, cosmos_roles=[*workload.cosmos_roles, *moved])

    def _account(self, reads: Reads, account_id: str, with_assignments: bool, definitions: bool) -> AccountState | None:
        """An account as this run needs it, each part read once a run: its assignments (where the run grants or
        removes), its own SQL role definitions (where a custom role is named; the built-ins need no read). None when
        it does not exist (as the first read says)."""
        key = account_key(account_id)
        if key in reads.cosmos_accounts and reads.cosmos_accounts[key] is None:
            return None
        account = reads.cosmos_accounts.get(key) or built_in_state(account_id)
        exists = True
        if definitions and not account["definitions_read"] and self.api is not None:
            exists = self.api.read_definitions(account)
        if exists and with_assignments and account["assignments"] is None and self.api is not None:
            exists = self.api.read_assignments(account)
        reads.cosmos_accounts[key] = account if exists else None
        return account if exists else None

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
        """Each SQL role resolved in its account and assignable at its scope, with room for it; each ARM role on an
        account refused when it may grant the workload any access to the account's data."""
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        problems.extend(f"{where}: {p}" for p in reads.cosmos_problems.get(workload.name, []))
        for spec in workload.cosmos_roles:
            at = f"{where}: roles[{spec.position}]"
            account = reads.cosmos_accounts.get(account_key(spec.account))
            if account is None:
                problems.append(f"{at}: scope: Cosmos DB account {spec.account} does not exist")
                continue
            definition = definition_of(account, spec.role)
            if definition is None:
                names = ", ".join(d["name"] for d in account["definitions"])
                problems.append(
                    f"{at}: role: {spec.role} is none of Cosmos DB account {account['name']}'s SQL role definitions "
                    f"(looked for by name, GUID and id among: {names})"
                )
                continue
            if not any(within(spec.scope, s) for s in definition["assignable_scopes"]):
                problems.append(
                    f"{at}: scope: {definition['name']} may be assigned only at or under "
                    f"{', '.join(definition['assignable_scopes'])}, not at {spec.scope}"
                )
            count = len(account["assignments"] or [])
            mine = principal is not None and held(account, principal, definition["id"], spec.scope) is not None
            if not mine and count >= COSMOS_ROLE_ASSIGNMENT_LIMIT:
                problems.append(
                    f"{at}: role: Cosmos DB account {account['name']} holds {count} SQL role assignments, its "
                    f"limit ({COSMOS_ROLE_ASSIGNMENT_LIMIT}); remove unused ones, or assign at a database instead of "
                    "per container"
                )
        if batch.allow_privileged_roles:
            return
        for index, arm_role in enumerate(workload.roles):
            role = resolved.get(role_key(workload, arm_role.role, arm_role.scope))
            account_id = cosmos_account_above(arm_role.scope)
            if role is None or account_id is None or not any(map(role.allows, COSMOS_ACCESS_ACTIONS)):
                continue
            position = arm_role.listed_at(index)
            problems.append(
                f"{where}: roles[{position}]: role: {role.name or role.guid} may assign SQL roles on Cosmos DB "
                f"account {short_scope(account_id)}, or read its keys: the workload could give itself any access to "
                "its data. Declare the SQL role it needs instead, e.g. {role: Cosmos DB Built-in Data Reader, scope: "
                f"{account_id}/dbs/<db>/colls/<container>}} (set allow_privileged_roles to allow it)"
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
    ) -> list[CosmosRoleRow]:
        """The declared SQL role assignments for the principal; one found by another name is adopted as it is.
        (A SQL role assignment is there or not: ``exact`` and ``recorded`` change nothing about ensuring one.)"""
        del exact, recorded
        seen, planned = sides
        rows: list[CosmosRoleRow] = []
        for spec in workload.cosmos_roles:
            account = reads.cosmos_accounts.get(account_key(spec.account))
            definition = definition_of(account, spec.role) if account is not None else None
            if account is None or definition is None or self.api is None:  # check refused the plan: not reached
                raise ValidationError([f"roles[{spec.position}]: {spec.role} at {spec.scope} was not resolved"])
            outcome = ensure_sql_role_assignment(
                self.api, account, principal, definition["id"], spec.scope, state="present", check_mode=check_mode
            )
            line = diff_line(definition["name"], spec.scope)
            if outcome.before:
                seen[self.report_key].append(line)
            planned[self.report_key].append(line)
            rows.append(
                {
                    "role": definition["name"],
                    "role_definition_id": definition["id"],
                    "scope": spec.scope,
                    "name": None if principal == PENDING or outcome.after is None else outcome.after["name"],
                    "action": outcome.action,
                    "adopted": outcome.before is not None and not ours(outcome.before),
                    "notes": [],
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
    ) -> list[PrunedCosmosRole]:
        """The principal's SQL role assignments on every account of the subscription but those in ``keep`` (by
        ``grant_key``), removed; with ``only``, those alone (on the accounts as read for the plan)."""
        if not principal_id or principal_id == PENDING or self.api is None:
            return []
        # With ``only``, the accounts as read for the plan hold them (no list of the subscription's accounts).
        accounts = self.all_accounts(batch, reads) if only is None else dict(reads.cosmos_accounts)
        removed: list[PrunedCosmosRole] = []
        for _key, account in sorted(accounts.items()):
            if account is None:
                continue
            # In the order a person reads them (the account's own order follows the assignments' GUID names).
            for found in sorted(account["assignments"] or [], key=lambda a: (a["scope"].lower(), a["name"])):
                key = grant_key(found["role_definition_id"], found["scope"])
                if found["principal_id"].lower() != principal_id.lower() or key in keep:
                    continue
                if only is not None and key not in only:
                    continue
                outcome = ensure_sql_role_assignment(
                    self.api,
                    account,
                    principal_id,
                    found["role_definition_id"],
                    found["scope"],
                    state="absent",
                    check_mode=check_mode,
                )
                if outcome.action == "deleted":
                    removed.append(pruned_row(label, account, found))
        return removed

    @staticmethod
    def removed_rows(gone: list[PrunedCosmosRole], notes: list[str]) -> list[CosmosRoleRow]:
        """Assignments removed (or to be), as a workload's rows."""
        return [
            {
                "role": g["role"],
                "role_definition_id": g["role_definition_id"],
                "scope": g["scope"],
                "name": g["name"],
                "action": "deleted",
                "adopted": False,
                "notes": notes,
            }
            for g in gone
        ]

    @staticmethod
    def diff_lines(gone: list[PrunedCosmosRole]) -> list[str]:
        return [diff_line(g["role"], g["scope"]) for g in gone]

    @staticmethod
    def to_record(rows: list[CosmosRoleRow]) -> list[RoleAssignmentRow]:
        """Nothing to record on an operator's identity: the assignments this collection creates carry its name."""
        del rows
        return []

    @staticmethod
    def declared(workload: WorkloadSpec) -> list[Any]:
        return list(workload.cosmos_roles)

    @staticmethod
    def declared_keys(workload: WorkloadSpec, reads: Reads) -> set[str]:
        return declared_grant_keys(workload, reads)

    def made_here(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, principal: str | None, recorded: set[str]
    ) -> set[str]:
        """The workload's declared assignments that this collection created on an operator's principal (named as it
        names them: ``recorded`` is not needed), and that no other cluster of the inventory sharing the identity
        declares."""
        del recorded
        if not principal:
            return set()
        theirs = set().union(*(self.declared_keys(other, reads) for _peer, other in batch.sharing(workload)))
        declared = self.declared_keys(workload, reads) - theirs
        made = set()
        for key in {account_key(s.account) for s in workload.cosmos_roles}:
            account = reads.cosmos_accounts.get(key)
            for found in (account["assignments"] if account else None) or []:
                grant = grant_key(found["role_definition_id"], found["scope"])
                if grant in declared and found["principal_id"].lower() == principal.lower() and ours(found):
                    made.add(grant)
        return made

    def wants_all(self, batch: Batch) -> bool:
        """Whether this run looks at every account of the subscription: prune and teardown look for assignments the
        list no longer declares, verification for ones beyond the declared (only when the list declares some)."""
        return self.in_use(batch) and (batch.prune or batch.state == "absent" or batch.read_only)

    def in_use(self, batch: Batch) -> bool:
        """Whether this cluster's list declares SQL roles: only then are other accounts looked at."""
        return any(w.cosmos_roles for w in batch.workloads)

    def all_accounts(self, batch: Batch, reads: Reads) -> dict[str, AccountState | None]:
        """Every Cosmos DB account of the subscription with its assignments (a list, then one read per account, once
        per run): a principal let go of may hold assignments on accounts no listed workload names any more."""
        with self._listing:
            if not reads.all_cosmos_read and self.api is not None:
                for account_id in self.api.list_accounts(batch.subscription_id):
                    self._account(reads, account_id, with_assignments=True, definitions=False)
                reads.all_cosmos_read = True
        return {k: v for k, v in reads.cosmos_accounts.items() if v is not None and v["assignments"] is not None}


def declared_grant_keys(workload: WorkloadSpec, reads: Reads) -> set[str]:
    """The workload's declared SQL role assignments that resolve in their accounts as read, by ``grant_key``."""
    keys = set()
    for spec in workload.cosmos_roles:
        account = reads.cosmos_accounts.get(account_key(spec.account))
        definition = definition_of(account, spec.role) if account is not None else None
        if definition is not None:
            keys.add(grant_key(definition["id"], spec.scope))
    return keys


def diff_line(role: str, scope: str) -> str:
    """An assignment as ``--diff`` shows it."""
    return f"{role} @ {scope}"


def pruned_row(label: str, account: AccountState, held: CosmosRoleAssignmentState) -> PrunedCosmosRole:
    """A SQL role assignment removed from the principal (``label``), as ``pruned`` reports it."""
    known = next(
        (d for d in account["definitions"] if role_guid(d["id"]) == role_guid(held["role_definition_id"])), None
    )
    return {
        "identity": label,
        "role": known["name"] if known else role_guid(held["role_definition_id"]),
        "role_definition_id": held["role_definition_id"],
        "scope": held["scope"],
        "name": held["name"],
    }
