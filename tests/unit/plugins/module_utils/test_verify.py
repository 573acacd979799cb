"""The Verifier's chain on stand-ins for the cluster, Entra and ARM: the order, the stop, the bounded wait, the counts.

The probes' own requests are exercised against the sandbox's real API servers and Entra by
tests/integration/kube/test_verify.py; here only what the Verifier decides from their answers.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_orphans import Orphan
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_batch_reads import Batch, Reads, identity_key
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import Role
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import validate_workloads
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership_assignments import AssignmentMark
from ansible_collections.workload_identity.aks.plugins.module_utils._verify import Verifier
from azure.core.exceptions import ClientAuthenticationError

from .fakes import SUB, TENANT
from .test_verify_checks import BLOB, ISSUER, SUBJECT, mutated

CLIENT = "11111111-2222-3333-4444-555555555555"
PRINCIPAL = "99999999-2222-3333-4444-555555555555"
SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/st"
GRANTS = [
    {
        "actions": list(BLOB.permissions[0][0]),
        "notActions": [],
        "dataActions": list(BLOB.permissions[0][2]),
        "notDataActions": [],
    }
]


class Kube:
    def __init__(self) -> None:
        self.accounts = {
            ("orders", "orders-api"): {"metadata": {"annotations": {"azure.workload.identity/client-id": CLIENT}}}
        }
        labels = {"azure.workload.identity/use": "true"}
        self.templates = {
            ("Deployment", "orders", "orders-api"): {
                "metadata": {"labels": labels},
                "spec": {"serviceAccountName": "orders-api"},
            }
        }
        self.pod = mutated()
        self.calls: list[str] = []

    def account(self, namespace: str, name: str) -> Any:
        self.calls.append("account")
        return self.accounts.get((namespace, name))

    def template(self, kind: str, namespace: str, name: str) -> Any:
        self.calls.append("template")
        return self.templates.get((kind, namespace, name))

    def dry_run(self, namespace: str, pod: dict[str, Any], what: str) -> dict[str, Any]:
        self.calls.append("dry_run")
        return self.pod

    def token(self, namespace: str, name: str) -> str:
        self.calls.append("token")
        return "header.payload.signature"


class Arm:
    def __init__(self) -> None:
        self.grants = {SCOPE.lower(): GRANTS}
        self.calls: list[str] = []

    def permissions(self, credential: Any, scope: str) -> list[dict[str, Any]]:
        self.calls.append(scope)
        return self.grants.get(scope.lower(), [])


class Entra:
    """Refuses the first ``refusals`` exchanges with ``code``, then signs in."""

    def __init__(self, refusals: int = 0, code: str = "70021") -> None:
        self.refusals, self.code, self.exchanges = refusals, code, 0
        self.scope = "https://management.azure.com/.default"

    def workload_credential(self, tenant: str, client_id: str, assertion: Any) -> Any:
        entra = self

        class Credential:
            def get_token(self, scope: str) -> Any:
                entra.exchanges += 1
                assert assertion() == "header.payload.signature"
                if entra.exchanges <= entra.refusals:
                    raise ClientAuthenticationError(
                        message=f"AADSTS{entra.code}: No matching federated identity record"
                    )
                return SimpleNamespace(token="arm-token")

        return Credential()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def verifier(
    kube: Kube,
    arm: Arm,
    entra: Entra,
    clock: Clock,
    credentials: list[Any] | None = None,
    extra: list[Any] | None = None,
) -> Verifier:
    workloads = [
        {
            "name": "orders-api",
            "namespace": "orders",
            "service_account": "orders-api",
            "roles": [{"role": "Storage Blob Data Contributor", "scope": SCOPE}],
            "controllers": [{"kind": "Deployment", "name": "orders-api"}],
        }
    ]
    specs = validate_workloads(
        "aks-dev", workloads, identity_resource_group="rg-ids", allow_privileged_roles=True
    ).specs
    batch = Batch("aks-dev", SUB, ISSUER, None, specs, False, True, resource_groups=("rg-ids",))
    reads = Reads()
    name = specs[0].identity_name
    key = identity_key("rg-ids", name)
    reads.identities[key] = {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg-ids/providers/Microsoft.ManagedIdentity/"
        f"userAssignedIdentities/{name}",
        "name": name,
        "resource_group": "rg-ids",
        "location": "westeurope",
        "tags": {},
        "client_id": CLIENT,
        "principal_id": PRINCIPAL,
        "tenant_id": TENANT,
    }
    default = [
        {
            "id": "f",
            "name": "aks-dev-orders-orders-api",
            "identity": name,
            "issuer": ISSUER,
            "subject": SUBJECT,
            "audiences": ["api://AzureADTokenExchange"],
        }
    ]
    reads.fics[key] = default if credentials is None else credentials
    held = [SimpleNamespace(id="/a/blob", role_definition_id=BLOB.id, scope=SCOPE, principal_id=PRINCIPAL)]
    reads.assignments[PRINCIPAL] = held + (extra or [])
    reads.roles_by_guid[SUB] = {BLOB.guid: BLOB}

    def resolve(spec: Any, _reads: Reads) -> Role:
        return BLOB

    return Verifier(batch, reads, resolve, kube, arm, entra, 120.0, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]


def statuses(verdict: Any) -> list[str]:
    return [link["status"] for link in verdict.as_dict()["links"]]


def test_a_working_chain_costs_one_request_per_link() -> None:
    kube, arm, entra, clock = Kube(), Arm(), Entra(), Clock()
    [verdict] = verifier(kube, arm, entra, clock).verify_all(4)
    assert verdict.verified and statuses(verdict) == ["ok"] * 7
    assert kube.calls == ["account", "template", "dry_run", "token"] and arm.calls == [SCOPE] and entra.exchanges == 1
    assert verdict.credential == {"name": "aks-dev-orders-orders-api", "issuer": ISSUER, "subject": SUBJECT}
    assert verdict.roles == [{"role": "Storage Blob Data Contributor", "scope": SCOPE, "granted": True}]


def test_the_chain_stops_at_the_first_broken_link_and_the_review_still_runs() -> None:
    kube, arm, entra, clock = Kube(), Arm(), Entra(), Clock()
    kube.templates[("Deployment", "orders", "orders-api")]["metadata"]["labels"] = {}
    extra = [
        SimpleNamespace(
            id="/a/owner",
            role_definition_id="/x/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            scope=f"/subscriptions/{SUB}",
            principal_id=PRINCIPAL,
        )
    ]
    [verdict] = verifier(kube, arm, entra, clock, extra=extra).verify_all(1)
    assert statuses(verdict) == ["ok", "ok", "broken", "not checked", "not checked", "not checked", "broken"]
    assert [f.link for f in verdict.findings] == ["pod_template", "assignments"]
    assert "az role assignment delete --ids /a/owner" in verdict.findings[1].remedy
    assert kube.calls == ["account", "template"] and entra.exchanges == 0 and arm.calls == []


def test_a_matching_credential_is_waited_for_a_bounded_time_and_the_wait_reported() -> None:
    kube, arm, entra, clock = Kube(), Arm(), Entra(refusals=3), Clock()
    [verdict] = verifier(kube, arm, entra, clock).verify_all(1)
    assert verdict.verified and verdict.sign_in_wait == 15.0 and entra.exchanges == 4
    assert "signed in as 11111111-2222-3333-4444-555555555555 after waiting 15 s" in " ".join(verdict.details)
    forever, clock = Entra(refusals=1000), Clock()
    [verdict] = verifier(Kube(), Arm(), forever, clock).verify_all(1)
    assert clock.now == 120.0 and forever.exchanges == 25
    [finding] = verdict.findings
    assert (
        finding.link == "sign_in"
        and "after 120 s although credential aks-dev-orders-orders-api matches" in finding.message
    )


def test_a_credential_that_cannot_match_is_not_waited_for() -> None:
    kube, arm, entra, clock = Kube(), Arm(), Entra(refusals=1000, code="700211"), Clock()
    slash = [
        {
            "id": "f",
            "name": "c",
            "identity": "i",
            "issuer": ISSUER.rstrip("/"),
            "subject": SUBJECT,
            "audiences": ["api://AzureADTokenExchange"],
        }
    ]
    [verdict] = verifier(kube, arm, entra, clock, credentials=slash).verify_all(1)
    assert clock.now == 0.0 and entra.exchanges == 1
    [finding] = verdict.findings
    assert "(they differ in the trailing slash); Entra: AADSTS700211: no federated credential trusts" in finding.message


def test_a_role_not_granted_to_the_workloads_own_token() -> None:
    kube, arm, entra, clock = Kube(), Arm(), Entra(), Clock()
    arm.grants = {}
    [verdict] = verifier(kube, arm, entra, clock).verify_all(1)
    [finding] = verdict.findings
    assert finding.link == "permissions" and "not granted 3 of its actions" in finding.message
    assert "it is assigned, yet ARM does not grant it" in finding.message and "deny assignment" in finding.remedy
    assert verdict.roles[0]["granted"] is False


def test_an_orphaned_assignment_of_the_workload_is_a_finding_and_anothers_is_not() -> None:
    kube, arm, entra, clock = Kube(), Arm(), Entra(), Clock()
    check = verifier(kube, arm, entra, clock)
    gone = SimpleNamespace(id="/a/gone", role_definition_id=BLOB.id, scope=SCOPE, principal_id="p-gone")
    mine = AssignmentMark("aks-dev", None, "orders", "orders-api", "identity", "rg-ids/id-old")
    other = mine._replace(workload="billing")
    check.reads.orphans = [Orphan(gone, mine, "its principal no longer exists"), Orphan(gone, other, "gone too")]
    [verdict] = check.verify_all(1)
    assert not verdict.verified and statuses(verdict)[-1] == "broken"
    (finding,) = verdict.findings
    assert (
        finding.link == "assignments" and "orphaned" in finding.message and "identity rg-ids/id-old" in finding.message
    )
    assert "az role assignment delete --ids /a/gone" in finding.remedy


# -- key vaults: what the vault itself says ----------------------------------------------------------------
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.KeyVault/vaults/kv-orders"
READ_NAMES = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
SECRETS_USER = Role(
    "/x/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6",
    "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets User",
    (((), (), ("Microsoft.KeyVault/vaults/secrets/getSecret/action", READ_NAMES)),),
)


class VaultArm(Arm):
    """ARM, and the vault's data plane: answers ``status`` (with the vault's message) to the workload's read."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__()
        self.status, self.message = status, message
        self.reads: list[tuple[str, bool]] = []

    def vault_read(self, credential: Any, vault_uri: str, list_names: bool) -> tuple[int, str]:
        self.reads.append((vault_uri, list_names))
        return self.status, self.message

    def blob_list(self, credential: Any, account: str, container: str) -> tuple[int, str]:
        self.reads.append((f"{account}/{container}", True))
        return self.status, self.message

    def cosmos_read(self, credential: Any, account: str, path: str, partition_paths: int = 0) -> tuple[int, str]:
        self.reads.append((f"{account}{path}", bool(partition_paths)))
        # An item no one has: Cosmos DB's 404 when the read is allowed.
        return (
            (404, "Entity with the specified id does not exist")
            if partition_paths and self.status == 200
            else (
                self.status,
                self.message,
            )
        )


def vault_verifier(arm: VaultArm, roles: list[dict[str, Any]], entry: dict[str, list[str]] | None, rbac: bool) -> Any:
    kube, entra, clock = Kube(), Entra(), Clock()
    check = verifier(kube, arm, entra, clock)
    spec = validate_workloads(
        "aks-dev",
        [
            {
                "name": "orders-api",
                "namespace": "orders",
                "service_account": "orders-api",
                "roles": roles,
                "controllers": [{"kind": "Deployment", "name": "orders-api"}],
            }
        ],
        identity_resource_group="rg-ids",
        allow_privileged_roles=True,
    ).specs
    check.batch.workloads = spec
    policies = [{"tenantId": TENANT, "objectId": PRINCIPAL, "permissions": entry}] if entry else []
    check.reads.vaults[VAULT.lower()] = {
        "id": VAULT,
        "name": "kv-orders",
        "location": "westeurope",
        "tenant_id": TENANT,
        "rbac": rbac,
        "uri": "https://kv-orders.vault.azure.net/",
        "policies": policies,
    }
    check.resolve = lambda spec, reads: SECRETS_USER if spec.role == "Key Vault Secrets User" else BLOB
    # The principal holds exactly the declared roles (the access review has nothing to say).
    check.reads.assignments[PRINCIPAL] = [
        SimpleNamespace(id="/a/kv", role_definition_id=SECRETS_USER.id, scope=VAULT, principal_id=PRINCIPAL)
        for r in roles
        if r.get("role")
    ]
    arm.grants[VAULT.lower()] = [
        {"actions": [], "notActions": [], "dataActions": ["Microsoft.KeyVault/vaults/secrets/*"]}
    ]
    return check


def test_an_access_policy_entry_is_proven_by_the_vault_itself() -> None:
    arm = VaultArm(200)
    entry = {"secrets": ["get", "list"]}
    [verdict] = vault_verifier(arm, [{"scope": VAULT, "access_policy": entry}], entry, rbac=False).verify_all(1)
    assert verdict.verified and arm.reads == [("https://kv-orders.vault.azure.net/", True)]
    assert any("1 service(s) let it read" in d for d in verdict.details)


def test_an_entry_that_grants_less_than_declared_is_a_finding_before_any_read() -> None:
    arm = VaultArm(200)
    roles = [{"scope": VAULT, "access_policy": {"secrets": ["get", "list"]}}]
    [verdict] = vault_verifier(arm, roles, {"secrets": ["get"]}, rbac=False).verify_all(1)
    assert not verdict.verified and arm.reads == []
    assert "grants secrets: get, not all that is declared" in verdict.findings[0].message


def test_a_role_arm_lists_but_an_access_policy_vault_refuses_is_a_finding_with_the_entry_to_declare() -> None:
    refusal = "The user, group or application 'appid=x;oid=y' does not have secrets list permission on key vault"
    arm = VaultArm(403, refusal)
    [verdict] = vault_verifier(arm, [{"role": "Key Vault Secrets User", "scope": VAULT}], None, rbac=False).verify_all(
        1
    )
    finding = next(f for f in verdict.findings if f.link == "permissions")
    assert "the vault refuses the workload's read (403: The user, group or application" in finding.message
    assert "declare its entry instead" in finding.remedy and not verdict.verified


def test_a_get_only_entry_is_proven_by_a_secret_no_one_has() -> None:
    arm = VaultArm(404, "A secret with (name/id) wi-verify-probe-... was not found in this key vault.")
    entry = {"secrets": ["get"]}
    [verdict] = vault_verifier(arm, [{"scope": VAULT, "access_policy": entry}], entry, rbac=False).verify_all(1)
    assert verdict.verified and arm.reads == [("https://kv-orders.vault.azure.net/", False)]


def test_a_vault_that_does_not_resolve_here_is_named_with_the_way_to_reach_it() -> None:
    arm = VaultArm(0, "kv-orders.vault.azure.net does not resolve from where the playbook runs")
    entry = {"secrets": ["get", "list"]}
    [verdict] = vault_verifier(arm, [{"scope": VAULT, "access_policy": entry}], entry, rbac=False).verify_all(1)
    finding = next(f for f in verdict.findings if f.link == "permissions")
    assert "could not be checked: kv-orders.vault.azure.net does not resolve" in finding.message
    assert "privatelink.vaultcore.azure.net" in finding.remedy and not verdict.verified


def test_the_access_review_lists_an_entry_the_workload_does_not_declare() -> None:
    arm = VaultArm(200)
    check = vault_verifier(arm, [], {"secrets": ["get"]}, rbac=False)
    [verdict] = check.verify_all(1)
    [finding] = [f for f in verdict.findings if f.link == "assignments"]
    assert "holds an access policy entry on key vault rg-data: Microsoft.KeyVault/vaults/kv-orders (secrets: get)" in (
        finding.message
    )
    assert "az keyvault delete-policy --name kv-orders" in finding.remedy and arm.reads == []


def test_a_blob_role_at_a_container_is_proven_by_listing_it_as_the_workload() -> None:
    container = f"{SCOPE}/blobServices/default/containers/orders"
    for status, verified in ((200, True), (403, False)):
        arm = VaultArm(status, "AuthorizationPermissionMismatch: This request is not authorized")
        check = vault_verifier(arm, [], None, rbac=False)
        check.batch.workloads[0].roles[:] = []
        specs = validate_workloads(
            "aks-dev",
            [
                {
                    "name": "orders-api",
                    "namespace": "orders",
                    "service_account": "orders-api",
                    "roles": [{"role": "Storage Blob Data Contributor", "scope": container}],
                    "controllers": [{"kind": "Deployment", "name": "orders-api"}],
                }
            ],
            identity_resource_group="rg-ids",
            allow_privileged_roles=True,
        ).specs
        check.batch.workloads = specs
        check.resolve = lambda spec, reads: BLOB
        check.reads.assignments[PRINCIPAL] = [
            SimpleNamespace(id="/a/blob", role_definition_id=BLOB.id, scope=container, principal_id=PRINCIPAL)
        ]
        arm.grants[container.lower()] = GRANTS
        [verdict] = check.verify_all(1)
        assert arm.reads == [("st/orders", True)] and verdict.verified is verified
        if not verified:
            finding = next(f for f in verdict.findings if f.link == "permissions")
            assert "the storage account refuses the workload's read (403: AuthorizationPermissionMismatch" in (
                finding.message
            )
