# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the inventory that declares what a cluster already has.

Given what ``_kube_discovery`` read from the cluster (the ServiceAccounts bound to a client id, the controllers
running as them, AAD Pod Identity's bindings), find the Azure object behind each client id and write the workload
declaration that ``workload_identities`` and ``service_accounts`` would adopt without a change:

- the user-assigned identity with that client id (identities listed per resource group, or over the subscription),
  else the app registration with that appId (Microsoft Graph), named as the collection expects;
- its federated credentials from this cluster's issuer (the account's own subject first, the rest as
  ``extra_subjects``), and every role assignment its principal holds, role by name where the name is unambiguous;
- for each AAD Pod Identity binding, the workload-identity equivalent: the same identity (by ``resourceID``, or the
  service principal's appId), a ServiceAccount, the controllers its selector matches; marked as a migration.

Read only. Requests: one identity list per resource group (or one for the subscription), one role definition list,
one role assignment list, one credential list per identity found, three Graph reads per application.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ._azure_application import ApplicationApi, application_state
from ._azure_batch_reads import AzureApis
from ._azure_discovery_grants import GrantsFound
from ._errors import AzureApiError
from ._ids import IdentityRef, InvalidScope
from ._inventory import default_identity_name, subject_for
from ._ownership import (
    APP_WORKLOAD_TAG_PREFIX,
    CLAIM_TAG_PREFIX,
    CREATED_ROLES_TAG,
    FORMAT_TAG,
    TAGS_RECORD_TAG,
    WORKLOAD_TAG,
    application_cluster_tag,
    application_owned_by,
    default_application_unique_name,
    foreign_owner,
    identity_marks,
    made_by_collection,
    owned_by,
)
from ._results import BoundAccount, FederatedCredentialState, IdentityState, KubeEstate, PodIdentityBinding

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Discovered(TypedDict):
    workloads: list[dict[str, Any]]  # declarations, as an inventory's workload_identity_workloads holds them
    notes: dict[str, list[str]]  # per workload name: what a reader of the written inventory should know
    findings: list[str]  # what was found but not declared, and why


@dataclass
class Behind:
    """The Azure object behind one client id."""

    client_id: str
    principal_id: str | None
    identity: IdentityState | None = None
    application: dict[str, Any] | None = None
    fics: list[FederatedCredentialState] = field(default_factory=list)


def dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "workload"


class Discovery:
    def __init__(
        self,
        apis: AzureApis,
        applications: ApplicationApi | None,
        cluster: str,
        issuer_url: str | None,
        resource_groups: list[str],
        cluster_scope: str | None = None,
    ) -> None:
        self.apis, self.applications = apis, applications
        self.cluster, self.issuer_url, self.cluster_scope = cluster, issuer_url, cluster_scope
        self.subscription = apis.subscription_id
        self.resource_groups = resource_groups
        self.result: Discovered = {"workloads": [], "notes": {}, "findings": []}
        self.names: set[str] = set()
        self.identities: dict[str, IdentityState] = {}  # client id (lower) -> identity
        self.grants = GrantsFound()  # what each principal holds: role assignments, key vault access policies
        self.behind: dict[str, Behind | None] = {}  # client id (lower) -> what it is (None: nothing found)
        self.by_client: dict[str, str] = {}  # client id (lower) -> the workload declared with it

    # -- reading ------------------------------------------------------------------------------------
    def read(self) -> None:
        groups: list[str | None] = list(self.resource_groups) or [None]
        for group in groups:
            try:
                listed = self.apis.identities.list_all(group)
            except AzureApiError as exc:
                if exc.status == 404 and exc.code == "ResourceGroupNotFound":
                    self.result["findings"].append(f"identity resource group {group} does not exist")
                    continue
                raise
            for identity in listed:
                if identity["client_id"]:
                    self.identities[identity["client_id"].lower()] = identity
        self.grants.read(self.apis, self.subscription)

    def lookup(self, client_id: str, identity: IdentityState | None = None) -> Behind | None:
        key = client_id.lower()
        if key in self.behind:
            return self.behind[key]
        found: Behind | None = None
        identity = identity or self.identities.get(key)
        if identity is not None:
            ref = IdentityRef(self.subscription, identity["resource_group"], identity["name"])
            found = Behind(client_id, identity["principal_id"], identity=identity, fics=self.apis.fics.list_all(ref))
        elif self.applications is not None:
            try:
                app = self.applications.by_app_id(client_id)
                if app is not None:
                    principal = self.applications.principal(client_id)
                    fics = self.applications.list_fics(str(app["id"]), str(app.get("displayName")))
                    found = Behind(client_id, principal.get("id") if principal else None, application=app, fics=fics)
            except AzureApiError as exc:
                if exc.status not in (401, 403):
                    raise
                self._graph_denied(exc)
        self.behind[key] = found
        return found

    # -- declaring ----------------------------------------------------------------------------------
    def run(self, estate: KubeEstate) -> Discovered:
        self.read()
        for account in estate["service_accounts"]:
            self._account(account)
        for binding in estate["pod_identity"]:
            self._migration(binding)
        for seen in estate["unbound_pod_identity_controllers"]:
            self.result["findings"].append(
                f"{seen['kind']} {seen['namespace']}/{seen['name']}: labelled aadpodidbinding but no "
                "AzureIdentityBinding has its selector (it gets no identity today): not declared"
            )
        self._leftovers()
        return self.result

    def _account(self, account: BoundAccount) -> None:
        where = f"ServiceAccount {account['namespace']}/{account['service_account']}"
        behind = self.lookup(account["client_id"])
        if behind is None:
            scanned = ", ".join(self.resource_groups) or f"subscription {self.subscription}"
            self.result["findings"].append(
                f"{where}: client id {account['client_id']} is no user-assigned identity in {scanned} and no "
                "application the automation principal can read: not declared"
            )
            return
        subject = subject_for(account["namespace"], account["service_account"])
        already = self._declared_for(behind.client_id)
        if already is not None:  # one identity per workload: the first account declares it
            self._note(already, f"{where} is bound to the same client id; its credential, if any, is an extra subject")
            return
        ours = account["cluster"] == self.cluster and account["workload"]
        name = self._name(str(account["workload"]) if ours else self._tagged_name(behind) or account["service_account"])
        declaration: dict[str, Any] = {
            "name": name,
            "namespace": account["namespace"],
            "service_account": account["service_account"],
        }
        notes: list[str] = []
        self._identity_fields(declaration, behind, notes)
        expiration = account["token_expiration"]
        if expiration and expiration.isdigit():
            declaration["token_expiration"] = int(expiration)
        self._trust(declaration, behind, subject, notes)
        declaration["roles"] = self.grants.declared(behind.principal_id, notes)
        declaration["controllers"] = [{"kind": c["kind"], "name": c["name"]} for c in account["controllers"]]
        if not account["controllers"]:
            notes.append("no pod controller runs as this ServiceAccount")
        self._declare(declaration, notes, behind)

    def _migration(self, binding: PodIdentityBinding) -> None:
        where = f"AzureIdentityBinding {binding['namespace']}/{binding['name']}"
        if binding["identity_type"] is None or not binding["client_id"]:
            self.result["findings"].append(
                f"{where}: its AzureIdentity {binding['identity']} does not exist in {binding['namespace']}"
            )
            return
        if not binding["controllers"]:
            self.result["findings"].append(
                f"{where}: no pod controller carries aadpodidbinding: {binding['selector']}: nothing to migrate"
            )
            return
        identity = None
        if binding["identity_type"] == "user_assigned":
            identity = self._identity_by_id(str(binding["resource_id"]), where)
            if identity is None:
                return
        behind = self.lookup(str(binding["client_id"]), identity)
        if behind is None:
            self.result["findings"].append(
                f"{where}: client id {binding['client_id']} is no identity or application this run can read"
            )
            return
        already = self._declared_for(behind.client_id)
        if already is not None:
            self._note(already, f"still bound by AAD Pod Identity ({where}): remove the binding once migrated")
            return
        namespaces = sorted({c["namespace"] for c in binding["controllers"]})
        for namespace in namespaces:
            controllers = [c for c in binding["controllers"] if c["namespace"] == namespace]
            if self._declared_for(behind.client_id) is not None:
                self.result["findings"].append(
                    f"{where}: also used in namespace {namespace}; one identity per workload: bind those "
                    f"controllers ({', '.join(c['name'] for c in controllers)}) to another identity by hand"
                )
                continue
            accounts = {c["service_account"] for c in controllers}
            account = accounts.pop() if len(accounts) == 1 and "default" not in accounts else dns_label(binding["name"])
            declaration: dict[str, Any] = {
                "name": self._name(binding["name"]),
                "namespace": namespace,
                "service_account": account,
            }
            notes = [
                f"MIGRATION from AAD Pod Identity: {where} (selector {binding['selector']}, AzureIdentity "
                f"{binding['identity']}, {binding['identity_type']})",
                "the site playbook adds a federated credential and binds the controllers to this ServiceAccount; the "
                "pods restart once and keep the aadpodidbinding label, so both work side by side",
                "once the application signs in with workload identity, delete the AzureIdentityBinding and the "
                "aadpodidbinding label",
            ]
            self._identity_fields(declaration, behind, notes)
            self._trust(declaration, behind, subject_for(namespace, account), notes)
            declaration["roles"] = self.grants.declared(behind.principal_id, notes)
            declaration["controllers"] = [{"kind": c["kind"], "name": c["name"]} for c in controllers]
            self._declare(declaration, notes, behind)

    def _identity_by_id(self, resource_id: str, where: str) -> IdentityState | None:
        try:
            ref = IdentityRef.parse(resource_id)
        except InvalidScope as exc:
            self.result["findings"].append(f"{where}: resourceID: {exc}")
            return None
        if ref.subscription.lower() != self.subscription.lower():
            self.result["findings"].append(
                f"{where}: identity {ref.name} is in subscription {ref.subscription}, not {self.subscription}: "
                "run discovery (and the rollout) with that subscription"
            )
            return None
        found = next(
            (
                i
                for i in self.identities.values()
                if i["name"].lower() == ref.name.lower() and i["resource_group"].lower() == ref.resource_group.lower()
            ),
            None,
        )
        found = found or self.apis.identities.get(ref)
        if found is None:
            self.result["findings"].append(f"{where}: identity {resource_id} does not exist")
        return found

    def _identity_fields(self, declaration: dict[str, Any], behind: Behind, notes: list[str]) -> None:
        identity, app = behind.identity, behind.application
        if identity is not None:
            tags = identity["tags"]
            default = default_identity_name(self.cluster, declaration["namespace"], declaration["name"])
            if not owned_by(tags, self.cluster, self.cluster_scope) or identity["name"] != default:
                declaration["identity_name"] = identity["name"]
            declaration["identity_resource_group"] = identity["resource_group"]
            if owned_by(tags, self.cluster, self.cluster_scope):
                # Its own marks (every key, the place included) and its record of the inventory's tags are not tags
                # to declare.
                marks = set(identity_marks(self.cluster, "", "", "", "-")) | {TAGS_RECORD_TAG, FORMAT_TAG}
                extra = {
                    k: v
                    for k, v in tags.items()
                    if k not in marks and not k.startswith((CREATED_ROLES_TAG, CLAIM_TAG_PREFIX))
                }
                if extra:
                    declaration["tags"] = extra
            elif made_by_collection(tags):
                notes.append(
                    f"identity {identity['name']} was made by this collection for "
                    f"{foreign_owner(tags, self.cluster, self.cluster_scope)}"
                )
            else:
                notes.append(f"identity {identity['name']} was made elsewhere: adopted, kept on teardown")
            return
        if app is None:
            return
        declaration["identity_type"] = "application"
        state = application_state(app, None)
        if application_owned_by(state["tags"], self.cluster, self.cluster_scope):
            default = default_application_unique_name(self.cluster, declaration["namespace"], declaration["name"])
            if state["unique_name"] != default:
                declaration["application_unique_name"] = state["unique_name"]
        else:
            declaration["application_id"] = behind.client_id
            notes.append(f"app registration {state['display_name']} was made elsewhere: adopted, kept on teardown")
        if behind.principal_id is None:
            notes.append("the application has no service principal yet: the site playbook creates it")

    def _trust(self, declaration: dict[str, Any], behind: Behind, subject: str, notes: list[str]) -> None:
        here = [f for f in behind.fics if f["issuer"] == self.issuer_url]
        if not any(f["subject"] == subject for f in here):
            notes.append(
                f"no federated credential trusts {subject} from this cluster's issuer: the site playbook creates it "
                "(until then its pods cannot sign in)"
            )
        extra = sorted({f["subject"] for f in here if f["subject"] != subject})
        if extra:
            declaration["extra_subjects"] = extra

    def _leftovers(self) -> None:
        """What this collection made for this cluster that no ServiceAccount is bound to any more."""
        used = {key for key, behind in self.behind.items() if behind is not None}
        for key, identity in sorted(self.identities.items(), key=lambda item: item[1]["name"]):
            if owned_by(identity["tags"], self.cluster, self.cluster_scope) and key not in used:
                self.result["findings"].append(
                    f"identity {identity['name']} was made by this collection for workload "
                    f"{identity['tags'].get(WORKLOAD_TAG)}, which no ServiceAccount is bound to: not declared, "
                    "so a run with prune removes it"
                )
        if self.applications is None:
            return
        try:
            marked = self.applications.marked(application_cluster_tag(self.cluster))
        except AzureApiError as exc:
            if exc.status not in (401, 403):
                raise
            self._graph_denied(exc)
            return
        for app in marked:
            ours = application_owned_by(app.get("tags"), self.cluster, self.cluster_scope)
            if ours and str(app["appId"]).lower() not in used:
                self.result["findings"].append(
                    f"app registration {app.get('displayName')} was made by this collection for this cluster, and "
                    "no ServiceAccount is bound to it: not declared, so a run with prune removes it"
                )

    # -- bookkeeping --------------------------------------------------------------------------------
    def _graph_denied(self, exc: AzureApiError) -> None:
        """Without Graph read access, app registrations stay unknown: said once, the rest is still declared."""
        finding = f"Microsoft Graph refused to list applications ({exc.code}): app registrations were not looked up"
        if finding not in self.result["findings"]:
            self.result["findings"].append(finding)

    def _tagged_name(self, behind: Behind) -> str | None:
        """The workload name this collection gave the identity or application, for this cluster."""
        if behind.identity is not None and owned_by(behind.identity["tags"], self.cluster, self.cluster_scope):
            return behind.identity["tags"].get(WORKLOAD_TAG)
        tags = (behind.application or {}).get("tags") or []
        if application_owned_by(tags, self.cluster, self.cluster_scope):
            tagged = next((t for t in tags if t.startswith(APP_WORKLOAD_TAG_PREFIX)), None)
            return tagged.split("/", 1)[-1] if tagged else None
        return None

    def _name(self, wanted: str) -> str:
        name, base, n = dns_label(wanted), dns_label(wanted), 1
        while name in self.names:
            n += 1
            name = dns_label(f"{base[:58]}-{n}")
        self.names.add(name)
        return name

    def _declared_for(self, client_id: str) -> str | None:
        return self.by_client.get(client_id.lower())

    def _declare(self, declaration: dict[str, Any], notes: list[str], behind: Behind) -> None:
        self.result["workloads"].append(declaration)
        self.by_client[behind.client_id.lower()] = declaration["name"]
        if notes:
            self.result["notes"][declaration["name"]] = notes

    def _note(self, name: str, note: str) -> None:
        self.result["notes"].setdefault(name, []).append(note)
