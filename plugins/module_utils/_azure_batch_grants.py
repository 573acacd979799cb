# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): ARM role assignments, the batch's first grant kind.

A grant kind is what gives a workload's principal access to something, declared in the workload's ``roles``. Each
kind answers the same questions for the pipeline (``_azure_batch_kinds.GrantKind``): which declared entries are its
own, what it resolves before any write (and what it refuses), how it ensures exactly the declared grants through
its engine (marking what it makes), what of a principal's it removes, and which of its grants outlived what they
were granted to (``_azure_batch_orphans``). Role assignments are read in bulk with the subscription
(``_azure_batch_reads``: one request for a whole subscription's assignments) and written by
``ensure_role_assignment``, the engine the single-object ``role_assignment`` module uses.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from ._azure_batch_reads import PENDING, Batch, BatchContext, Reads, Resolved, resolve, role_key
from ._azure_role_assignment import Role, assignment_state, condition_role_problem, ensure_role_assignment
from ._errors import AzureApiError, ValidationError
from ._ids import parse_scope
from ._inventory import WorkloadSpec
from ._inventory_fields import privileged_problem
from ._limits import GRANT_ACTION, PRIVILEGED_SCOPE_KINDS
from ._lock import object_lock
from ._ownership_assignments import (
    DESCRIPTION_MAX,
    AssignmentMark,
    made_by_collection_assignment,
    marked_description,
    read_mark,
)
from ._results import PrunedAssignment, RoleAssignmentRow

Pair = tuple[str, str]  # (scope key, role definition GUID): one assignment of a principal


class RoleAssignments:
    """ARM role assignments of the batch's principals (identities' and applications' service principals alike)."""

    report_key = "role_assignments"

    def __init__(self, ctx: BatchContext) -> None:
        self.ctx = ctx

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
        """Each declared role: resolved, allowed, and its scope checked where an assignment would be created."""
        where = f"cluster {batch.cluster}: workload '{workload.name}'"
        listed = reads.assignments.get(str(principal).lower(), []) if principal else []
        for index, spec in enumerate(workload.roles):
            at = f"{where}: roles[{spec.listed_at(index)}]"
            try:
                role = resolve(self.ctx, spec, reads)
            except ValidationError as exc:
                hint = reads.role_hints.get(role_key(workload, spec.role, spec.scope), "")
                problems.extend(f"{at}: {p}{hint}" for p in exc.problems)
                continue
            kind = parse_scope(spec.scope).kind
            problem = None if batch.allow_privileged_roles else self._privileged(role, kind, spec.scope, at)
            if problem:
                problems.append(problem)
            refused = condition_role_problem(role, spec.condition) if spec.condition else None
            if refused:
                problems.append(f"{at}: condition: {refused}")
            if role.data_actions and kind in PRIVILEGED_SCOPE_KINDS:
                self.ctx.warnings.append(
                    f"{at}: role: {role.name or role.guid} at {kind} scope reads or changes the data of every "
                    f"resource it covers in {spec.scope}; a narrower scope is safer"
                )
            exists = principal is not None and self.ctx.roles.find(spec.scope, principal, role.guid, listed) is not None
            scope_problem = None if exists else self._scope_problem(spec.scope, reads)
            if scope_problem:
                problems.append(f"{at}: scope: {scope_problem}")
            resolved[role_key(workload, spec.role, spec.scope)] = role

    @staticmethod
    def _privileged(role: Role, kind: str, scope: str, at: str) -> str | None:
        problem = privileged_problem(role.guid, kind, scope, at)
        if problem is None and role.allows(GRANT_ACTION):
            problem = (
                f"{at}: role: {role.name or role.guid} allows {GRANT_ACTION}, so the workload could grant "
                f"roles, itself included: refused for a workload identity at any scope ({scope}) "
                "(set allow_privileged_roles to allow it)"
            )
        return problem

    def _scope_problem(self, scope: str, reads: Reads) -> str | None:
        """Why an assignment cannot be made at the scope (it does not exist, or may not be read), once per scope."""
        key = parse_scope(scope).key
        if key not in reads.scope_problems:
            try:
                self.ctx.roles.list_at(scope, filter="atScope()")
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

    def declared(self, workload: WorkloadSpec, resolved: Resolved) -> set[Pair]:
        """The workload's declared assignments, as resolved by ``check``."""
        return {(parse_scope(r.scope).key, resolved[role_key(workload, r.role, r.scope)].guid) for r in workload.roles}

    def resolve_declared(self, batch: Batch, workload: WorkloadSpec, reads: Reads, position: int) -> Role:
        """One declared role, resolved outside a plan (teardown), its problem named after the workload."""
        try:
            return resolve(self.ctx, workload.roles[position], reads)
        except ValidationError as exc:
            where = f"cluster {batch.cluster}: workload '{workload.name}': roles[{position}]"
            raise ValidationError([f"{where}: {p}" for p in exc.problems]) from exc

    # -- writing --------------------------------------------------------------------------------------
    def ensure(
        self,
        workload: WorkloadSpec,
        principal: str,
        listed: list[Any],
        resolved: Resolved,
        check_mode: bool,
        sides: tuple[dict[str, Any], dict[str, Any]],
        exact: bool,
        mark: AssignmentMark,
        shared_with: list[str] | None = None,
    ) -> list[RoleAssignmentRow]:
        """Exactly the declared role assignments, for the principal of an identity or an application.

        ``exact`` for this collection's own identity or application: on its assignments, unset means none (a
        condition dropped from the inventory, or added by hand, is removed). What this collection grants carries
        ``mark`` at the end of its description; an operator's assignment is adopted as it is, and reported so.
        ``sides``: the diff's before and after, filled in. ``shared_with``: the other clusters of this run that use
        the same principal: each assignment is made once, by the first to get there, and found by the others; the
        rows say which cluster made it.
        """
        seen, planned = sides
        rows: list[RoleAssignmentRow] = []
        for index, spec in enumerate(workload.roles):
            position = spec.listed_at(index)
            role = resolved[role_key(workload, spec.role, spec.scope)]
            written = marked_description(spec.description, mark.text)
            if len(written) > DESCRIPTION_MAX:
                raise ValidationError(
                    [
                        f"roles[{position}].description: with the collection's mark ({len(mark.text)} characters) it "
                        f"would be {len(written)} characters, more than Azure keeps ({DESCRIPTION_MAX}); shorten it to "
                        f"at most {DESCRIPTION_MAX - len(mark.text) - 1}"
                    ]
                )
            # Another cluster's host may grant the same assignment at this moment: one of them makes it, under a lock.
            together = bool(shared_with) and not check_mode
            key = f"assignment:{principal}:{parse_scope(spec.scope).key}:{role.guid}"
            with object_lock(key) if together else nullcontext():
                outcome = ensure_role_assignment(
                    self.ctx.roles,
                    scope=spec.scope,
                    role=role,
                    principal_id=principal,
                    principal_type="ServicePrincipal",
                    state="present",
                    check_mode=check_mode,
                    condition=spec.condition,
                    condition_version=spec.condition_version,
                    description=spec.description,
                    listed=listed,
                    exact=exact,
                    mark=mark.text,
                    shared=bool(shared_with),
                )
            if outcome.before:
                seen[self.report_key].append(f"{role.name} @ {spec.scope}")
            planned[self.report_key].append(f"{role.name} @ {spec.scope}")
            before = outcome.before
            adopted = before is not None and not made_by_collection_assignment(
                before["name"], before["description"], before["scope"], role.guid, principal
            )
            notes = list(outcome.notes)
            made_by = read_mark(before["description"]) if before is not None and not adopted else None
            if made_by is not None and not made_by.of(mark.cluster, mark.place):
                notes.append(
                    f"made by cluster {made_by.cluster} (its workload {made_by.namespace}/{made_by.workload}), which "
                    "shares the identity; found here"
                )
            elif outcome.action == "created" and shared_with:
                notes.append(
                    f"shared with cluster(s) {', '.join(shared_with)} of this run: made once, by the first to get "
                    "there; the others find it"
                )
            rows.append(
                {
                    "role": role.name,
                    "role_definition_guid": role.guid,
                    "scope": spec.scope,
                    # A new principal's assignments are named after it, and Entra assigns it on creation.
                    "name": None if principal == PENDING or not outcome.after else outcome.after["name"],
                    "action": outcome.action,
                    "adopted": adopted,
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
        only: set[Pair] | None = None,
        keep: frozenset[Pair] | set[Pair] = frozenset(),
    ) -> list[PrunedAssignment]:
        """Delete the principal's assignments (those in ``only``, if given) that are not in ``keep``; returns what
        was (or would be) deleted."""
        removed: list[PrunedAssignment] = []
        for model in reads.assignments.get(str(principal_id).lower(), []):
            state = assignment_state(model)
            pair = (parse_scope(state["scope"]).key, state["role_definition_guid"])
            if (only is not None and pair not in only) or pair in keep:
                continue
            role = reads.role_of(batch.subscription_id, model)
            if self.delete_listed(model, role, check_mode) == "deleted":
                removed.append(
                    {
                        "identity": label,
                        "role": role.name,
                        "role_definition_guid": state["role_definition_guid"],
                        "scope": state["scope"],
                        "name": state["name"],
                    }
                )
        return removed

    def delete_listed(self, model: Any, role: Role, check_mode: bool) -> str:
        """One role assignment as listed, deleted through the engine; its action (``deleted``, or ``absent``)."""
        state = assignment_state(model)
        return ensure_role_assignment(
            self.ctx.roles,
            scope=state["scope"],
            role=role,
            principal_id=state["principal_id"],
            principal_type=state["principal_type"] or "ServicePrincipal",
            state="absent",
            check_mode=check_mode,
            listed=[model],
        ).action
