# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): every workload of a cluster, on Azure, in one task.

The pipeline, composed of collaborators that are each handed the batch's context (``BatchContext``):

1. The list is validated by ``_inventory`` before this module is reached.
2. Read in bulk (``_azure_batch_reads``; the application kind reads Graph), and find the role assignments that
   outlived what they were granted to (``_azure_batch_orphans``).
3. Check what only Azure can tell (``_azure_batch_checks``), then plan with the engines the single-object modules
   use, in check mode, on those reads: runtime problems surface before any write, and the plan is what check mode
   reports.
4. Unless in check mode, converge: a bounded pool of workloads at a time, each one flow whatever its identity kind
   (``_azure_batch_kinds``): its identity ensured, a credential per subject trusted, exactly the declared grants.
   Then prune (each kind's ``prune``) and the orphans. Every write goes through the ``ensure_*`` engines.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from ._azure_application import ApplicationApi
from ._azure_batch_access_policies import AccessPolicies
from ._azure_batch_apps import ApplicationKind
from ._azure_batch_checks import check_all
from ._azure_batch_cosmos import CosmosRoles
from ._azure_batch_gone import find_gone, release_gone
from ._azure_batch_grants import RoleAssignments
from ._azure_batch_identities import ManagedIdentityKind
from ._azure_batch_kinds import Converged, DataGrantKind, Ensured, IdentityKind
from ._azure_batch_orphans import (
    find_cosmos_orphans,
    find_database_orphans,
    find_orphans,
    remove_cosmos_orphans,
    remove_database_orphans,
    remove_orphans,
    remove_policy_orphans,
)
from ._azure_batch_permissions import permission_problems
from ._azure_batch_postgres import DatabaseRoles
from ._azure_batch_reads import AzureApis, Batch, BatchContext, Reads, Resolved, identity_key, read_batch, resolve
from ._azure_batch_report import batch_report, workload_result
from ._azure_cluster import ClusterApi
from ._azure_cosmos import CosmosApi
from ._azure_federated_credential import FederatedCredentialApi, ensure_federated_credential
from ._azure_identity import IdentityApi
from ._azure_key_vault import KeyVaultApi
from ._azure_postgres import DatabaseClient, PostgresApi
from ._azure_role_assignment import Role, RoleAssignmentApi
from ._errors import ValidationError
from ._inventory import RoleSpec, WorkloadSpec
from ._limits import DEFAULT_AUDIENCE
from ._ownership import app_created_role_digests, created_role_digests, fic_name
from ._results import AzureBatchResult, FederatedCredentialRow, Pruned, WorkloadResult, empty_pruned
from ._retry import RetryPolicy

Guard = Callable[[AzureBatchResult], None]  # sees the plan before any write, and may refuse it


class Workloads:
    """Reads, plans and converges one cluster's workloads, of both identity kinds: the facade the modules call."""

    def __init__(self, apis: AzureApis, applications: ApplicationApi | None = None) -> None:
        self.ctx = BatchContext(apis, applications)
        self.grants = RoleAssignments(self.ctx)
        self.policies = AccessPolicies(apis.vaults)
        self.cosmos = CosmosRoles(apis.cosmos)
        self.databases = DatabaseRoles(apis.postgres, apis.databases)
        # The grants data services keep themselves, handled alike after the role assignments.
        self.data_grants: tuple[DataGrantKind, ...] = (self.policies, self.cosmos, self.databases)
        self.identity_kind = ManagedIdentityKind(self.grants)
        self.application_kind = ApplicationKind(self.grants, applications) if applications is not None else None

    @classmethod
    def from_clients(
        cls,
        msi: Any,
        authorization: Any,
        policy: RetryPolicy,
        subscription_id: str,
        graph: Any = None,
        credential: Any = None,
        read_clusters: bool = True,
    ) -> Workloads:
        """The engine on the SDK clients; ``credential`` also signs this run in to PostgreSQL flexible servers. With
        ``read_clusters``, other clusters' claims are checked against ARM (do those clusters still exist)."""
        identities, fics = IdentityApi(msi, policy), FederatedCredentialApi(msi, policy)
        clusters = ClusterApi(msi, subscription_id, policy) if read_clusters else None
        # Key Vault's and Cosmos DB's few requests go through the same ARM client's pipeline.
        vaults, cosmos = KeyVaultApi(authorization, policy), CosmosApi(authorization, policy)
        roles = RoleAssignmentApi(authorization, policy)
        postgres = PostgresApi(authorization, policy) if credential is not None else None
        databases = DatabaseClient(credential) if credential is not None else None
        apis = AzureApis(identities, fics, roles, subscription_id, clusters, vaults, cosmos, postgres, databases)
        return cls(apis, ApplicationApi(graph) if graph is not None else None)

    @property
    def warnings(self) -> list[str]:
        """To show the operator; not reasons to stop (each read starts them anew)."""
        return self.ctx.warnings

    def kinds(self) -> list[IdentityKind]:
        return [self.identity_kind, *([self.application_kind] if self.application_kind is not None else [])]

    def kind_of(self, workload: WorkloadSpec) -> IdentityKind:
        if workload.is_application and self.application_kind is not None:
            return self.application_kind
        return self.identity_kind

    def resolve(self, spec: RoleSpec, reads: Reads) -> Role:
        return resolve(self.ctx, spec, reads)

    # -- reading ------------------------------------------------------------------------------------
    def read(self, batch: Batch, workers: int = 1) -> Reads:
        if any(w.is_application for w in batch.workloads) and self.application_kind is None:
            raise ValidationError([f"cluster {batch.cluster}: identity_type application: no Microsoft Graph client"])
        self.ctx.warnings.clear()  # each read starts a plan: its warnings are this plan's
        reads = Reads()
        # Microsoft Graph's reads (app registrations) need nothing ARM answers: asked meanwhile, on their own thread.
        with ThreadPoolExecutor(max_workers=1) as graph:
            applications = graph.submit(self.application_kind.read, batch, reads) if self.application_kind else None
            read_batch(self.ctx, batch, workers, reads)
            if applications is not None:
                applications.result()
        for grant_kind in self.data_grants:
            grant_kind.read(batch, reads)
        reads.orphans = find_orphans(self.ctx, batch, reads)
        find_cosmos_orphans(batch, reads, self.ctx.applications, self.ctx.warnings)
        find_database_orphans(batch, reads, self.ctx.applications, self.ctx.warnings)
        find_gone(self.ctx, batch, reads)
        return reads

    # -- planning and converging --------------------------------------------------------------------
    def converge(
        self, batch: Batch, reads: Reads, check_mode: bool, workers: int, guard: Guard | None = None
    ) -> AzureBatchResult:
        """``guard`` sees the plan before any write and may refuse it (raising ValidationError)."""
        resolved = check_all(self.grants, batch, reads, self.kind_of, self.data_grants)
        # Plan first, with no writes: surfaces the rest of the problems (all of them), and is check mode's answer.
        plans: list[Converged] = []
        problems: list[str] = []
        for workload in batch.converged_workloads:
            try:
                plans.append(self._workload(batch, workload, reads, resolved, True))
            except ValidationError as exc:
                problems.extend(f"cluster {batch.cluster}: workload '{workload.name}': {p}" for p in exc.problems)
        if problems:
            raise ValidationError(problems)
        planned = batch_report(
            plans, self._prune(batch, reads, resolved, True), remove_orphans(self.grants, batch, reads, True)
        )
        self._may(batch, planned, reads)
        if guard is not None:
            guard(planned)
        if check_mode:
            return planned
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            done = list(pool.map(lambda w: self._workload(batch, w, reads, resolved, False), batch.converged_workloads))
        orphaned = remove_orphans(self.grants, batch, reads, False)
        result = batch_report(done, self._prune(batch, reads, resolved, False), orphaned)
        self.identity_kind.whole_tags_warning(batch)
        return result

    def _workload(
        self, batch: Batch, workload: WorkloadSpec, reads: Reads, resolved: Resolved, check_mode: bool
    ) -> Converged:
        """One workload, whatever its identity kind: its identity, a credential per subject, exactly its grants."""
        kind = self.kind_of(workload)
        ensured = kind.ensure(batch, workload, reads, check_mode)
        key = self.grants.report_key
        seen: dict[str, Any] = {kind.label: kind.brief(ensured.outcome.before), "federated_credentials": {}, key: []}
        planned: dict[str, Any] = {kind.label: kind.brief(ensured.after), "federated_credentials": {}, key: []}
        notes = list(ensured.notes)
        fics = trust(batch, workload, ensured, check_mode, (seen, planned, notes))
        fics += release_gone(batch, workload, reads, ensured, check_mode, (seen, notes))
        roles = self.grants.ensure(
            workload,
            ensured.principal,
            ensured.listed,
            resolved,
            check_mode,
            (seen, planned),
            exact=ensured.ours,
            mark=ensured.mark,
            shared_with=sorted({peer.cluster for peer, _theirs in batch.sharing(workload) if peer.in_run}),
        )
        label = str(kind.result(workload, ensured).get("name") or workload.name)
        data: dict[str, list[Any]] = {}
        for grant_kind in self.data_grants:
            rows = self._data_grants(grant_kind, batch, workload, (ensured, label), reads, check_mode, (seen, planned))
            if rows is not None:
                data[grant_kind.report_key] = rows
        # Once the workload's writes are done: on an identity made elsewhere, what this run created (assignments and
        # entries) is recorded on it; on one just made under an explicit name, its claim confirmed.
        records = [r for k in self.data_grants for r in k.to_record(data.get(k.report_key, []))]
        kind.settle(batch, workload, ensured, roles + records, check_mode)
        identity = kind.result(workload, ensured)
        planned[kind.label] = kind.brief(ensured.after)
        changed = (
            ensured.outcome.changed
            or any(f["action"] != "unchanged" for f in fics)
            or any(r["action"] != "unchanged" for r in [*roles, *(r for rows in data.values() for r in rows)])
        )
        result = workload_result(workload, identity, fics, roles, changed, notes)
        _add_rows(result, data)
        return result, {"before": seen, "after": planned}

    def _data_grants(
        self,
        grant_kind: DataGrantKind,
        batch: Batch,
        workload: WorkloadSpec,
        held_by: tuple[Ensured, str],
        reads: Reads,
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any]],
    ) -> list[Any] | None:
        """The workload's grants of a data grant kind (None: it declares none, and has none to lose).
        ``held_by``: its identity (or application) as ensured, and its name as reported."""
        ensured, label = held_by
        key = grant_kind.report_key
        rows: list[Any] = []
        if grant_kind.declared(workload):
            for side in sides:
                side[key] = []
            recorded = set() if ensured.ours else self._made_here(grant_kind, batch, workload, reads)
            rows = grant_kind.ensure(
                workload, ensured.principal, reads, check_mode, sides, exact=ensured.ours, recorded=recorded
            )
        if ensured.ours and batch.prune and grant_kind.in_use(batch):
            # Exactly the declared ones on an identity or application of ours: one dropped from the list goes.
            # Another cluster of the inventory that shares the identity may declare one this one dropped.
            keep = grant_kind.declared_keys(workload, reads).union(
                *(grant_kind.declared_keys(other, reads) for _peer, other in batch.sharing(workload))
            )
            gone = grant_kind.remove(batch, ensured.principal, label, reads, check_mode, keep=keep)
            if gone:
                sides[0].setdefault(key, []).extend(grant_kind.diff_lines(gone))
                rows += grant_kind.removed_rows(gone, ["no longer declared"])
        return rows if grant_kind.declared(workload) or rows else None

    # -- removing and pruning -----------------------------------------------------------------------
    def remove(self, batch: Batch, reads: Reads, check_mode: bool, guard: Guard | None = None) -> AzureBatchResult:
        """state=absent; ``guard`` sees the plan (the same removal in check mode) before any write."""
        planned = self._remove(batch, reads, True)
        self._may(batch, planned, reads)
        if guard is not None:
            guard(planned)
        if check_mode:
            return planned
        result = self._remove(batch, reads, False)
        self.identity_kind.whole_tags_warning(batch)
        return result

    def _made_here(self, grant_kind: DataGrantKind, batch: Batch, workload: WorkloadSpec, reads: Reads) -> set[str]:
        """The workload's declared grants of the kind that this collection made on an operator's identity (or
        application): as its record says, or as the grant's name does."""
        if not grant_kind.declared(workload):
            return set()
        args = (batch.cluster, workload.namespace, workload.name)
        if workload.is_application:
            app, principal = reads.applications.get(workload.name, (None, None))
            digests = app_created_role_digests(list((app or {}).get("tags") or []), *args)
            principal_id = str(principal["id"]) if principal else None
        else:
            identity = reads.identity(batch.ref(workload))
            digests = created_role_digests(identity["tags"] if identity else None, *args)
            principal_id = identity["principal_id"] if identity else None
        return grant_kind.made_here(batch, workload, reads, principal_id, digests)

    def _may(self, batch: Batch, planned: AzureBatchResult, reads: Reads) -> None:
        """The automation principal may make every write of the plan, or nothing is written (ARM's answer)."""
        problems = permission_problems(self.ctx, batch, planned, reads)
        if problems:
            raise ValidationError(problems)

    def _remove(self, batch: Batch, reads: Reads, check_mode: bool) -> AzureBatchResult:
        """state=absent for the listed workloads (and, with prune, everything else made for this cluster): each
        kind removes what is its own, lets go of what it shares, and keeps what an operator made."""
        # What an operator's identity or application records as created here, read before its removal drops the record.
        recorded = {
            (k.report_key, w.name): self._made_here(k, batch, w, reads)
            for k in self.data_grants
            for w in batch.workloads
        }
        done = [self.kind_of(w).remove(batch, w, reads, check_mode) for w in batch.workloads]
        for workload, (result, diff) in zip(batch.workloads, done, strict=True):
            identity = result["identity"]
            principal, name = identity.get("principal_id"), identity["name"]
            for grant_kind in self.data_grants:
                gone: list[Any] = []
                made = recorded[(grant_kind.report_key, workload.name)]
                if identity.get("action") == "deleted" and grant_kind.in_use(batch):
                    # Its grants would outlive it (Key Vault keeps deleted principals' entries forever, and Cosmos DB
                    # their SQL role assignments).
                    gone = grant_kind.remove(batch, principal, name, reads, check_mode)
                elif identity.get("action") == "kept" and made:
                    # Kept (an operator's): only the grants this collection made for the workload go.
                    gone = grant_kind.remove(batch, principal, name, reads, check_mode, only=made)
                if gone:
                    _add_rows(result, {grant_kind.report_key: grant_kind.removed_rows(gone, [])})
                    result["changed"] = True
                    diff["before"] = diff["before"] or {}
                    diff["before"][grant_kind.report_key] = grant_kind.diff_lines(gone)
        return batch_report(
            done, self._prune(batch, reads, {}, check_mode), remove_orphans(self.grants, batch, reads, check_mode)
        )

    def _prune(self, batch: Batch, reads: Reads, resolved: Resolved, check_mode: bool) -> Pruned:
        """What this collection made for this cluster and the list no longer declares (only with prune)."""
        pruned = empty_pruned()
        if not batch.prune:
            return pruned
        for kind in self.kinds():
            kind.prune(batch, reads, resolved, check_mode, pruned)
        pruned["replaced"].extend(reads.held)
        identities = [reads.identities.get(identity_key(i["resource_group"], i["name"])) for i in pruned["identities"]]
        principals = [i["principal_id"] if i else None for i in identities]
        principals += [_principal_of(reads, a["app_id"]) for a in pruned["applications"]]
        labels = [i["name"] for i in pruned["identities"]] + [a["name"] for a in pruned["applications"]]
        for grant_kind in (k for k in self.data_grants if k.in_use(batch)):
            # The grants of the identities and applications removed, which would outlive them.
            remove = grant_kind.remove
            gone = [g for p, n in zip(principals, labels, strict=True) for g in remove(batch, p, n, reads, check_mode)]
            if gone:
                cast(dict[str, Any], pruned)[grant_kind.report_key] = gone
        # What principals since deleted by hand still hold: SQL role assignments this collection made (Cosmos DB keeps
        # them), and the entries of this cluster's principals its marked assignments show gone (Key Vault keeps them).
        orphaned = remove_cosmos_orphans(self.cosmos.api, reads, check_mode)
        if orphaned:
            pruned["cosmos_roles"] = [*pruned.get("cosmos_roles", []), *orphaned]
        roles = remove_database_orphans(self.databases, reads, check_mode)
        if roles:
            pruned["database_roles"] = [*pruned.get("database_roles", []), *roles]
        entries = remove_policy_orphans(self.policies, batch, reads, check_mode)
        if entries:
            pruned["access_policies"] = [*pruned.get("access_policies", []), *entries]
        return pruned


def _add_rows(result: WorkloadResult, rows: dict[str, list[Any]]) -> None:
    """A workload's rows of the data grant kinds (each under its ``report_key``, only when it has some)."""
    cast(dict[str, Any], result).update(rows)


def _principal_of(reads: Reads, app_id: str) -> str | None:
    """The service principal of an application this collection made, as read for prune."""
    for app, principal in reads.marked_apps:
        if str(app.get("appId", "")).lower() == app_id.lower() and principal is not None:
            return str(principal.get("id"))
    return None


def trust(
    batch: Batch,
    workload: WorkloadSpec,
    ensured: Ensured,
    check_mode: bool,
    sides: tuple[dict[str, Any], dict[str, Any], list[str]],
) -> list[FederatedCredentialRow]:
    """One credential per subject from this cluster's issuer, on the ensured identity or application (its
    ``parent`` of credentials, and the ``siblings`` already on it).

    ``sides``: the diff's before and after, and the workload's notes, filled in. ``ensured.exactly_ours``: the parent
    was made by this collection for this very cluster (name and place), so a credential of this cluster's name that
    trusts another issuer is this cluster's from before it was re-created, and is moved to the new issuer. On a
    parent shared with others, that credential may be another cluster's of the same name: it is left alone, and
    this cluster's gets a name of its own.
    """
    seen, planned, notes = sides
    parent, siblings = ensured.parent, ensured.siblings
    fics: list[FederatedCredentialRow] = []
    for subject in workload.subjects:
        name = fic_name(batch.cluster, subject)
        taken = next((f for f in siblings if f["name"].lower() == name.lower()), None)
        if taken is not None and taken["issuer"] != batch.issuer_url:
            if ensured.exactly_ours:
                notes.append(
                    f"federated credential {taken['name']}: issuer changes from {taken['issuer']} to "
                    f"{batch.issuer_url} (the cluster's issuer is not the one it trusted)"
                )
            else:
                notes.append(
                    f"federated credential {taken['name']} on {parent.label} trusts another issuer "
                    f"({taken['issuer']}): another cluster named {batch.cluster}, or this one before it was "
                    "re-created; left as it is"
                )
                name = fic_name(batch.cluster, subject, batch.issuer_url)
        fic = ensure_federated_credential(
            parent,
            name,
            state="present",
            issuer=batch.issuer_url,
            subject=subject,
            audiences=[DEFAULT_AUDIENCE],
            check_mode=check_mode,
            siblings=siblings,
            adopt=True,
        )
        # An adopted credential keeps its own name: report that one, so prune and teardown leave it alone.
        fics.append({"name": fic.after["name"] if fic.after else name, "subject": subject, "action": fic.action})
        for side, state in ((seen, fic.before), (planned, fic.after)):
            if state:
                side["federated_credentials"][state["name"]] = {"issuer": state["issuer"], "subject": state["subject"]}
    return fics
