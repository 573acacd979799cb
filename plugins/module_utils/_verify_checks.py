# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): verification's judgements, on what was read.

No I/O here: each function takes what a probe read (a ServiceAccount, a pod template, a dry-run pod,
the credentials, ARM's permissions) and says what is wrong with it, if anything, as (message, remedy).
"""

from __future__ import annotations

import difflib
from typing import Any

from ._azure_role_assignment import Role, action_matches
from ._kube_paths import CLIENT_ID, TENANT_ID, USE_LABEL
from ._limits import DEFAULT_AUDIENCE
from ._results import FederatedCredentialState

Problem = tuple[str, str]  # (what is wrong, what to do)
# What the webhook adds to a pod (azure-workload-identity's mutation).
TOKEN_FILE_ENV = "AZURE_FEDERATED_TOKEN_FILE"
TOKEN_PATH = "azure-identity-token"


def rerun(cluster: str, what: str) -> str:
    # By the name an installed collection's playbook has (a checkout's playbooks/site.yml is the same playbook).
    return f"run workload_identity.aks.site for {cluster} ({what})"


def service_account_problem(
    cluster: str, account: dict[str, Any] | None, namespace: str, name: str, client_id: str, tenant_id: str | None
) -> Problem | None:
    if account is None:
        return f"ServiceAccount {namespace}/{name} does not exist", rerun(cluster, "it creates and annotates it")
    annotations = (account.get("metadata") or {}).get("annotations") or {}
    named = annotations.get(CLIENT_ID)
    if named != client_id:
        said = f"names client id {named}" if named else f"has no {CLIENT_ID} annotation"
        return (
            f"ServiceAccount {namespace}/{name} {said}; the identity's client id is {client_id}",
            rerun(cluster, "it annotates the account with the identity's client id; bound controllers restart"),
        )
    tenant = annotations.get(TENANT_ID)
    if tenant and tenant_id and tenant.lower() != tenant_id.lower():
        return (
            f"ServiceAccount {namespace}/{name} names tenant {tenant}; the identity is in tenant {tenant_id}",
            rerun(cluster, "it sets the tenant annotation"),
        )
    return None


def template_problem(
    cluster: str, kind: str, namespace: str, name: str, template: dict[str, Any] | None, account: str
) -> Problem | None:
    where = f"{kind} {namespace}/{name}"
    if template is None:
        return (
            f"{where} does not exist",
            f"deploy it, or take it out of the workload's controllers in the inventory and {rerun(cluster, 'again')}",
        )
    labels = (template.get("metadata") or {}).get("labels") or {}
    bound_to = (template.get("spec") or {}).get("serviceAccountName") or "default"
    if labels.get(USE_LABEL) != "true":
        return (
            f'{where}: its pod template lacks the label {USE_LABEL}: "true" (the webhook leaves its pods alone)',
            rerun(cluster, "it labels the pod template; the controller rolls out"),
        )
    if bound_to != account:
        return (
            f"{where}: its pods run as ServiceAccount {bound_to}, not {account}",
            rerun(cluster, "it binds the pod template to the account; the controller rolls out"),
        )
    return None


def dry_run_pod(namespace: str, name: str, template: dict[str, Any]) -> dict[str, Any]:
    """A pod as the controller would create it, for a server-side dry run (never stored)."""
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{name[:40]}-verify-",
            "namespace": namespace,
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        },
        "spec": template.get("spec") or {},
    }


def probe_template(account: str) -> dict[str, Any]:
    """A workload that lists no controller: a pod of its account is what the webhook must mutate."""
    return {
        "metadata": {"labels": {USE_LABEL: "true"}},
        "spec": {
            "serviceAccountName": account,
            "containers": [{"name": "verify", "image": "mcr.microsoft.com/oss/kubernetes/pause:3.9"}],
        },
    }


def mutation_problem(
    cluster: str, what: str, pod: dict[str, Any], client_id: str, tenant_id: str | None
) -> Problem | None:
    """Whether the dry-run pod came back as the webhook mutates it: token file, client id, audience."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    envs = [{e.get("name"): e.get("value") for e in c.get("env") or []} for c in containers]
    injected = [env for env in envs if TOKEN_FILE_ENV in env]
    # The webhook's projected token (its volume's name varies by release; the token's path does not).
    tokens = [
        source["serviceAccountToken"]
        for volume in spec.get("volumes") or []
        for source in (volume.get("projected") or {}).get("sources") or []
        if str((source.get("serviceAccountToken") or {}).get("path") or "").endswith(TOKEN_PATH)
    ]
    audiences = [t.get("audience") for t in tokens]
    if not injected and not tokens:
        return (
            f"no webhook answered: a pod of {what} is created without what the webhook injects "
            f"({TOKEN_FILE_ENV}, a projected token)",
            "register the azure-workload-identity webhook on the cluster: workload_identity_webhook_mode addon (AKS "
            f"turns it on) or helm, then {rerun(cluster, 'it enables it')}",
        )
    wrong_client = sorted({str(env.get("AZURE_CLIENT_ID")) for env in injected} - {client_id})
    if wrong_client:
        return (
            f"the webhook injects client id {', '.join(wrong_client)} into a pod of {what}, not {client_id}",
            rerun(cluster, "it annotates the ServiceAccount with the identity's client id"),
        )
    wrong_tenant = sorted({str(env.get("AZURE_TENANT_ID")) for env in injected} - {str(tenant_id)}) if tenant_id else []
    if wrong_tenant:
        return (
            f"the webhook injects tenant {', '.join(wrong_tenant)} into a pod of {what}; the identity is in "
            f"{tenant_id}",
            rerun(cluster, "it sets the ServiceAccount's tenant annotation"),
        )
    if DEFAULT_AUDIENCE not in audiences:
        return (
            f"the token projected into a pod of {what} has audience {', '.join(map(str, audiences)) or '(none)'}, "
            f"not {DEFAULT_AUDIENCE}",
            "set the webhook's audience back to api://AzureADTokenExchange (its default)",
        )
    return None


def webhook_failure(cluster: str, what: str, message: str) -> Problem:
    return (
        f"webhook failed: creating a pod of {what} fails in admission: {message[:400]}",
        "the webhook is registered but does not answer: check its pods (namespace azure-workload-identity-system, or "
        "kube-system for the AKS add-on) and their logs; until it answers, labelled pods are not created",
    )


def credential_problem(
    cluster: str, identity: str, credentials: list[FederatedCredentialState], issuer: str, subject: str
) -> tuple[FederatedCredentialState | None, Problem | None]:
    """The credential that should let this cluster's token in, and what is wrong with the credentials if none does."""
    exact = [
        c
        for c in credentials
        if c["issuer"] == issuer and c["subject"] == subject and DEFAULT_AUDIENCE in (c.get("audiences") or [])
    ]
    if exact:
        return exact[0], None
    fix = rerun(cluster, "it writes the credential")
    by_subject = [c for c in credentials if c["subject"] == subject]
    if by_subject:
        found = by_subject[0]
        if found["issuer"] == issuer:
            return found, (
                f"federated credential {found['name']} on {identity} lists audiences "
                f"{', '.join(found.get('audiences') or [])}, not {DEFAULT_AUDIENCE}",
                fix,
            )
        how = ""
        if found["issuer"].rstrip("/") == issuer.rstrip("/"):
            how = " (they differ in the trailing slash)"
        elif found["issuer"].lower() == issuer.lower():
            how = " (they differ in case)"
        return found, (
            f"federated credential {found['name']} on {identity} trusts issuer '{found['issuer']}', not the "
            f"cluster's '{issuer}'{how}",
            fix,
        )
    by_issuer = [c for c in credentials if c["issuer"] == issuer]
    if by_issuer:
        closest = difflib.get_close_matches(subject, [c["subject"] for c in by_issuer], n=1, cutoff=0.6)
        near = next((c for c in by_issuer if c["subject"].lower() == subject.lower()), None) or next(
            (c for c in by_issuer if closest and c["subject"] == closest[0]), None
        )
        if near is not None:
            case = " (they differ only in case)" if near["subject"].lower() == subject.lower() else ""
            return near, (
                f"federated credential {near['name']} on {identity} trusts subject '{near['subject']}', not "
                f"'{subject}'{case}",
                fix,
            )
    return None, (f"no federated credential on {identity} trusts {subject} from the cluster's issuer", fix)


def permission_gaps(role: Role, granted: list[dict[str, Any]]) -> list[str]:
    """The role's actions and data actions that ARM's permissions, as the workload holds them, do not grant."""

    def allowed(action: str, key: str, not_key: str) -> bool:
        return any(
            any(action_matches(g, action) for g in block.get(key) or [])
            and not any(action_matches(n, action) for n in block.get(not_key) or [])
            for block in granted
        )

    gaps: list[str] = []
    for actions, _not_actions, data_actions in role.permissions:
        gaps += [a for a in actions if not allowed(a, "actions", "notActions")]
        gaps += [a for a in data_actions if not allowed(a, "dataActions", "notDataActions")]
    return list(dict.fromkeys(gaps))


def described_assignment(role: str | None, guid: str, scope: str) -> str:
    return f"{role or 'role ' + guid} at {scope}"
