#!/usr/bin/python
# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: workload_identities
short_description: Give every workload of an AKS cluster its own identity, trust and roles, in one task
version_added: 0.1.0
description:
  - For each workload, ensures a user-assigned identity (or, with C(identity_type=application), an Entra app
    registration and its service principal, through Microsoft Graph), a federated credential trusting
    C(system:serviceaccount:<namespace>:<service_account>) from the cluster's issuer (plus any extra subjects
    it lists), and exactly the role assignments it declares.
  - Validates the whole list first and reports every problem at once, each naming the cluster, the workload
    and the field, before anything is read or written. Problems only Azure can reveal (a role that does not exist,
    an identity that is full, a shared identity declared otherwise by another cluster) are also found before the first
    write.
  - Reads in bulk (the identities of the resource group, the role definitions and role assignments of the
    subscription, and each existing identity's federated credentials), so a run that changes nothing costs
    N + 3 requests to ARM for N workloads. Each app registration adds three Microsoft Graph reads (the application,
    its service principal, its credentials), and O(prune) or O(state=absent) one Graph list of the applications made
    for the cluster; Graph is not asked at all for a list of managed identities without O(prune).
  - Writes with a bounded number of workloads at a time; one workload's writes run in order, so federated
    credential writes on one identity never overlap. The same code as the single-object modules does the work.
  - Identities it creates are tagged as made by this collection for this cluster, namespace and service account, and
    with the claim of each cluster that uses them (see O(shared_with)).
    With O(prune=true) it removes, from identities it made that this cluster uses, the federated credentials
    (of this cluster's issuer) and role assignments the list no longer declares, and the identities of workloads
    no longer listed (their role assignments first, which Azure would otherwise leave behind), or only this
    cluster's credentials and claim on one that other clusters still use.
  - Refuses, unless O(allow_privileged_roles=true), any role that lets the workload grant roles (one whose permissions
    allow C(Microsoft.Authorization/roleAssignments/write), so Owner, User Access Administrator, Role Based Access
    Control Administrator and custom roles alike) at any scope, and Contributor at management-group or
    subscription scope. A role with data actions at management-group or subscription scope is warned about.
options:
  cluster_name:
    description: The cluster's name; used in federated credential names and ownership tags.
    type: str
    required: true
  cluster_resource_group:
    description:
      - The cluster's resource group (in the subscription of the connection). What this collection makes is marked
        with it (C(wi-cluster-scope)) besides the cluster's name, so that another cluster of the same name in
        another resource group is another owner. An identity or app registration made for such a cluster is refused
        in the plan, naming both, rather than taken over.
      - Unset, ownership is by name alone (as before this was recorded). The roles always pass it.
    type: str
  issuer_url:
    description:
      - The cluster's OIDC issuer URL, exactly (see M(workload_identity.aks.cluster_oidc_issuer)).
      - Required with O(state=present), unless O(validate_only=true).
      - With O(state=absent), optional; given, only credentials trusting it are removed from identities made
        elsewhere (another cluster of the same name may have one of the same name there).
    type: str
  read_issuer:
    description:
      - Read the cluster's OIDC issuer here instead of giving O(issuer_url), as
        M(workload_identity.aks.cluster_oidc_issuer) reads it in check mode (with these options; the issuer itself
        is never changed here), and return it as RV(cluster_issuer). One module run and one cluster read fewer in a
        rollout; the roles' plan does this, and the C(oidc_issuer) role reuses the read.
      - Needs O(cluster_resource_group) and O(state=present); not with O(issuer_url).
      - Before AKS has assigned the cluster an issuer URL, only check mode can plan (with a placeholder URL that no
        credential is ever made with); a real run fails naming the cluster, before any change.
      - In diff mode (C(--diff)) with an issuer to change, the diff shows the cluster under
        C((cluster OIDC issuer)) beside the workloads.
    type: dict
    suboptions:
      workload_identity:
        description: As M(workload_identity.aks.cluster_oidc_issuer)'s option of that name (unset leaves the add-on).
        type: bool
  plan_kubernetes:
    description:
      - Also plan the Kubernetes side in this module run, as M(workload_identity.aks.service_accounts) plans it in
        check mode (the same O(workloads), O(prune), O(prune_max) and O(prune_confirm)), with the client and tenant ids
        this plan has just read, and return its result as RV(kubernetes). A cluster's plan is then one module run,
        not two (each run costs its interpreter, Ansible's payload and its imports); the roles' plan does this.
      - Check mode and O(state=present) only; M(workload_identity.aks.service_accounts) changes the Kubernetes side,
        once the identities it names are there.
      - The cluster is reached as M(workload_identity.aks.service_accounts) reaches it, with these options (each falls
        back to the same environment variables); with C(kube_auth=azure), through the Azure credential the
        environment names (E(AZURE_CLIENT_ID) and the rest), as service_accounts does.
      - When the Azure side fails, the Kubernetes side is still planned (without the identities' ids) and returned
        beside the failure, so that both sides' problems are known at once.
    type: dict
    version_added: 0.2.0
    suboptions:
      kubeconfig:
        description: As O(workload_identity.aks.service_accounts#module:kubeconfig).
        type: path
      context:
        description: As O(workload_identity.aks.service_accounts#module:context).
        type: str
      host:
        description: As O(workload_identity.aks.service_accounts#module:host).
        type: str
      api_key:
        description: As O(workload_identity.aks.service_accounts#module:api_key).
        type: str
      ca_cert:
        description: As O(workload_identity.aks.service_accounts#module:ca_cert).
        type: path
        aliases: [ssl_ca_cert]
      validate_certs:
        description:
          - As O(workload_identity.aks.service_accounts#module:validate_certs).
        type: bool
        aliases: [verify_ssl]
      kube_auth:
        description: As O(workload_identity.aks.service_accounts#module:kube_auth).
        type: str
        choices: [kubeconfig, azure]
        default: kubeconfig
      aks_cluster:
        description: As O(workload_identity.aks.service_accounts#module:aks_cluster).
        type: str
      aks_credential:
        description:
          - As O(workload_identity.aks.service_accounts#module:aks_credential).
        type: str
        choices: [user, admin]
        default: user
      missing_workloads:
        description:
          - As O(workload_identity.aks.service_accounts#module:missing_workloads).
        type: str
        choices: [fail, warn]
        default: fail
      rebind:
        description: As O(workload_identity.aks.service_accounts#module:rebind).
        type: str
        choices: [refuse, warn]
        default: refuse
      read_release:
        description:
          - As O(workload_identity.aks.service_accounts#module:read_release); the release is in RV(kubernetes).
        type: dict
        suboptions:
          name:
            description: The release's name.
            type: str
            required: true
          namespace:
            description: The release's namespace.
            type: str
            required: true
  state:
    description:
      - V(present) converges every listed workload.
      - V(absent) removes the listed workloads. An identity this collection made for this cluster goes whole (its
        role assignments first, then the identity, which takes its federated credentials with it); one other
        clusters still use loses only this cluster's credentials and claim (see O(shared_with)). An identity made
        elsewhere and only used here is kept; this cluster's federated credentials on it and the role assignments
        the workload declares are removed (but those another cluster of the inventory that keeps using it
        declares). With O(prune=true), every other identity this collection made for this cluster goes too
        (O(workloads=[]) with O(prune=true) removes everything it made for the cluster).
    type: str
    choices: [present, absent]
    default: present
  location:
    description: Region for identities that have to be created.
    type: str
  identity_resource_group:
    description:
      - Resource group for the identities (a workload's own C(identity_resource_group) wins).
      - Always searched by O(prune), so identities of workloads no longer listed are found there.
    type: str
  prune:
    description:
      - Remove what this collection made for this cluster and the list no longer declares.
      - Also delete the role assignments it granted for this cluster whose principal is gone (see
        RV(orphaned_assignments)); without prune they are only reported.
    type: bool
    default: false
  defer_replaced:
    description:
      - With O(prune=true), keep an identity or app registration this collection made for a ServiceAccount that a
        listed workload now binds to another identity (a new C(identity_name) of the workload, or a switch of its
        C(identity_type)), with its credentials and role assignments, and report it in RV(pruned) (as C(replaced))
        instead of deleting it. Its pods sign in as it until they restart with the new client id.
      - The C(workloads) role sets it, then removes those identities (by running again without it) once no pod signs
        in as them.
    type: bool
    default: false
  release_gone_clusters:
    description:
      - Another cluster's claim on an identity or application a listed workload uses is checked with ARM (one request
        per cluster, for clusters not converging in this run whose resource group is recorded in this subscription).
        A claim of a cluster that no longer exists (deleted without a teardown) is reported as a warning; with
        O(release_gone_clusters=true) this run releases it, with that cluster's federated credentials on it (named
        as its credentials are, and trusting no issuer of this cluster or of O(shared_with)). The plan shows both.
      - That cluster's own identities are released by its own teardown (P(workload_identity.aks.teardown#role) on
        a cluster that no longer exists skips the Kubernetes side and releases the Azure side by its marks).
    type: bool
    default: false
    version_added: 0.2.0
  allow_privileged_roles:
    description: Allow roles that can grant roles (at any scope), and Contributor at management-group or subscription
      scope.
    type: bool
    default: false
  database_admin_name:
    description:
      - Database roles are made on a PostgreSQL flexible server by one of its Microsoft Entra administrators; this run
        signs in as one, with a token from its Azure credential. Where a server's Entra sign-ins are off, or this
        run's principal is none of its Entra administrators, the plan stops and says what to set.
      - With a name (its service principal's display name), this run sets them itself on such a server instead -
        Entra sign-ins enabled, its principal added as an Entra administrator under that name - and says so in the
        workload's notes. It needs C(Microsoft.DBforPostgreSQL/flexibleServers/write) and
        C(.../administrators/write) on the server.
    type: str
    version_added: 0.2.0
  application_purge:
    description:
      - Applications this collection removes (prune, O(state=absent)) go to Entra's deleted items for 30 days, from
        where an administrator can restore them. With V(true) they are also deleted from there, for good.
    type: bool
    default: false
  max_concurrency:
    description: How many workloads are converged at once; reads (each identity's credentials) go twice as many at once.
    type: int
    default: 8
  validate_only:
    description:
      - Only validate O(workloads) (no request to Azure) and report the problems.
      - Checked on the controller by the module's action, without starting the module.
    type: bool
    default: false
  planned_unchanged:
    description:
      - Managed-identity workloads that this run's plan (this module in check mode on the same list, a moment before)
        found unchanged, with nothing to prune. Their identities' federated credentials are not listed again, and they
        are neither checked nor converged again; their rows are not in RV(workloads) but named in RV(reused), for the
        caller to take from the plan (P(workload_identity.aks.with_plan_rows#filter)).
      - So one changed workload among a thousand costs its own reads, not a thousand. The C(workloads) role passes the
        plan's P(workload_identity.aks.plan_unchanged#filter); with O(state=absent) it is ignored.
      - Only for a plan made moments before. A change made in between to those workloads' objects is converged by
        the next run.
    type: list
    elements: str
    default: []
  prune_max:
    description:
      - With O(prune=true), a plan that deletes more than this many identities or applications (each with what is
        on it), or credentials and role assignments on identities that stay, is refused before any change, every
        deletion listed, unless O(prune_confirm) names the cluster.
      - So is a plan that removes everything this collection made on the cluster (O(prune=true) with no workload
        listed, or with O(state=absent)), whatever its size.
    type: int
    default: 5
  prune_confirm:
    description: The cluster's name, to confirm a deletion O(prune_max) would refuse (for this run only).
    type: str
  inventory_variables:
    description:
      - The names of the inventory's C(workload_identity_*) variables (the roles pass them). A name under that
        prefix that this collection does not read (a misspelling, most often) is refused, naming the closest one.
    type: list
    elements: str
    default: []
  inventory_values:
    description:
      - The values of the inventory's C(workload_identity_*) variables, as the
        P(workload_identity.aks.checkable_values#filter) filter leaves them (a mapping's content left out; the roles
        pass them). A value of the wrong type, or not one of a variable's choices, is refused naming the variable and
        the cluster; null counts as not set.
    type: dict
    default: {}
  workloads_variable:
    description:
      - The name O(workloads) goes by in the problems the module reports about the list itself (null, not a list,
        entries that are not mappings). The roles pass V(workload_identity_workloads), the inventory's variable.
    type: str
    default: workloads
    version_added: 0.2.0
  workloads_kind:
    description:
      - Deprecated, to be removed in 2.0.0. What the inventory variable behind O(workloads) held, as 0.1.0's roles
        passed it beside a filtered list. Not needed any more, since O(workloads) is taken as the inventory holds it,
        and classified by the module.
    type: str
  shared_with:
    description:
      - The inventory's other clusters whose workloads name an identity explicitly (the C(workloads) role passes
        them, from the P(workload_identity.aks.identity_peers#filter) filter). One identity named by workloads of
        several clusters (multi-region, blue-green) is shared, with one client id and one set of role assignments,
        and one federated credential per cluster issuer. So is an app registration named by the same
        C(application_unique_name) (its claims are string tags C(wi-uses:<cluster>=<subscription>/<resource group>)).
      - Before any write, the workloads that name one identity must declare the same role assignments (scope, role,
        condition) and tags on every cluster (a difference names both clusters and the difference), and their
        federated credentials, with those already on it for others, must fit in the 20 Azure allows per identity.
      - Each cluster using an identity this collection made records a claim on it (the tag C(wi-uses:<cluster>),
        whose value is C(<subscription>/<resource group>) of the cluster); the clusters converging in this run
        (O(shared_with[].in_run)) write each other's claims, so that parallel hosts write the same tags. Letting go
        of an identity (prune, O(state=absent)) removes only this cluster's credentials and claim while another
        cluster's claim is on it; the identity and its role assignments go with the last.
      - An identity also used by a cluster not listed here (its claim is on it) keeps its role assignments as they
        are (a run that would change them is refused).
    type: list
    elements: dict
    default: []
    suboptions:
      cluster_name:
        description: The other cluster's name.
        type: str
        required: true
      cluster_resource_group:
        description: Its resource group.
        type: str
      identity_resource_group:
        description: Its default resource group for identities.
        type: str
      subscription_id:
        description: Its subscription, when not the connection's (its identities are then other identities).
        type: str
      issuer_url:
        description: Its issuer, when known (tells its credentials apart on a shared identity).
        type: str
      in_run:
        description: Whether it converges in this run too.
        type: bool
        default: true
      workloads:
        description: Its workloads that set C(identity_name) (or C(application_unique_name)), as its inventory
          declares them.
        type: list
        elements: dict
        default: []
extends_documentation_fragment:
  - workload_identity.aks.workloads
  - workload_identity.aks.azure
  - workload_identity.aks.azure.ATTRIBUTES
requirements:
  - kubernetes >= 24.2 (the Python client), for O(plan_kubernetes)
author:
  - workload_identity.aks maintainers (@workload-identity)
"""

EXAMPLES = r"""
- name: Plan both sides of aks-prod in one module run, reading only (what the roles' plan does)
  workload_identity.aks.workload_identities:
    cluster_name: aks-prod
    cluster_resource_group: rg-aks-prod
    identity_resource_group: rg-identities-prod
    location: westeurope
    read_issuer: {}
    plan_kubernetes:
      context: aks-prod
    workloads:
      - name: orders-api
        namespace: orders
        service_account: orders-api
        controllers: [{kind: Deployment, name: orders-api}]
  check_mode: true
  register: plan

- name: Remove everything this collection made for aks-old (identities, their credentials and role assignments)
  workload_identity.aks.workload_identities:
    cluster_name: aks-old
    identity_resource_group: rg-identities-prod
    state: absent
    prune: true
    prune_confirm: aks-old  # removing everything is refused unless the cluster is named here
    workloads: []

- name: Every workload of aks-prod
  workload_identity.aks.workload_identities:
    cluster_name: aks-prod
    issuer_url: "{{ issuer.issuer_url }}"
    location: westeurope
    identity_resource_group: rg-identities-prod
    prune: true
    workloads:
      - name: orders-api
        namespace: orders
        service_account: orders-api
        roles:
          - role: Storage Blob Data Contributor
            scope: "{{ orders_account_id }}/blobServices/default/containers/orders"
"""

RETURN = r"""
workloads:
  description: Per workload, in the order given, what was done (or would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The workload.
      type: str
    namespace:
      description: Its namespace.
      type: str
    service_account:
      description: Its service account.
      type: str
    subject:
      description: The service account's subject.
      type: str
    identity:
      description: The identity (as M(workload_identity.aks.user_assigned_identity) returns it), with C(action)
        (C(released) when O(state=absent) let go of one other clusters still use) and C(owned) (made by this
        collection); for an app registration C(kind=application), its appId as C(client_id),
        its service principal as C(principal_id) and its C(unique_name).
      type: dict
    federated_credentials:
      description: Each credential's name, subject and action.
      type: list
      elements: dict
    role_assignments:
      description:
        - Each assignment's role, scope, name and action.
        - C(adopted) is true for one an operator made (no mark, a name of its own). It is used as it is, never marked
          and never taken for an orphan.
      type: list
      elements: dict
    access_policies:
      description:
        - Only for a workload that declares Key Vault access policies (or whose entries were removed) - each entry's
          C(vault) (its id), C(permissions) (per kind, as declared; for a removed one, as the entry held them),
          C(action) and C(adopted) (an identity made elsewhere already held it; permissions it had besides are kept).
      type: list
      elements: dict
      returned: when the workload declares access policies
    cosmos_roles:
      description:
        - Only for a workload that declares Cosmos DB SQL roles (or whose assignments were removed) - each assignment's
          C(role) (the SQL role definition's name), C(role_definition_id), C(scope) (the account, or a database or
          container under it), C(name), C(action) and C(adopted) (an assignment an operator made for the same
          principal, role and scope, used as it is and never removed by teardown of an identity made elsewhere).
      type: list
      elements: dict
      returned: when the workload declares Cosmos DB SQL roles
    database_roles:
      description:
        - Only for a workload that declares database roles on PostgreSQL flexible servers (or whose role was removed)
          - each entry's C(server) (its id), C(database), C(user) (the role it signs in as), C(roles) (its declared
          memberships; for a removal, those revoked), C(granted) (the memberships this run gives it), C(action) and
          C(adopted) (a role an operator made for the same principal, used under its own name and never dropped).
      type: list
      elements: dict
      returned: when the workload declares database roles
    changed:
      description: Whether anything changed for this workload.
      type: bool
    notes:
      description:
        - What to know about the change (a credential's issuer that changes, an identity kept through a rename or a
          namespace move, a credential of another cluster of the same name left alone).
      type: list
      elements: str
pruned:
  description: What O(prune) removed (or would remove), by kind (C(identities), C(applications),
    C(federated_credentials),
    C(role_assignments)); with O(defer_replaced=true), the identities and app registrations kept until their pods
    restart (C(replaced), each with C(name), C(resource_group), C(client_id), C(workload), and C(kind=application)
    for an app registration, whose C(client_id) is its appId); and the identities this cluster
    let go of while other clusters still use them (C(released), each with C(name), C(resource_group) and C(used_by));
    and the Key Vault access policy entries of the identities and app registrations removed (C(access_policies), each
    with C(identity), C(vault) and C(permissions); only when there were some), and their Cosmos DB SQL role
    assignments (C(cosmos_roles), each with C(identity), C(role), C(role_definition_id), C(scope) and C(name); only
    when there were some), and their database roles (C(database_roles), each with C(identity), C(server), C(user),
    C(roles) revoked and C(dropped); only when there were some).
  returned: always
  type: dict
orphaned_assignments:
  description:
    - Role assignments this collection granted for a workload of this cluster whose principal no longer exists (an
      identity or app registration deleted, or re-created under the same name), or is an identity made elsewhere
      that no workload of this cluster uses now.
    - They are found by the mark at the end of their description, among the assignments already read (the
      subscriptions of the declared scopes). An assignment without the mark is never one.
    - With O(prune), C(action=deleted) (in check mode, would be). Without it, C(action=reported).
    - With O(defer_replaced=true), those of an identity a listed workload just moved away from are not here. They are
      in RV(pruned) (as C(replaced), with C(assignments_only=true)) until its pods restart.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The role assignment's name.
      type: str
    scope:
      description: Where it is assigned.
      type: str
    role:
      description: The role's name, when known.
      type: str
    role_definition_guid:
      description: The role definition's GUID.
      type: str
    principal_id:
      description: The principal it names.
      type: str
    workload:
      description: The workload it was granted for, C(<namespace>/<name>), as its mark says.
      type: str
    granted_to:
      description: C(identity <resource group>/<name>) or C(application <appId>), as its mark says.
      type: str
    why:
      description: Why it is orphaned.
      type: str
    action:
      description: C(deleted) or C(reported).
      type: str
kubernetes:
  description:
    - With O(plan_kubernetes), the Kubernetes side's plan, as M(workload_identity.aks.service_accounts) returns it in
      check mode (C(changed), C(namespaces), C(service_accounts), C(controllers), C(diff) in diff mode, C(release) or
      C(release_unreadable) with its O(plan_kubernetes.read_release)).
    - When that plan fails, C(failed) with its C(msg), and C(problems) or C(error), as that module fails. The task
      fails too, with the Kubernetes side's message when the Azure side's plan succeeded (its result stands beside
      it), else with the Azure side's.
    - The task's C(changed) is true when either side changes something; in diff mode, the task's diff shows the
      Kubernetes side's objects (C(ServiceAccount <namespace>/<name>), say) beside the workloads.
  returned: with O(plan_kubernetes)
  type: dict
  version_added: 0.2.0
cluster_issuer:
  description:
    - With O(read_issuer), the cluster's issuer as M(workload_identity.aks.cluster_oidc_issuer) reads it in check mode
      (its RV(workload_identity.aks.cluster_oidc_issuer#module:action), C(cluster), C(issuer_url) and C(notes)).
  returned: with O(read_issuer)
  type: dict
  contains:
    action:
      description: C(unchanged), or C(updated) when cluster_oidc_issuer with these options would update the cluster.
      type: str
    cluster:
      description: The cluster as it would be after (RV(workload_identity.aks.cluster_oidc_issuer#module:cluster)).
      type: dict
    issuer_url:
      description: The cluster's issuer URL; null while the issuer is not enabled (the plan then used a placeholder).
      type: str
    notes:
      description: What the update would involve, for the operator.
      type: list
      elements: str
reused:
  description:
    - The workloads of O(planned_unchanged) taken as the plan found them (managed identities only; app registrations
      are always read again). Their rows are the plan's.
  returned: with O(state=present)
  type: list
  elements: str
problems:
  description: Every problem found in the list (when it fails validation).
  returned: on failure
  type: list
  elements: str
"""

from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import environment_access
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch import Workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import Batch
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_shared import peers_from
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import AzureModule
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_cluster import (
    ISSUER_DIFF_KEY,
    UNKNOWN_ISSUER,
    ClusterApi,
    ClusterNotFound,
    ensure_issuer,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import (
    AzureApiError,
    DatabaseError,
    Failure,
    ValidationError,
    bug_result,
    error_result,
    problems_result,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._guard import azure_deletions, check_deletions
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_batch import (
    PLAN_KUBERNETES_ARGUMENT,
    KubeRequest,
    bind_workloads,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._kube_client import KubeConnection, open_client
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import cluster_scope
from ansible_collections.workload_identity.aks.plugins.module_utils._results import (
    AzureBatchResult,
    IssuerState,
    Outcome,
    kube_identities,
)

# The options, and the check of the request without any request (the action plugin runs it for validate_only). The
# deprecated alias goes in 2.0.0 (_inventory.ALIAS_REMOVED_IN); ansible-test wants the version literal below.
from ansible_collections.workload_identity.aks.plugins.module_utils._workload_request import (
    ARGUMENT_SPEC,
    check_request,
    issuer_problems,
)

# The Kubernetes side's plan: given the Azure side's rows (each workload's client and tenant ids), service_accounts'
# check-mode result, or its failure (msg, problems or error) beside ``failed``.
KubernetesPlan = Callable[[list[dict[str, Any]]], dict[str, Any]]


def main() -> None:
    module = AzureModule(
        argument_spec={**ARGUMENT_SPEC, "plan_kubernetes": PLAN_KUBERNETES_ARGUMENT},
        supports_check_mode=True,
    )
    p = module.params
    cluster = p["cluster_name"]
    checked = check_request(p)
    for message in checked.deprecations:
        module.deprecate(message, version="2.0.0", collection_name="workload_identity.aks")
    problems = list(checked.problems)
    kubernetes = None
    if p["plan_kubernetes"] is not None and not p["validate_only"]:
        if find_spec("kubernetes") is None:  # imported where the cluster is reached: said here, before any request
            module.fail_json(msg=f"cluster {cluster}: plan_kubernetes: {missing_required_lib('kubernetes')}")
        problems += plan_kubernetes_problems(cluster, p["state"], module.check_mode)
        try:
            kubernetes = kubernetes_plan(module)
        except ValidationError as exc:
            problems += [f"cluster {cluster}: plan_kubernetes: {problem}" for problem in exc.problems]
    if problems:
        module.fail_problems(problems, f"in the workloads of {cluster}")
    if p["validate_only"]:
        module.exit_json(changed=False, workloads=[], pruned={}, problems=[])
    try:
        result = azure_side(module, checked)
    except Failure as failure:
        # Both sides' problems at once: the Kubernetes side is planned without the identities' ids.
        if kubernetes is not None:
            failure.result["kubernetes"] = kubernetes([])
        module.fail_json(**failure.result)
    if kubernetes is not None:
        result["kubernetes"] = plan = kubernetes(kube_identities(result))
        result["changed"] = bool(result["changed"] or plan.get("changed"))
        if "diff" in result and "diff" in plan:  # --diff shows the Kubernetes side's objects beside the workloads
            for side in ("before", "after"):
                result["diff"][side].update(plan["diff"][side])
        if plan.get("failed"):  # the Azure side's plan stands beside the failure
            module.fail_json(**{**result, "msg": plan["msg"], "problems": plan.get("problems") or []})
    module.exit_json(**result)


def azure_side(module: AzureModule, checked: Any) -> dict[str, Any]:
    """The Azure side's result (and the issuer's, with read_issuer); a :class:`Failure` otherwise."""
    p = module.params
    cluster = p["cluster_name"]
    present = p["state"] == "present"
    issuer, issuer_url = read_issuer(module) if p["read_issuer"] is not None else (None, p["issuer_url"])
    scope = cluster_scope(module.connection.subscription_id, p["cluster_resource_group"])
    batch = Batch(
        cluster,
        module.connection.subscription_id or "",
        issuer_url,
        p["location"],
        checked.specs,
        p["prune"],
        p["allow_privileged_roles"],
        resource_groups=(p["identity_resource_group"],) if p["identity_resource_group"] else (),
        state=p["state"],
        application_purge=p["application_purge"],
        cluster_scope=scope,
        defer_replaced=p["defer_replaced"],
        peers=peers_from(p["shared_with"], module.connection.subscription_id or "", cluster, scope),
        release_gone=p["release_gone_clusters"],
        reused=frozenset(p["planned_unchanged"]) if present else frozenset(),
        database_admin_name=p["database_admin_name"],
    )
    # Graph is asked only when an app registration is listed, or may have been made before (prune, teardown).
    uses_graph = any(w.is_application for w in checked.specs) or p["prune"] or p["state"] == "absent"
    try:
        engine = Workloads.from_clients(
            module.client("msi"),
            module.client("authorization"),
            module.retry_policy,
            module.connection.subscription_id or "",
            module.client("graph") if uses_graph else None,
            module.connection.credential(),
        )
        reads = engine.read(batch, p["max_concurrency"])

        def guard(planned: AzureBatchResult) -> None:
            units, deletions = azure_deletions(planned)
            everything = not checked.specs or not present
            check_deletions(cluster, units, deletions, everything, p["prune_max"], p["prune_confirm"])

        guarded = guard if p["prune"] else None
        if present:
            result = engine.converge(batch, reads, module.check_mode, p["max_concurrency"], guarded)
        else:
            result = engine.remove(batch, reads, module.check_mode, guarded)
    except ValidationError as exc:
        raise Failure(problems_result(exc.problems, f"in the workloads of {cluster}")) from None
    except (AzureApiError, DatabaseError) as exc:
        raise Failure(error_result(exc)) from None
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A bug: failed with its message and traceback, rather than a crash whose output a plan that collects every
        # problem before failing (roles/workloads/tasks/plan.yml) could not show.
        raise Failure(bug_result(exc)) from None
    for warning in dict.fromkeys(engine.warnings):
        module.warn(warning)
    if present:
        result["reused"] = [w.name for w in batch.workloads if batch.reuses(w)]
    if issuer is not None:
        result["cluster_issuer"] = {
            "action": issuer.action,
            "cluster": issuer.after,
            "issuer_url": (issuer.after or {}).get("issuer_url"),
            "notes": issuer.notes,
        }
        if issuer.changed:  # the plan's diff shows the cluster's change too, beside its workloads'
            for side, state in issuer.diff().items():
                result["diff"][side][ISSUER_DIFF_KEY] = state
    if not module._diff:
        result.pop("diff")
    return dict(result)


def read_issuer(module: AzureModule) -> tuple[Outcome[IssuerState], str]:
    """The cluster's issuer as cluster_oidc_issuer reads it in check mode, and the URL to plan with: before AKS has
    assigned one, a placeholder that only check mode may plan with."""
    p = module.params
    cluster = p["cluster_name"]
    try:
        outcome = ensure_issuer(
            # The cluster's two requests ride the identities' client (no container service SDK to import for them).
            ClusterApi(module.client("msi"), module.connection.subscription_id or "", module.retry_policy),
            p["cluster_resource_group"],
            cluster,
            oidc_issuer=True,
            workload_identity=p["read_issuer"]["workload_identity"],
            check_mode=True,
        )
    except ClusterNotFound as exc:
        raise Failure({**error_result(exc), "exists": False}) from None
    except AzureApiError as exc:
        raise Failure(error_result(exc)) from None
    url = (outcome.after or {}).get("issuer_url")
    if not url and not module.check_mode:
        raise Failure(
            {
                "msg": f"cluster {cluster}: its OIDC issuer is not enabled yet, so there is no issuer URL to trust "
                "(the oidc_issuer role, or workload_identity.aks.cluster_oidc_issuer, enables it first)"
            }
        )
    problems = issuer_problems(cluster, url or UNKNOWN_ISSUER)
    if problems:
        raise Failure(problems_result(problems, f"in the workloads of {cluster}"))
    return outcome, url or UNKNOWN_ISSUER


def plan_kubernetes_problems(cluster: str, state: str, check_mode: bool) -> list[str]:
    """plan_kubernetes plans; service_accounts changes the Kubernetes side, once the Azure side is there."""
    problems = []
    if not check_mode:
        problems.append(
            f"cluster {cluster}: plan_kubernetes is for a plan (check mode); service_accounts changes the Kubernetes "
            "side, after this module has made the identities it names"
        )
    if state != "present":
        problems.append(f"cluster {cluster}: plan_kubernetes is for state present (service_accounts removes)")
    return problems


def kubernetes_plan(module: AzureModule) -> KubernetesPlan:
    """The Kubernetes side planned in this module run (service_accounts in check mode, with the same list and prune
    options), reaching the cluster as service_accounts does: the same module process as the Azure side's plan."""
    p = module.params
    cluster = p["cluster_name"]
    options = p["plan_kubernetes"]
    access = environment_access() if options["kube_auth"] == "azure" else None
    connection = KubeConnection(options, access_factory=access)
    for warning in connection.warnings:
        module.warn(warning)

    def plan(identities: list[dict[str, Any]]) -> dict[str, Any]:
        request = KubeRequest(
            cluster,
            p["workloads"],
            identities,
            prune=p["prune"],
            missing_workloads=options["missing_workloads"],
            rebind=options["rebind"],
            prune_max=p["prune_max"],
            prune_confirm=p["prune_confirm"],
            read_release=options["read_release"],
        )
        try:
            return bind_workloads(
                request,
                lambda: open_client(connection, module.retry_policy, f"cluster {cluster}"),
                check_mode=True,
                diff=module._diff,
                warn=module.warn,
                # The Azure side has announced the list's deprecations already (the same list, the same check).
                on_deprecation=lambda _message: None,
            )
        except Failure as failure:
            return {"failed": True, **failure.result}
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return {"failed": True, **bug_result(exc)}

    return plan


if __name__ == "__main__":
    main()
