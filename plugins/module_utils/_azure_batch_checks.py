# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what only Azure can tell, checked before any write.

For every workload of the batch, on what ``_azure_batch_reads`` read, and all problems at once:

- its identity: a location to create it in, not another cluster's or an operator's found by coincidence under the
  default name, its resource group existing; shared with other clusters (``_azure_batch_shared``), declared alike
  by each and with room for all of their credentials;
- its roles: each resolves to one definition; none that lets the workload grant roles (judged by the role's
  permissions), nor Contributor at a broad scope, unless allowed; a role with data actions at a broad scope warned;
- each scope where an assignment would be created exists and the automation may read its assignments: one read
  per distinct scope, and none for a scope where the assignment already exists (a no-op run costs nothing more).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._azure_batch_reads import Batch, Reads, Resolved, role_key
from ._azure_batch_roles_record import CreatedRolesRecord
from ._azure_batch_shared import credential_problem, disagreements, outside_claims, outside_problem
from ._errors import AzureApiError, ValidationError
from ._ids import parse_scope
from ._inventory import WorkloadSpec
from ._inventory_fields import privileged_problem
from ._limits import GRANT_ACTION, PRIVILEGED_SCOPE_KINDS
from ._ownership import Claim, application_others, foreign_owner, made_by_collection, place_described

if TYPE_CHECKING:
    from ._azure_batch_apps import ApplicationSide


class BatchChecks(CreatedRolesRecord):
    apps: ApplicationSide | None
    warnings: list[str]

    def _check(self, batch: Batch, reads: Reads) -> Resolved:
        """What only Azure can tell, for every workload, before any write: every problem at once."""
        problems: list[str] = []
        resolved: Resolved = {}
        for workload in batch.workloads:
            where = f"cluster {batch.cluster}: workload '{workload.name}'"
            if workload.is_application:
                if self.apps is not None:
                    self.apps.check(batch, workload, reads, problems)
                app, sp = reads.applications.get(workload.name, (None, None))
                self._resolve_roles(batch, workload, reads, resolved, problems, (sp or {}).get("id"))
                others = (
                    application_others(app.get("tags"), batch.cluster, batch.cluster_scope)
                    if app and workload.application_id is None
                    else []
                )
                self._shared_problems(batch, workload, reads, resolved, (others, (sp or {}).get("id")), problems)
                continue
            ref = batch.ref(workload)
            identity = reads.identity(ref)
            if identity is None and not batch.location:
                problems.append(
                    f"{where}: location: identity {workload.identity_name} does not exist and no "
                    "location was given to create it in"
                )
            if identity is None and ref.resource_group.lower() in reads.missing_groups:
                problems.append(
                    f"{where}: identity_resource_group: resource group {ref.resource_group} does not exist "
                    f"(identity {workload.identity_name} would be made there)"
                )
            owner = foreign_owner(identity["tags"], batch.cluster, batch.cluster_scope) if identity else None
            if owner is not None and workload.named_by_default:
                # A default name carries its cluster's: found in use elsewhere, it is a same-named cluster's, never
                # an identity to share (sharing is asked for by naming the identity on each cluster).
                place = place_described(batch.cluster_scope)
                this = f"this cluster ({place})" if place else "this cluster"
                problems.append(
                    f"{where}: identity_name: identity {workload.identity_name} in {ref.resource_group} is used by "
                    f"{owner}, not by {this}; set identity_name (or identity_resource_group) so that each cluster has "
                    "its own, or, to share one identity between clusters, the same identity_name on each"
                )
            elif identity is not None and workload.named_by_default and not made_by_collection(identity["tags"]):
                problems.append(
                    f"{where}: identity_name: the default name {workload.identity_name} is taken in "
                    f"{identity['resource_group']} by an identity this collection did not make; to adopt it, set "
                    f"identity_name: {workload.identity_name} (and identity_resource_group: "
                    f"{identity['resource_group']}); else set another identity_name"
                )
            principal = identity["principal_id"] if identity else None
            self._resolve_roles(batch, workload, reads, resolved, problems, principal)
            others = batch.others(identity["tags"]) if identity else []
            self._shared_problems(batch, workload, reads, resolved, (others, principal), problems)
        if problems:
            raise ValidationError(problems)
        return resolved

    def _shared_problems(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: Resolved,
        used: tuple[list[Claim], str | None],
        problems: list[str],
    ) -> None:
        """Named by workloads of other clusters too: they must agree, and all their credentials fit on it; used by
        clusters the inventory does not declare (``used``: their claims and the principal): it holds exactly what is
        declared."""
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        problems.extend(disagreements(self, batch, workload, reads))
        full = credential_problem(batch, workload, reads)
        others, principal = used
        held = reads.assignments.get(principal.lower(), []) if principal else []
        outside = outside_problem(batch, workload, outside_claims(batch, others), resolved, reads, held)
        problems.extend(p for p in (full, f"{where}: {outside}" if outside else None) if p)

    def _resolve_roles(
        self,
        batch: Batch,
        workload: WorkloadSpec,
        reads: Reads,
        resolved: Resolved,
        problems: list[str],
        principal: str | None,
    ) -> None:
        """Each declared role: resolved, allowed, and its scope checked where an assignment would be created."""
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        listed = reads.assignments.get(str(principal).lower(), []) if principal else []
        for position, spec in enumerate(workload.roles):
            at = f"{where}: roles[{position}]"
            try:
                role = self.resolve(spec, reads)
            except ValidationError as exc:
                problems.extend(f"{at}: {p}" for p in exc.problems)
                continue
            kind = parse_scope(spec.scope).kind
            if not batch.allow_privileged_roles:
                problem = privileged_problem(role.guid, kind, spec.scope, at)
                if problem is None and role.allows(GRANT_ACTION):
                    problem = (
                        f"{at}: role: {role.name or role.guid} allows {GRANT_ACTION}, so the workload could grant "
                        f"roles, itself included: refused for a workload identity at any scope ({spec.scope}) "
                        "(set allow_privileged_roles to allow it)"
                    )
                if problem:
                    problems.append(problem)
            if role.data_actions and kind in PRIVILEGED_SCOPE_KINDS:
                self.warnings.append(
                    f"{at}: role: {role.name or role.guid} at {kind} scope reads or changes the data of every "
                    f"resource it covers in {spec.scope}; a narrower scope is safer"
                )
            exists = principal is not None and self.roles.find(spec.scope, principal, role.guid, listed) is not None
            scope_problem = None if exists else self._scope_problem(spec.scope, reads)
            if scope_problem:
                problems.append(f"{at}: scope: {scope_problem}")
            resolved[role_key(workload, spec.role, spec.scope)] = role

    def _scope_problem(self, scope: str, reads: Reads) -> str | None:
        """Why an assignment cannot be made at the scope (it does not exist, or may not be read), once per scope."""
        key = parse_scope(scope).key
        if key not in reads.scope_problems:
            try:
                self.roles.list_at(scope, filter="atScope()")
                reads.scope_problems[key] = None
            except AzureApiError as exc:
                if exc.status == 404:
                    reads.scope_problems[key] = f"{scope} does not exist ({exc.code})"
                elif exc.status == 403:
                    reads.scope_problems[key] = (
                        f"the automation principal may not read role assignments at {scope} ({exc.code}), so it "
                        "cannot make one there"
                    )
                else:
                    raise
        return reads.scope_problems[key]
