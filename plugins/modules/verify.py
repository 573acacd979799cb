#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: verify
short_description: Prove that each workload of a cluster signs in and holds exactly what it declares
version_added: 0.1.0
description:
  - For each workload of the list, checks the chain its pods go through, in order, and stops at the first broken
    link, naming it and its remedy.
  - C(identity), the managed identity (or app registration and its service principal) exists.
  - C(service_account), the ServiceAccount exists and its C(azure.workload.identity/client-id) (and C(tenant-id))
    annotations name that identity.
  - C(pod_template), each listed controller's pod template carries the label C(azure.workload.identity/use=true)
    and runs as that ServiceAccount.
  - C(webhook), a server-side dry-run pod made from each template (from the account alone when the workload lists
    no controller) comes back mutated by the azure-workload-identity webhook, with C(AZURE_CLIENT_ID) (the
    identity's), C(AZURE_FEDERATED_TOKEN_FILE) and a projected token of audience C(api://AzureADTokenExchange).
    "No webhook answered" (nothing mutated the pod) and "webhook failed" (admission could not call it) are distinct
    findings.
  - C(sign_in), a token for the ServiceAccount (TokenRequest, audience C(api://AzureADTokenExchange), 10 minutes)
    exchanges at Entra ID for an ARM token of the identity. A credential that matches exactly but is refused is
    waited out for O(propagation_wait) seconds (a new credential takes up to a minute or so), and the wait is
    reported. Entra's AADSTS codes are told as plain causes, with what is wrong in the credentials as Azure has them
    (an issuer with another trailing slash, a subject with a typo, no credential).
  - C(permissions), with the workload's own token, ARM's permissions API at each declared scope grants each
    declared role's actions and data actions, and the assignment itself is there. Then the services themselves say
    whether they let the workload in, where it declares it may read. On a key vault, its access policy entry as the
    vault holds it, and one read as the workload (its secrets' names, or a secret no one has; never a value), by an
    entry or by a role; a role that a vault with access policies ignores is a finding, with the entry to declare. On a
    blob container, with a role that reads blobs there, a list of at most one blob's name. On a Cosmos DB account,
    each SQL role assignment as the account holds it, then as the workload the metadata of its scope and, where the
    role reads items, an item no one has in the container (never an item). The controller must reach the service's
    host (C(<vault>.vault.azure.net), C(<account>.blob.core.windows.net), C(<account>.documents.azure.com)); one
    that does not resolve from there is reported as not checked, naming the host.
  - C(assignments), the access review, outside the chain; the principal holds no role assignment beyond the
    declared ones, in the subscriptions the workloads' scopes name, no key vault access policy entry and no Cosmos DB
    SQL role assignment beyond the declared ones. Extras are findings; nothing is removed.
  - Read only, with read permissions (Reader; Graph's C(Application.Read.All) for app registrations). A dry run
    stores no pod and a TokenRequest stores nothing. The tokens stay in memory and never
    appear in the result, even with C(-vvv).
  - Azure is read once for the cluster, as the rollout reads it. Each workload costs one read of its
    ServiceAccount, one of each controller, one dry run per template, one token request, one exchange at Entra,
    one permissions read per declared scope, and one read per vault or container it may read (with a token
    exchanged for that service), two per Cosmos DB container it reads items from. When the workloads declare access
    policies, the subscription's vaults are listed once for the access review; when they declare Cosmos DB SQL roles,
    its Cosmos DB accounts, and each account's SQL roles and assignments are read once.
options:
  cluster_name:
    description: The cluster's name, as the inventory names it.
    type: str
    required: true
  cluster_resource_group:
    description: The cluster's resource group (tells this cluster's identities apart from a same-named cluster's).
    type: str
  issuer_url:
    description: The cluster's OIDC issuer URL, as AKS reports it. Unset, every workload's sign-in is a finding.
    type: str
  identity_resource_group:
    description: Where workloads' identities are, unless a workload says otherwise.
    type: str
  workloads:
    description:
      - The cluster's workloads, as M(workload_identity.aks.workload_identities) takes them (the inventory's
        C(workload_identity_workloads)), a list of mappings taken as the inventory holds it and checked by the
        module (a problem names the cluster, the workload and the field).
    type: raw
    required: true
  accepted:
    description:
      - Findings that are known and accepted. Each entry names the C(workload), the C(link) (one of C(identity),
        C(service_account), C(pod_template), C(webhook), C(sign_in), C(permissions), C(assignments)), the
        C(reason) (shown in the access review), and optionally C(matching), a text the finding must contain (a
        role's name, a scope).
      - An accepted finding does not count against the run; a broken link still stops its workload's chain.
    type: list
    elements: raw
    default: []
  propagation_wait:
    description: Seconds to wait for Entra to accept a credential that matches exactly (a new one propagating).
    type: float
    default: 120
  max_concurrency:
    description: How many workloads are checked at a time.
    type: int
    default: 8
extends_documentation_fragment:
  - workload_identity.aks.azure
  - workload_identity.aks.kube
  - workload_identity.aks.azure.INFO_ATTRIBUTES
requirements:
  - kubernetes >= 24.2 (the Python client)
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Verify every workload of aks-prod
  workload_identity.aks.verify:
    cluster_name: aks-prod
    cluster_resource_group: rg-aks-prod
    issuer_url: "{{ issuer.issuer_url }}"
    identity_resource_group: rg-identities-prod
    context: aks-prod
    workloads: "{{ workload_identity_workloads }}"
    accepted:
      - workload: reports
        link: assignments
        matching: Reader
        reason: read access across the subscription is approved (CHG-1234)
  register: verified

- name: Fail on what is not accepted
  ansible.builtin.assert:
    that: verified.summary.findings == 0
"""

RETURN = r"""
schema_version:
  description:
    - The version of the review's contract (the keys below); raised when a key is renamed or removed, or changes
      meaning, so that whoever reads the written review (C(<cluster>.verify.json)) can tell.
  returned: always
  type: int
  sample: 1
  version_added: 0.2.0
cluster:
  description: The cluster.
  returned: always
  type: str
issuer_url:
  description: The issuer the credentials were checked against.
  returned: always
  type: str
checked_at:
  description: When the chains were checked (UTC, ISO 8601).
  returned: always
  type: str
workloads:
  description: Per workload, in the order given, its chain as checked.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The workload.
      type: str
    identity:
      description: C(kind) (C(user_assigned) or C(application)), C(name), C(client_id), C(principal_id), C(tenant_id);
        empty when it does not exist.
      type: dict
    credential:
      description: The federated credential that trusts this cluster's token (C(name), C(issuer), C(subject)), or the
        closest one when none matches; null when there is none.
      type: dict
    roles:
      description: Each declared role, C(role), C(scope) and C(granted) (null when the chain stopped before it).
      type: list
      elements: dict
    links:
      description: Each link in chain order, C(link) and C(status) (C(ok), C(broken), C(accepted), C(not checked)).
      type: list
      elements: dict
    findings:
      description: What is wrong, each with C(link), C(message), C(remedy) and C(accepted) (the reason, or null).
      type: list
      elements: dict
    verified:
      description: Whether every finding (if any) is accepted.
      type: bool
    sign_in_wait:
      description: Seconds waited for a new credential to propagate, when there was a wait.
      type: float
summary:
  description: Counts, C(workloads), C(verified), C(findings) (not accepted) and C(accepted).
  returned: always
  type: dict
orphaned_assignments:
  description:
    - The role assignments this collection granted for a workload of this cluster whose principal no longer exists,
      or is an identity no workload of this cluster uses now. Found by the mark at the end of their description.
    - A listed workload's are also among its findings (link C(assignments)); one no longer listed is warned about.
    - Verify deletes nothing. The rollout with prune deletes them.
  returned: always
  type: list
  elements: dict
  contains:
    workload:
      description: The workload they were granted for, C(<namespace>/<name>).
      type: str
    listed:
      description: Whether that workload is among those verified.
      type: bool
    id:
      description: The role assignment's resource id.
      type: str
    scope:
      description: Where it is assigned.
      type: str
    principal_id:
      description: The principal it names.
      type: str
    granted_to:
      description: What it was granted to, C(identity <resource group>/<name>) or C(application <appId>).
      type: str
    why:
      description: Why it is orphaned.
      type: str
requests:
  description: Requests made to the Kubernetes API server, C(kubernetes).
  returned: always
  type: dict
problems:
  description: Every mistake in the list or in O(accepted) (when it fails validation).
  returned: on failure
  type: list
  elements: str
"""

from datetime import UTC, datetime

from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import (
    kube_connection as kube_connection_for,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import (
    AzureApiError,
    DatabaseError,
    KubeApiError,
    ValidationError,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import (
    validate_workloads,
    workload_entries,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_client import (
    KUBE_AUTH_ARGSPEC,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import cluster_scope
from ansible_collections.workload_identity.aks.plugins.module_utils._report import SCHEMA_VERSION
from ansible_collections.workload_identity.aks.plugins.module_utils._verify import Verifier
from ansible_collections.workload_identity.aks.plugins.module_utils._verify_findings import (
    accept,
    accepted_problems,
    summary,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._verify_probes import ArmProbe, KubeProbe


def main() -> None:
    module = AzureModule(
        argument_spec={
            "cluster_name": {"type": "str", "required": True},
            "cluster_resource_group": {"type": "str"},
            "issuer_url": {"type": "str"},
            "identity_resource_group": {"type": "str"},
            "workloads": {"type": "raw", "required": True},
            # Checked by accepted_problems, naming the inventory's variable and the entry.
            "accepted": {"type": "list", "elements": "raw", "default": []},
            "propagation_wait": {"type": "float", "default": 120},
            "max_concurrency": {"type": "int", "default": 8},
            **KUBE_AUTH_ARGSPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    cluster = p["cluster_name"]
    workloads, list_problems = workload_entries(cluster, p["workloads"])
    # Privileged roles are a rollout decision; verify checks whatever is declared.
    validated = validate_workloads(
        cluster, workloads, identity_resource_group=p["identity_resource_group"], allow_privileged_roles=True
    )
    problems = list_problems + validated.problems
    problems += accepted_problems(cluster, p["accepted"], {w.name for w in validated.specs})
    if problems:
        module.fail_problems(problems, f"in what verify was given for {cluster}")
    subscription = module.connection.subscription_id or ""
    batch = Batch(
        cluster,
        subscription,
        p["issuer_url"],
        None,
        validated.specs,
        prune=False,
        allow_privileged_roles=True,  # verify reports what is there; it refuses nothing
        resource_groups=(p["identity_resource_group"],) if p["identity_resource_group"] else (),
        cluster_scope=cluster_scope(subscription, p["cluster_resource_group"]),
        read_only=True,
    )
    try:
        kube_connection = kube_connection_for(p, module.connection)
    except ValidationError as error:
        module.fail_error(error)
    for warning in kube_connection.warnings:
        module.warn(warning)
    try:
        engine = Workloads.from_clients(
            module.client("msi"),
            module.client("authorization"),
            module.retry_policy,
            subscription,
            module.client("graph") if any(w.is_application for w in validated.specs) else None,
            module.connection.credential(),
            read_clusters=False,
        )
        reads = engine.read(batch)  # with access policies declared, every vault (the review looks at all entries)
        kube = kube_connection.client(module.retry_policy)
        verifier = Verifier(
            batch,
            reads,
            engine.resolve,
            KubeProbe(kube),
            ArmProbe(module.connection, module.retry_policy),
            module.connection,
            p["propagation_wait"],
        )
        verdicts = verifier.verify_all(p["max_concurrency"])
    except ValidationError as exc:
        module.fail_problems(exc.problems, f"verifying {cluster}")
    except (AzureApiError, KubeApiError, DatabaseError) as exc:
        module.fail_error(exc, f"verifying {cluster}")
    accept(verdicts, p["accepted"])
    listed = {(w.namespace, w.name) for w in validated.specs}
    orphaned = [
        {
            "workload": f"{o.mark.namespace}/{o.mark.workload}",
            "listed": (o.mark.namespace, o.mark.workload) in listed,
            "id": o.model.id,
            "scope": o.model.scope,
            "principal_id": o.model.principal_id,
            "granted_to": f"{o.mark.kind} {o.mark.holder}",
            "why": o.why,
        }
        for o in reads.orphans
    ]
    for row in orphaned:
        if not row["listed"]:
            # A listed workload's are among its findings; this one's workload is no longer in the inventory.
            engine.warnings.append(
                f"cluster {cluster}: orphaned role assignment {row['id']} (workload {row['workload']}, no longer "
                f"listed; granted to {row['granted_to']}): {row['why']}; the rollout with prune deletes it"
            )
    for warning in dict.fromkeys(engine.warnings):
        module.warn(warning)
    module.exit_json(
        changed=False,
        schema_version=SCHEMA_VERSION,
        cluster=cluster,
        issuer_url=p["issuer_url"],
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        workloads=[v.as_dict() for v in verdicts],
        summary=summary(verdicts),
        orphaned_assignments=orphaned,
        requests={"kubernetes": kube.requests},
    )


if __name__ == "__main__":
    main()
