# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): one cluster's workloads, verified link by link.

Azure is read once for the cluster, as the rollout's plan reads it (``_azure_batch_reads``): identities,
credentials, role definitions and every assignment of the subscriptions involved. Then, per workload
(a bounded pool at a time), the chain as its pods go through it:

1. ``identity``: the identity (or app registration and its service principal) exists;
2. ``service_account``: the account exists and names its client id (and tenant);
3. ``pod_template``: each listed controller's pod template carries the label and the account;
4. ``webhook``: a server-side dry-run pod of each comes back mutated (token file, client id, audience);
5. ``sign_in``: a token for the account exchanges at Entra for an ARM token of the identity, a new
   credential waited out for a bounded time;
6. ``permissions``: with that token, ARM's permissions API grants each declared role's actions at its scope; and
   on a key vault's data plane, where the workload declares it may read secrets there (by an access policy entry, or
   by a role with Key Vault data actions), one harmless read as the workload: the vault itself says whether it
   lets the workload in, whatever ARM lists (a vault with access policies ignores role assignments for its data);

and the access review: ``assignments`` the principal holds beyond the declared ones (from the read above).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._azure_application import application_state
from ._azure_batch_reads import Batch, Reads, ref_key
from ._azure_client import Connection
from ._azure_errors import translate
from ._azure_role_assignment import Role
from ._errors import ApiError, KubeApiError, ValidationError
from ._ids import parse_scope, role_guid
from ._inventory import RoleSpec, WorkloadSpec
from ._results import FederatedCredentialState
from ._retry import WEBHOOK_FAILED
from ._verify_checks import (
    Problem,
    credential_problem,
    described_assignment,
    dry_run_pod,
    mutation_problem,
    permission_gaps,
    probe_template,
    rerun,
    service_account_problem,
    template_problem,
    webhook_failure,
)
from ._verify_data_planes import DataPlanes
from ._verify_findings import CHAIN, PROPAGATION_CODES, Verdict, aadsts_cause, aadsts_code
from ._verify_probes import ArmProbe, KubeProbe, exchange_error

POLL_SECONDS = 5.0


class Trust(NamedTuple):
    """The credential that trusts this cluster's token (or the closest one), and what is wrong, if anything."""

    matched: FederatedCredentialState | None
    problem: Problem | None


@dataclass
class Signer:
    """Whom a workload signs in as, read from Azure."""

    kind: str
    name: str
    client_id: str
    principal_id: str
    tenant_id: str | None
    credentials: list[Any]


class Verifier:
    def __init__(
        self,
        batch: Batch,
        reads: Reads,
        resolve: Callable[[RoleSpec, Reads], Role],
        kube: KubeProbe,
        arm: ArmProbe,
        connection: Connection,
        propagation_wait: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch, self.reads, self.resolve = batch, reads, resolve
        self.kube, self.arm, self.connection = kube, arm, connection
        self.propagation_wait = propagation_wait
        self.data_planes = DataPlanes(reads, arm, batch.cluster)  # grants where they take effect: on the services
        self.sleep, self.clock = sleep, clock

    @property
    def cluster(self) -> str:
        return self.batch.cluster

    def verify_all(self, workers: int) -> list[Verdict]:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            verdicts = list(pool.map(self.verify, self.batch.workloads))
        for verdict in verdicts:
            self._orphans(verdict)
        return verdicts

    def _orphans(self, verdict: Verdict) -> None:
        """The role assignments this collection granted for the workload whose principal is gone (or unused): the
        rollout with prune deletes them; verify only says so."""
        for orphan in self.reads.orphans:
            if (orphan.mark.namespace, orphan.mark.workload) != (verdict.namespace, verdict.name):
                continue
            role = self.reads.role_of(self.batch.subscription_id, orphan.model)
            verdict.find(
                "assignments",
                f"orphaned: {described_assignment(role.name, role.guid, orphan.model.scope)} granted to "
                f"{orphan.mark.kind} {orphan.mark.holder}; {orphan.why}",
                f"run the rollout with prune to delete it, or delete it (az role assignment delete --ids "
                f"{orphan.model.id}); verify removes nothing",
            )

    def verify(self, workload: WorkloadSpec) -> Verdict:
        verdict = Verdict(workload.name, workload.namespace, workload.service_account)
        signer = self._signer(workload, verdict)
        if signer is None:
            return verdict
        verdict.identity = {
            "kind": signer.kind,
            "name": signer.name,
            "client_id": signer.client_id,
            "principal_id": signer.principal_id,
            "tenant_id": signer.tenant_id,
        }
        # The credential that trusts this cluster's token (or the closest one, and what is wrong with it): shown
        # whichever link breaks, and what the sign-in's refusal is explained with.
        trust = Trust(None, None)
        if self.batch.issuer_url:
            trust = Trust(
                *credential_problem(
                    self.cluster, signer.name, signer.credentials, self.batch.issuer_url, workload.subject
                )
            )
        if trust.matched is not None:
            verdict.credential = {k: trust.matched[k] for k in ("name", "issuer", "subject")}
        roles = self._roles(workload)
        # The ARM roles, then the Cosmos DB SQL roles (checked as their accounts hold them), then each database role's
        # memberships (as their servers hold them).
        declared = [(r.role, r.scope) for r in workload.roles] + [(c.role, c.scope) for c in workload.cosmos_roles]
        declared += [
            (f"{role} (database role {d.user})", f"{d.server}/databases/{d.database}")
            for d in workload.database_roles
            for role in d.roles
        ]
        verdict.roles = [{"role": role, "scope": scope, "granted": None} for role, scope in declared]
        try:
            self._chain(workload, signer, trust, roles, verdict)
        except ApiError as exc:
            # A link that could not be checked is not verified: say which (the first one not reached), and why.
            link = next((link for link in CHAIN if link not in verdict.links), "permissions")
            verdict.find(link, f"could not be checked: {exc}", "see the error; run verify again once it is fixed")
        self._review(signer, roles, verdict, workload)
        return verdict

    # -- the identity -------------------------------------------------------------------------------
    def _signer(self, workload: WorkloadSpec, verdict: Verdict) -> Signer | None:
        if workload.is_application:
            app, principal = self.reads.applications.get(workload.name, (None, None))
            label = workload.application_id or workload.application_unique_name
            if app is None:
                verdict.find("identity", f"app registration {label} does not exist", rerun(self.cluster, "it makes it"))
                return None
            state = application_state(app, principal)
            if not state["service_principal_id"]:
                verdict.find(
                    "identity",
                    f"app registration {label} has no service principal: nothing can sign in as it",
                    rerun(self.cluster, "it makes the service principal"),
                )
                return None
            verdict.passed("identity")
            credentials = self.reads.app_fics.get(str(app["id"]), [])
            return Signer(
                "application",
                str(state["display_name"] or label),
                str(state["app_id"]),
                str(state["service_principal_id"]),
                state["tenant_id"],
                credentials,
            )
        ref = self.batch.ref(workload)
        identity = self.reads.identity(ref)
        if identity is None or not identity["client_id"] or not identity["principal_id"]:
            verdict.find(
                "identity",
                f"identity {workload.identity_name} does not exist in {ref.resource_group}",
                rerun(self.cluster, "it creates it"),
            )
            return None
        verdict.passed("identity")
        credentials = self.reads.fics.get(ref_key(ref), [])
        return Signer(
            "user_assigned",
            identity["name"],
            identity["client_id"],
            identity["principal_id"],
            identity["tenant_id"],
            credentials,
        )

    def _roles(self, workload: WorkloadSpec) -> list[tuple[RoleSpec, Role | None]]:
        resolved: list[tuple[RoleSpec, Role | None]] = []
        for spec in workload.roles:
            try:
                resolved.append((spec, self.resolve(spec, self.reads)))
            except (ApiError, ValidationError):
                resolved.append((spec, None))  # reported where its permissions are checked
        return resolved

    # -- the chain ----------------------------------------------------------------------------------
    def _chain(
        self,
        workload: WorkloadSpec,
        signer: Signer,
        trust: Trust,
        roles: list[tuple[RoleSpec, Role | None]],
        verdict: Verdict,
    ) -> None:
        cluster, namespace, account = self.cluster, workload.namespace, workload.service_account
        problem = service_account_problem(
            cluster, self.kube.account(namespace, account), namespace, account, signer.client_id, signer.tenant_id
        )
        if problem:
            verdict.find("service_account", *problem)
            return
        verdict.passed("service_account", f"ServiceAccount {namespace}/{account} names client id {signer.client_id}")
        templates: list[tuple[str, str, dict[str, Any]]] = []  # (what, name, pod template)
        for controller in workload.controllers:
            template = self.kube.template(controller.kind, namespace, controller.name)
            problem = template_problem(cluster, controller.kind, namespace, controller.name, template, account)
            if problem:
                verdict.find("pod_template", *problem)
                return
            templates.append((f"{controller.kind} {namespace}/{controller.name}", controller.name, template or {}))
        verdict.passed("pod_template")
        if not templates:
            templates = [(f"ServiceAccount {namespace}/{account}", account, probe_template(account))]
        for what, name, template in templates:
            try:
                pod = self.kube.dry_run(namespace, dry_run_pod(namespace, name, template), what)
            except KubeApiError as exc:
                if exc.code != WEBHOOK_FAILED:
                    raise
                verdict.find("webhook", *webhook_failure(cluster, what, exc.message))
                return
            problem = mutation_problem(cluster, what, pod, signer.client_id, signer.tenant_id)
            if problem:
                verdict.find("webhook", *problem)
                return
        verdict.passed("webhook", f"the webhook mutates a pod of {templates[0][0]} (dry run)")
        credential = self._sign_in(workload, signer, trust, verdict)
        if credential is None:
            return
        self._permissions(signer, roles, credential, verdict, workload)

    def _sign_in(self, workload: WorkloadSpec, signer: Signer, trust: Trust, verdict: Verdict) -> Any:
        """The workload's credential once Entra accepted its token; None (and the finding) if it did not."""
        if not self.batch.issuer_url:
            verdict.find(
                "sign_in", "the cluster's OIDC issuer is not enabled", rerun(self.cluster, "it enables the issuer")
            )
            return None
        matched, problem = trust
        token = self.kube.token(workload.namespace, workload.service_account)
        credential = self.connection.workload_credential(signer.tenant_id or "", signer.client_id, lambda: token)
        started = self.clock()
        while True:
            try:
                credential.get_token(self.connection.scope)
                break
            except Exception as exc:  # Entra's refusal; an unreachable Entra is an ApiError; anything else is a bug
                refusal = exchange_error(exc)
                if refusal is None:
                    error = translate(exc, f"exchange the token of {workload.namespace}/{workload.service_account}")
                    if error is None:
                        raise
                    raise error from exc
            waited = self.clock() - started
            # A credential that matches exactly but is refused is one Entra has not propagated yet: wait, bounded.
            if problem is None and aadsts_code(refusal) in PROPAGATION_CODES and waited < self.propagation_wait:
                self.sleep(min(POLL_SECONDS, self.propagation_wait - waited))
                continue
            cause = aadsts_cause(refusal)
            if problem is not None:
                verdict.find("sign_in", f"{problem[0]}; Entra: {cause}", problem[1])
            else:
                verdict.find(
                    "sign_in",
                    f"Entra refuses the token of {workload.namespace}/{workload.service_account} for client id "
                    f"{signer.client_id} after {waited:.0f} s although credential {matched and matched['name']} "
                    f"matches it: {cause}",
                    "wait for the credential to propagate (up to a few minutes) and run verify again; if it persists, "
                    "compare the credential with the token's issuer and subject",
                )
            return None
        waited = self.clock() - started
        verdict.sign_in_wait = round(waited, 1) if waited >= POLL_SECONDS else None
        if problem is not None:
            # Entra let it in although no credential read here matches: another credential Entra knows (a caveat).
            verdict.details.append(f"signed in, although {problem[0]}")
        after = f" after waiting {waited:.0f} s for the credential to propagate" if verdict.sign_in_wait else ""
        verdict.passed("sign_in", f"signed in as {signer.client_id}{after}")
        return credential

    def _permissions(
        self,
        signer: Signer,
        roles: list[tuple[RoleSpec, Role | None]],
        credential: Any,
        verdict: Verdict,
        workload: WorkloadSpec,
    ) -> None:
        held = {key for key, _model in self._held(signer)}
        granted_at: dict[str, list[dict[str, Any]]] = {}
        for index, (spec, role) in enumerate(roles):
            if role is None:
                verdict.roles[index]["granted"] = False
                verdict.find(
                    "permissions",
                    f"role {spec.role} is not found at {spec.scope}",
                    "correct the role's name or id in the inventory",
                )
                continue
            key = parse_scope(spec.scope).key
            if key not in granted_at:
                granted_at[key] = self.arm.permissions(credential, spec.scope)
            gaps = permission_gaps(role, granted_at[key])
            assigned = (role.guid.lower(), key) in held
            verdict.roles[index]["granted"] = not gaps and assigned
            what = described_assignment(role.name or spec.role, role.guid, spec.scope)
            if gaps:
                why = "it is not assigned" if not assigned else "it is assigned, yet ARM does not grant it"
                verdict.find(
                    "permissions",
                    f"{what}: the workload's own token is not granted {len(gaps)} of its actions ({', '.join(gaps[:3])}"
                    f"{', ...' if len(gaps) > 3 else ''}): {why}",
                    rerun(self.cluster, "it assigns the role")
                    if not assigned
                    else "look for a deny assignment or a condition at that scope; ARM can take minutes to apply a "
                    "new assignment",
                )
            elif not assigned:
                verdict.find(
                    "permissions",
                    f"{what} is not assigned; what it grants comes from other roles the principal holds",
                    rerun(self.cluster, "it assigns the role"),
                )
        reads = self.data_planes.check(signer.principal_id, signer.name, workload, roles, credential, verdict)
        if not any(f.link == "permissions" for f in verdict.findings):
            on_vaults = f"; {reads} service(s) let it read, asked as the workload" if reads else ""
            verdict.passed("permissions", f"ARM grants each declared role's actions ({len(roles)} roles){on_vaults}")

    # -- the access review ----------------------------------------------------------------------------
    def _held(self, signer: Signer) -> list[tuple[tuple[str, str], Any]]:
        """The principal's assignments (as the rollout's reads listed them), each with its (role GUID, scope key)."""
        return [
            ((role_guid(m.role_definition_id).lower(), parse_scope(str(m.scope)).key), m)
            for m in self.reads.assignments.get(signer.principal_id.lower(), [])
        ]

    def _review(
        self,
        signer: Signer,
        roles: list[tuple[RoleSpec, Role | None]],
        verdict: Verdict,
        workload: WorkloadSpec,
    ) -> None:
        declared = {(role.guid.lower(), parse_scope(spec.scope).key) for spec, role in roles if role is not None}
        extras = [model for key, model in self._held(signer) if key not in declared]
        for model in extras:
            sub = self.batch.subscription_id
            role = self.reads.role_of(sub, model)
            verdict.find(
                "assignments",
                f"{signer.name} holds {described_assignment(role.name, role.guid, model.scope)}, which the workload "
                "does not declare",
                f"remove it (az role assignment delete --ids {model.id}) or declare it in the workload's roles; "
                "verify removes nothing",
            )
        entries = self.data_planes.extras(signer.principal_id, signer.name, workload, verdict)
        if not extras and not entries:
            verdict.passed("assignments", "no role assignment beyond the declared ones")
