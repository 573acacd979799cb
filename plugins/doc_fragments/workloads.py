# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared documentation: the workload list, as module_utils/_inventory.py declares it (a unit test keeps them equal)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  workloads:
    description:
      - The cluster's workloads. Both M(workload_identity.aks.workload_identities) (the Azure side) and
        M(workload_identity.aks.service_accounts) (the Kubernetes side) take the same list and validate all of it, so
        one task finds every mistake in an inventory.
      - A list of mappings. Checked by the module rather than by Ansible's option validation (it takes the value as the
        inventory holds it), so that every problem in the list is reported at once, each naming the cluster, the
        workload and the field; any field not listed here is an error, so typos are caught. Null is refused, not read
        as an empty list.
    type: raw
    required: true
    suboptions:
      name:
        description: The workload's name, a DNS label (1-63 lower-case letters, digits and C(-)), unique in the cluster.
        type: str
        required: true
      namespace:
        description: Its Kubernetes namespace (created if missing).
        type: str
        required: true
      service_account:
        description: Its ServiceAccount (created if missing, else annotated); one workload per ServiceAccount.
        type: str
        required: true
      roles:
        description:
          - Exactly the access its identity holds; with prune, any other assignment (or access policy entry) this
            collection made for it is removed.
          - Each entry is an ARM role assignment (C(role) and C(scope)), or, on a Key Vault that uses access policies
            (C(enableRbacAuthorization) false), the principal's access policy entry (C(scope) the vault's id and
            C(access_policy)). Such a vault ignores role assignments for its data, so a role with Key Vault data
            actions there is refused before any change, with the entry to declare instead; and an access policy on a
            vault that uses Azure RBAC is refused the other way round.
          - On a Cosmos DB account (NoSQL API), an entry is a Cosmos DB SQL role assignment when its C(role) is one of
            the account's SQL role definitions (V(Cosmos DB Built-in Data Reader), V(Cosmos DB Built-in Data
            Contributor), or a custom one; by name, GUID or id) and its C(scope) the account's id, or it followed by
            C(/dbs/<database>) or C(/dbs/<database>/colls/<container>). Cosmos DB's data is reached only through
            those; an ARM role on the account (for example V(Cosmos DB Account Reader Role)) stays an ARM role
            assignment, and one that may assign SQL roles or list the account's keys is refused unless
            privileged roles are allowed.
          - On an Azure Database for PostgreSQL flexible server, an entry with C(database) (C(scope) the server's id)
            gives the workload a database role of its own (C(database_user), default the workload's name), mapped to
            its principal, a member of exactly the C(database_roles) given; it logs in to C(database) with its Entra
            token as the password. This run signs in to the server as one of its Microsoft Entra administrators, with
            a token from the same Azure credential.
        type: list
        elements: dict
        default: []
        suboptions:
          role:
            description:
              - A role name, GUID or role definition id. Required unless C(access_policy) is given.
              - At a Cosmos DB account, one of its SQL role definitions (name, GUID or id) makes the entry a Cosmos DB
                SQL role assignment. A name that is neither an ARM role nor one of the account's SQL roles is refused,
                naming what the account defines.
            type: str
          access_policy:
            description:
              - Instead of C(role), on a Key Vault that uses access policies - the permissions of the workload's
                principal's entry, per kind (C(keys), C(secrets), C(certificates), C(storage)), each a list of Key
                Vault's permission names (for example C(secrets) with V(get) and V(list)).
              - Written with the vault's C(accessPolicies/add|replace|remove) operations, never a PUT of the whole
                vault, so other principals' entries stay. On an identity this collection made the entry is exactly
                this; on one made elsewhere, permissions it already had are kept.
            type: dict
          database:
            description:
              - Instead of C(role), on an Azure Database for PostgreSQL flexible server (C(scope) its id) - the
                database the workload connects to (it must exist; verify signs in there).
              - The role is made with C(pgaadauth_create_principal_with_oid) and carries this collection's mark (its
                comment); one an operator made for the same principal is adopted under its own name, and never
                dropped.
            type: str
          database_roles:
            description:
              - With C(database), the existing roles the workload's database role is a member of (for example
                V(pg_read_all_data), or a role the application's owner made). With prune, a membership no longer
                declared is revoked from a role this collection made; from an operator's role, only one this
                collection granted on an identity made elsewhere (whose record says so).
              - Roles that administer the server or reach its files (V(azure_pg_admin), V(pg_read_server_files),
                V(pg_write_server_files), V(pg_execute_server_program)) are refused unless privileged roles are
                allowed.
            type: list
            elements: str
          database_user:
            description:
              - With C(database), the name of the workload's database role (default the workload's name); one per
                server for a workload.
            type: str
          scope:
            description:
              - A management group, subscription, resource group or resource id (a vault's id for C(access_policy)).
              - For a Cosmos DB SQL role, the account's id, or it followed by C(/dbs/<database>) or
                C(/dbs/<database>/colls/<container>).
            type: str
            required: true
          condition:
            description:
              - An ABAC condition. On an assignment this collection made, one not declared (dropped from here, or
                added by hand) is removed, as is a description; on an assignment made elsewhere it is left as it is.
            type: str
          condition_version:
            description: The condition's version (V(2.0) when a condition is given without one).
            type: str
          description:
            description: The assignment's description.
            type: str
      identity_type:
        description:
          - V(user_assigned) (default) gives the workload a user-assigned managed identity; V(application) an Entra
            app registration (application + service principal), made through Microsoft Graph.
          - An application needs the Graph application permission C(Application.ReadWrite.OwnedBy) (or
            C(Application.ReadWrite.All)) for the automation principal; it is checked before any change.
        type: str
        choices: [user_assigned, application]
        default: user_assigned
      application_unique_name:
        description:
          - With C(identity_type=application), the unique name the application is found and made by
            (default C(wi-<cluster_name>-<namespace>-<name>)); never duplicated.
        type: str
      application_id:
        description:
          - With C(identity_type=application), the appId of an existing application (made by hand) to use
            as it is, never renamed, re-tagged or deleted; only this cluster's credentials and the declared role
            assignments are added (and removed by teardown).
        type: str
      application_display_name:
        description: The display name of an application this collection makes (default its unique name).
        type: str
      identity_name:
        description: The identity's name (default C(id-<cluster_name>-<namespace>-<name>)).
        type: str
      identity_resource_group:
        description:
          - Where its identity lives.
          - Default the C(identity_resource_group) option of M(workload_identity.aks.workload_identities).
        type: str
      extra_subjects:
        description: More subjects its identity trusts from the same issuer (at most 20 credentials per identity).
        type: list
        elements: str
      tags:
        description:
          - Extra tags for an identity this collection makes. One dropped from here is removed from it (the keys set
            are recorded in its C(wi-tags) tag); tags set by anyone else are left alone.
          - ARM's rules apply before any change - a name of 1-512 characters without any of C(<>%&\?/), names that
            differ only in case are one, a value (a string or a number) of at most 256 characters.
          - The names of the collection's own marks are reserved and refused - C(managed-by) and every name that
            starts with C(wi-).
        type: dict
      controllers:
        description:
          - The pod controllers to bind to its ServiceAccount (their pod templates get C(serviceAccountName) and the
            label C(azure.workload.identity/use=true)).
          - C(workloads) is its former name, still read with a deprecation warning until 2.0.0.
        type: list
        elements: dict
        aliases: [workloads]
        suboptions:
          kind:
            description: The controller's kind.
            type: str
            required: true
            choices: [Deployment, StatefulSet, DaemonSet, Job, CronJob]
          name:
            description: The controller's name, in the workload's namespace.
            type: str
            required: true
      token_expiration:
        description: Lifetime of the projected service account token, in seconds (3600-86400).
        type: int
      rebind:
        description:
          - An existing ServiceAccount that already names another client id (bound by hand to some other identity)
            is refused by default, naming that client id, because moving it changes what its pods sign in as.
          - V(true) moves it to this workload's identity (the client id it had is recorded, and put back by
            teardown). To keep the identity it has instead, set the workload's C(identity_name) to that identity.
        type: bool
        default: false
      teardown_adopted:
        description:
          - An identity named by the workload's C(identity_name) that this collection did not make, or an application
            named by its C(application_id), is adopted. By default O(state=absent) keeps it, and removes only
            this cluster's federated credentials and the role assignments this collection created on it.
          - V(true) makes O(state=absent) delete it as if this collection had made it, every role assignment of its
            principal first. The Kubernetes side still gets back what it had before.
        type: bool
        default: false
"""
