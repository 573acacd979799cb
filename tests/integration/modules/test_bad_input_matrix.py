"""The bad-input matrix: every kind of inventory mistake an operator makes, rejected before any write, named.

Each case is one workload list (with a valid workload beside the mistake, so "nothing written" means something)
given to the batch module as site.yml gives it. A rejected case must fail naming the cluster, the workload (where
there is one) and the field, and the sandbox must have answered no write for it; the accepted-by-design cases
run in check mode and must pass. All cases run in one ansible-playbook (a loop), so the matrix costs seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sandbox_helpers import Sandbox

from .conftest import RESOURCE_GROUP, auth, play

CLUSTER = "aks-matrix"
SUB = "{sub}"
RG = f"/subscriptions/{SUB}/resourceGroups/{RESOURCE_GROUP}"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/stmatrix"
VAULT = f"{RG}/providers/Microsoft.KeyVault/vaults/kv-matrix"
COSMOS = f"{RG}/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-matrix"
POSTGRES = f"{RG}/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-matrix"
CONTAINER = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'orders'"
WRITE_ONLY = (
    f"((!(ActionMatches{{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'}})) OR ({CONTAINER}))"
)


def ok(name: str = "fine", **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "ns",
        "service_account": name,
        "roles": [{"role": "Reader", "scope": RG}],
        **more,
    }


def bad(name: str, **fields: Any) -> dict[str, Any]:
    return {**ok(name), **fields}


def values(**variables: Any) -> dict[str, Any]:
    """The inventory_values option as the roles pass it, for workload_identity_<name> variables."""
    return {"inventory_values": {f"workload_identity_{name}": value for name, value in variables.items()}}


# (case, workloads, extra module options, expected fragment of the message); fragment None: accepted by design.
CASES: list[tuple[str, Any, dict[str, Any], str | None]] = [
    ("name missing", [{"namespace": "ns", "service_account": "x", "roles": []}], {}, "workload #2: name"),
    ("name uppercase", [bad("Orders")], {}, "workload 'Orders': name"),
    ("name too long", [bad("n" * 64)], {}, "name"),
    ("name repeated", [ok(), ok()], {}, "workload 'fine': name: declared twice"),
    ("namespace missing", [{"name": "a", "service_account": "a", "roles": []}], {}, "workload 'a': namespace"),
    ("namespace invalid", [bad("a", namespace="Bad_NS")], {}, "workload 'a': namespace"),
    ("namespace too long", [bad("a", namespace="n" * 64)], {}, "workload 'a': namespace"),
    ("service account missing", [{"name": "a", "namespace": "ns", "roles": []}], {}, "workload 'a': service_account"),
    ("service account invalid", [bad("a", service_account="a/b")], {}, "workload 'a': service_account"),
    ("service account twice", [bad("a", service_account="fine")], {}, "workload 'a': service_account"),
    ("roles not a list", [bad("a", roles="Reader")], {}, "workload 'a': roles"),
    ("role not a mapping", [bad("a", roles=["Reader"])], {}, "workload 'a': roles[0]"),
    ("role without role", [bad("a", roles=[{"scope": RG}])], {}, "workload 'a': roles[0]: role"),
    ("role without scope", [bad("a", roles=[{"role": "Reader"}])], {}, "workload 'a': roles[0]: scope"),
    ("scope relative", [bad("a", roles=[{"role": "Reader", "scope": "resourceGroups/x"}])], {}, "roles[0]: scope"),
    ("scope bad subscription", [bad("a", roles=[{"role": "Reader", "scope": "/subscriptions/x"}])], {}, "scope"),
    ("scope bad segment", [bad("a", roles=[{"role": "Reader", "scope": f"/subscriptions/{SUB}/x/y"}])], {}, "scope"),
    (
        "management group malformed",
        [bad("a", roles=[{"role": "Reader", "scope": "/providers/Microsoft.Management/x"}])],
        {},
        "workload 'a': roles[0]: scope",
    ),
    ("role field typo", [bad("a", roles=[{"rol": "Reader", "scope": RG}])], {}, "workload 'a': roles[0]"),
    (
        "role declared twice",
        [bad("a", roles=[{"role": "Reader", "scope": RG}, {"role": "Reader", "scope": RG + "/"}])],
        {},
        "workload 'a': roles[1]",
    ),
    (
        "condition version alone",
        [bad("a", roles=[{"role": "Reader", "scope": RG, "condition_version": "2.0"}])],
        {},
        "workload 'a': roles[0]: condition_version",
    ),
    (
        "condition version 1.0",
        [bad("a", roles=[{"role": "Reader", "scope": RG, "condition": "true", "condition_version": "1.0"}])],
        {},
        "workload 'a': roles[0]: condition_version",
    ),
    ("owner at a resource group", [bad("a", roles=[{"role": "Owner", "scope": RG}])], {}, "roles[0]: role: Owner"),
    (
        "user access administrator at a resource",
        [bad("a", roles=[{"role": "User Access Administrator", "scope": STORAGE}])],
        {},
        "workload 'a': roles[0]: role: User Access Administrator",
    ),
    (
        "contributor at the subscription",
        [bad("a", roles=[{"role": "Contributor", "scope": f"/subscriptions/{SUB}"}])],
        {},
        "workload 'a': roles[0]: role: Contributor at subscription scope",
    ),
    (
        "custom role that grants roles",
        [bad("a", roles=[{"role": "Matrix Deployer", "scope": RG}])],
        {},
        "workload 'a': roles[0]: role: Matrix Deployer allows Microsoft.Authorization/roleAssignments/write",
    ),
    ("unknown role", [bad("a", roles=[{"role": "Storage Blob Data Raeder", "scope": RG}])], {}, "roles[0]: role"),
    (
        "unknown role GUID",
        [bad("a", roles=[{"role": "00000000-0000-0000-0000-0000000000aa", "scope": RG}])],
        {},
        "workload 'a': roles[0]: role",
    ),
    (
        "scope that does not exist",
        [bad("a", roles=[{"role": "Reader", "scope": f"{RG}/providers/Microsoft.Storage/storageAccounts/stnone"}])],
        {},
        "workload 'a': roles[0]: scope:",
    ),
    (
        "identity resource group that does not exist",
        [bad("a", identity_resource_group="rg-matrix-none")],
        {},
        "workload 'a': identity_resource_group: resource group rg-matrix-none does not exist",
    ),
    ("name with a trailing newline", [bad("nl\n")], {}, "workload 'nl\\n': name"),
    ("service account with a trailing newline", [bad("a", service_account="a\n")], {}, "workload 'a': service_account"),
    ("namespace with a trailing newline", [bad("a", namespace="ns\n")], {}, "workload 'a': namespace"),
    ("identity name with a trailing newline", [bad("a", identity_name="id-nl\n")], {}, "workload 'a': identity_name"),
    ("namespace a YAML boolean", [bad("a", namespace=True)], {}, "workload 'a': namespace: must be a Kubernetes"),
    ("token expiration in superscripts", [bad("a", token_expiration="³⁶⁰⁰")], {}, "workload 'a': token_expiration"),
    (
        "condition a mapping",
        [bad("a", roles=[{"role": "Reader", "scope": RG, "condition": {"a": 1}}])],
        {},
        "workload 'a': roles[0]: condition: must be a string",
    ),
    (
        "condition that does not parse",
        [bad("a", roles=[{"role": "Storage Blob Data Reader", "scope": RG, "condition": "@Resource[x:name] 'a'"}])],
        {},
        "workload 'a': roles[0]: condition: does not parse as an Azure role assignment condition: \"'a'\" at",
    ),
    (
        "condition mixing AND and OR",
        [
            bad(
                "a",
                roles=[
                    {
                        "role": "Storage Blob Data Reader",
                        "scope": RG,
                        "condition": f"{CONTAINER} AND {CONTAINER} OR {CONTAINER}",
                    }
                ],
            )
        ],
        {},
        "workload 'a': roles[0]: condition: does not parse as an Azure role assignment condition: AND and OR mixed",
    ),
    (
        "condition on a role that takes none",
        [bad("a", roles=[{"role": "Reader", "scope": RG, "condition": CONTAINER}])],
        {},
        "workload 'a': roles[0]: condition: Reader takes no condition",
    ),
    (
        "condition naming an action the role does not grant",
        [bad("a", roles=[{"role": "Storage Blob Data Reader", "scope": RG, "condition": WRITE_ONLY}])],
        {},
        "workload 'a': roles[0]: condition: names the action Microsoft.Storage/storageAccounts/blobServices/containers/"
        "blobs/write, which Storage Blob Data Reader does not grant",
    ),
    ("tag forging a claim", [bad("a", tags={"wi-uses:aks-prod": "x"})], {}, "workload 'a': tags: 'wi-uses:aks-prod'"),
    ("tag named as the owner mark", [bad("a", tags={"managed-by": "me"})], {}, "workload 'a': tags: 'managed-by'"),
    ("tag with a null value", [bad("a", tags={"team": None})], {}, "workload 'a': tags: 'team': the value"),
    ("tag with a mapping value", [bad("a", tags={"team": {"x": 1}})], {}, "workload 'a': tags: 'team': the value"),
    ("tag name Azure refuses", [bad("a", tags={"a<b": "x"})], {}, "workload 'a': tags: 'a<b': Azure refuses <"),
    ("tags differing in case", [bad("a", tags={"Env": "a", "env": "b"})], {}, "workload 'a': tags: 'env': the same"),
    ("tag value too long", [bad("a", tags={"note": "x" * 257})], {}, "workload 'a': tags: 'note': the value is 257"),
    (
        "application display name with a NUL",
        [bad("a", identity_type="application", application_display_name="orders\x00api")],
        {},
        "workload 'a': application_display_name: must be 1-256 characters, none a control character",
    ),
    (
        "identity resource group given as a resource id",
        [bad("a", identity_resource_group=RG)],
        {},
        "workload 'a': identity_resource_group: '/subscriptions/",
    ),
    (
        "scope in an unknown subscription",
        [
            bad(
                "a",
                roles=[
                    {"role": "Reader", "scope": "/subscriptions/0b1f6471-1bf0-4dda-aec3-000000000000/resourceGroups/rg"}
                ],
            )
        ],
        {},
        "workload 'a': roles[0]: scope",
    ),
    ("identity type unknown", [bad("a", identity_type="system")], {}, "workload 'a': identity_type"),
    ("identity name invalid", [bad("a", identity_name="id with spaces")], {}, "workload 'a': identity_name"),
    ("identity name too short", [bad("a", identity_name="id")], {}, "workload 'a': identity_name"),
    ("identity name shared", [bad("a", identity_name="id-x"), bad("b", identity_name="id-x")], {}, "identity_name"),
    (
        "identity of a cluster the inventory does not declare, whose roles it would change",
        [bad("a", identity_name="id-matrix-elsewhere")],
        {},
        "workload 'a': roles: identity id-matrix-elsewhere is also used by cluster aks-other, which this inventory "
        "does not declare",
    ),
    (
        "default name taken by an identity made by hand",
        [ok("byhand")],
        {},
        "workload 'byhand': identity_name: the default name id-aks-matrix-ns-byhand is taken",
    ),
    ("application field on an identity", [bad("a", application_id="x")], {}, "workload 'a': application_id"),
    (
        "identity name on an application",
        [bad("a", identity_type="application", identity_name="id-x")],
        {},
        "workload 'a': identity_name: only for identity_type user_assigned",
    ),
    (
        "application id not a GUID",
        [bad("a", identity_type="application", application_id="my-app")],
        {},
        "workload 'a': application_id",
    ),
    (
        "application id and unique name",
        [
            bad(
                "a",
                identity_type="application",
                application_id="6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5",
                application_unique_name="x",
            )
        ],
        {},
        "workload 'a': application_id",
    ),
    (
        "application unique name invalid",
        [bad("a", identity_type="application", application_unique_name="bad name!")],
        {},
        "workload 'a': application_unique_name",
    ),
    (
        "application display name too long",
        [bad("a", identity_type="application", application_display_name="d" * 257)],
        {},
        "workload 'a': application_display_name",
    ),
    (
        "application that does not exist",
        [bad("a", identity_type="application", application_id="6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5")],
        {},
        "workload 'a': application_id: no application",
    ),
    ("extra subjects not a list", [bad("a", extra_subjects="system:serviceaccount:x:y")], {}, "extra_subjects"),
    (
        "extra subject repeated",
        [bad("a", extra_subjects=["system:serviceaccount:ns:a"])],
        {},
        "workload 'a': extra_subjects: repeats",
    ),
    (
        "more than twenty credentials",
        [bad("a", extra_subjects=[f"system:serviceaccount:ns:s{i}" for i in range(20)])],
        {},
        "workload 'a': extra_subjects: 21 federated credentials",
    ),
    ("extra subject too long", [bad("a", extra_subjects=["s" * 601])], {}, "workload 'a': extra_subjects"),
    ("tags not a mapping", [bad("a", tags=["team"])], {}, "workload 'a': tags"),
    ("controllers not a list", [bad("a", controllers="Deployment/a")], {}, "workload 'a': controllers"),
    ("controller kind unknown", [bad("a", controllers=[{"kind": "Pod", "name": "a"}])], {}, "controllers[0]: kind"),
    ("controller without name", [bad("a", controllers=[{"kind": "Deployment"}])], {}, "controllers[0]: name"),
    ("controller name invalid", [bad("a", controllers=[{"kind": "Deployment", "name": "A_b"}])], {}, "controllers"),
    (
        "controller bound twice",
        [
            bad("a", controllers=[{"kind": "Deployment", "name": "api"}]),
            bad("b", controllers=[{"kind": "Deployment", "name": "api"}]),
        ],
        {},
        "workload 'b': controllers[0]",
    ),
    ("token lifetime too short", [bad("a", token_expiration=60)], {}, "workload 'a': token_expiration"),
    ("token lifetime too long", [bad("a", token_expiration=86401)], {}, "workload 'a': token_expiration"),
    ("token lifetime not a number", [bad("a", token_expiration="1h")], {}, "workload 'a': token_expiration"),
    ("rebind not a boolean", [bad("a", rebind="yes please")], {}, "workload 'a': rebind"),
    ("teardown_adopted not a boolean", [bad("a", teardown_adopted="sure")], {}, "workload 'a': teardown_adopted"),
    ("unknown field", [bad("a", servce_account="a")], {}, "workload 'a': servce_account: unknown field"),
    # As the workloads role passes a list with an entry that is not a mapping (the module's own argument spec
    # would refuse it in Ansible's words, without the cluster).
    ("workload not a mapping", [], {"workloads_kind": "list #2"}, "workload_identity_workloads: entries #2 are not"),
    ("list given as a mapping", [], {"workloads_kind": "mapping"}, "workload_identity_workloads: must be a list"),
    ("list undefined", [], {"workloads_kind": "none"}, "workload_identity_workloads: not defined, or null"),
    (
        "misspelled variable",
        [],
        {"inventory_variables": ["workload_identity_workload", "workload_identity_prune"]},
        "workload_identity_workload: not a variable of workload_identity.aks (did you mean "
        "workload_identity_workloads?)",
    ),
    # The roles' other variables, as they pass them (values of the inventory's workload_identity_* variables).
    ("prune not a boolean", [], values(prune="maybe"), "workload_identity_prune: 'maybe' is not a boolean"),
    ("prune_max negative", [], values(prune_max=-1), "workload_identity_prune_max: -1 is not a count"),
    ("prune_max a word", [], values(prune_max="five"), "workload_identity_prune_max: 'five' is not a count"),
    ("prune_max a boolean", [], values(prune_max=True), "workload_identity_prune_max: True is not a count"),
    ("webhook mode capitalised", [], values(webhook_mode="Helm"), "webhook_mode: 'Helm' is not one of helm, addon"),
    ("missing_workloads choice", [], values(missing_workloads="skip"), "missing_workloads: 'skip' is not one of"),
    ("location a list", [], values(location=["westeurope"]), "workload_identity_location: must be a string (got a"),
    ("cluster name a boolean", [], values(cluster_name=True), "workload_identity_cluster_name: must be a string"),
    ("azure_auth not a mapping", [], values(azure_auth="secret"), "workload_identity_azure_auth: must be a mapping"),
    ("teardown flag a word", [], values(teardown_everything="all"), "teardown_everything: 'all' is not a boolean"),
    ("issuer not https", [], {"issuer_url": "http://issuer.example/x/"}, "issuer_url"),
    ("no location for a new identity", [bad("a")], {"location": None}, "workload 'a': location"),
    # Key Vault access policy entries (roles entries with access_policy instead of role).
    (
        "access policy not on a vault",
        [bad("a", roles=[{"scope": STORAGE, "access_policy": {"secrets": ["get"]}}])],
        {},
        "workload 'a': roles[0]: scope: an access_policy is given on a key vault",
    ),
    (
        "access policy under a vault",
        [bad("a", roles=[{"scope": VAULT + "/secrets/db", "access_policy": {"secrets": ["get"]}}])],
        {},
        "workload 'a': roles[0]: scope: an access_policy is given on a key vault",
    ),
    (
        "access policy unknown permission",
        [bad("a", roles=[{"scope": VAULT, "access_policy": {"secrets": ["get", "read"]}}])],
        {},
        "workload 'a': roles[0]: access_policy: secrets: read: not a Key Vault permission for secrets",
    ),
    (
        "access policy unknown kind",
        [bad("a", roles=[{"scope": VAULT, "access_policy": {"blobs": ["get"]}}])],
        {},
        "workload 'a': roles[0]: access_policy: blobs: unknown kind",
    ),
    (
        "access policy grants nothing",
        [bad("a", roles=[{"scope": VAULT, "access_policy": {"secrets": []}}])],
        {},
        "workload 'a': roles[0]: access_policy: grants nothing",
    ),
    (
        "access policy not a mapping",
        [bad("a", roles=[{"scope": VAULT, "access_policy": ["get", "list"]}])],
        {},
        "workload 'a': roles[0]: access_policy: must be a mapping",
    ),
    (
        "access policy permissions not a list",
        [bad("a", roles=[{"scope": VAULT, "access_policy": {"secrets": "get"}}])],
        {},
        "workload 'a': roles[0]: access_policy: secrets: must be a list of permissions",
    ),
    (
        "access policy with a role",
        [bad("a", roles=[{"role": "Reader", "scope": VAULT, "access_policy": {"secrets": ["get"]}}])],
        {},
        "workload 'a': roles[0]: role: not with access_policy",
    ),
    (
        "access policy twice on a vault",
        [
            bad(
                "a",
                roles=[
                    {"scope": VAULT, "access_policy": {"secrets": ["get"]}},
                    {"scope": VAULT + "/", "access_policy": {"keys": ["get"]}},
                ],
            )
        ],
        {},
        "workload 'a': roles[1]: access_policy: ",
    ),
    # Cosmos DB SQL role assignments (a SQL role at an account, or its /dbs/<db>[/colls/<container>]).
    (
        "sql role at a malformed path",
        [bad("a", roles=[{"role": "Cosmos DB Built-in Data Reader", "scope": COSMOS + "/colls/items"}])],
        {},
        "workload 'a': roles[0]: scope: /subscriptions/",
    ),
    (
        "sql role below a container",
        [bad("a", roles=[{"role": "Cosmos DB Built-in Data Reader", "scope": COSMOS + "/dbs/x/colls/y/docs/z"}])],
        {},
        "is not a Cosmos DB SQL role's scope",
    ),
    (
        "sql role with a description",
        [bad("a", roles=[{"role": "Cosmos DB Built-in Data Reader", "scope": COSMOS + "/dbs/x", "description": "d"}])],
        {},
        "workload 'a': roles[0]: description: Cosmos DB Built-in Data Reader at ",
    ),
    (
        "sql role with a condition",
        [
            bad(
                "a",
                roles=[
                    {"role": "Reader", "scope": RG},
                    {"role": "00000000-0000-0000-0000-000000000001", "scope": COSMOS, "condition": "true"},
                ],
            )
        ],
        {},
        "workload 'a': roles[1]: condition: 00000000-0000-0000-0000-000000000001 at ",
    ),
    # Database roles on PostgreSQL flexible servers (a server, a database and its database_roles).
    (
        "database role not on a server",
        [bad("a", roles=[{"scope": COSMOS, "database": "orders", "database_roles": ["pg_read_all_data"]}])],
        {},
        "workload 'a': roles[0]: scope: a database role is given on an Azure Database for PostgreSQL flexible server",
    ),
    (
        "database role without roles",
        [bad("a", roles=[{"scope": POSTGRES, "database": "orders"}])],
        {},
        "workload 'a': roles[0]: database_roles: must be a list",
    ),
    (
        "database role with a role",
        [bad("a", roles=[{"role": "Reader", "scope": POSTGRES, "database": "orders", "database_roles": ["x"]}])],
        {},
        "workload 'a': roles[0]: role: not with database",
    ),
    (
        "database role that administers the server",
        [bad("a", roles=[{"scope": POSTGRES, "database": "orders", "database_roles": ["azure_pg_admin"]}])],
        {},
        "workload 'a': roles[0]: database_roles: azure_pg_admin administers the server",
    ),
    (
        "database user reserved",
        [bad("a", roles=[{"scope": POSTGRES, "database": "d", "database_roles": ["r"], "database_user": "pg_a"}])],
        {},
        "workload 'a': roles[0]: database_user: pg_a: names starting with pg_ are PostgreSQL's own",
    ),
    (
        "database name too long",
        [bad("a", roles=[{"scope": POSTGRES, "database": "d" * 64, "database_roles": ["r"]}])],
        {},
        "workload 'a': roles[0]: database: must be a name of 1-63 bytes",
    ),
    (
        "two database users on one server",
        [
            bad(
                "a",
                roles=[
                    {"scope": POSTGRES, "database": "d", "database_roles": ["r"]},
                    {"scope": POSTGRES, "database": "e", "database_roles": ["r"], "database_user": "b"},
                ],
            )
        ],
        {},
        "workload 'a': roles[1]: database_user: b, where roles[0] names a on the same server",
    ),
    # Accepted by design (run in check mode).
    ("no roles: no access", [bad("a", roles=[])], {}, None),
    ("contributor at a resource group", [bad("a", roles=[{"role": "Contributor", "scope": RG}])], {}, None),
    ("token lifetime at its bounds", [bad("a", token_expiration=3600), bad("b", token_expiration=86400)], {}, None),
    ("twenty credentials", [bad("a", extra_subjects=[f"system:serviceaccount:ns:s{i}" for i in range(19)])], {}, None),
    ("variables as Ansible converts them", [ok()], values(prune="yes", prune_max="10", location=None), None),
    ("deprecated controllers alias", [bad("a", workloads=[{"kind": "Deployment", "name": "a"}])], {}, None),
]


def fill(value: Any, sub: str) -> Any:
    return json.loads(json.dumps(value).replace(SUB, sub))


@pytest.fixture(scope="module")
def matrix(sandbox: Sandbox, collections: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case run once, in one playbook; what each answered, and the writes the sandbox saw during it all."""
    sub = sandbox.subscription_id
    msi = sandbox.msi()
    owned = {"managed-by": "workload_identity.aks", "wi-cluster": "aks-other"}
    msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-matrix-elsewhere", {"location": "westeurope", "tags": owned}
    )
    msi.user_assigned_identities.create_or_update(RESOURCE_GROUP, "id-aks-matrix-ns-byhand", {"location": "westeurope"})
    sandbox.authz().role_definitions.create_or_update(
        f"/subscriptions/{sub}",
        "7e8f9a0b-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
        {
            "role_name": "Matrix Deployer",
            "role_type": "CustomRole",
            "assignable_scopes": [f"/subscriptions/{sub}"],
            "permissions": [{"actions": ["Microsoft.Resources/deployments/*", "Microsoft.Authorization/*"]}],
        },
    )
    cases = []
    for name, workloads, options, expected in CASES:
        listed = list(workloads)
        if expected is not None and not any(isinstance(w, dict) and w.get("name") == "fine" for w in workloads):
            listed = [ok(), *workloads]  # a valid workload beside the mistake: it must not be written either
        cases.append(
            {
                "case": name,
                "check": expected is None,
                "args": fill(
                    {
                        "cluster_name": CLUSTER,
                        "issuer_url": f"https://issuer.example/{CLUSTER}/",
                        "location": "westeurope",
                        "identity_resource_group": RESOURCE_GROUP,
                        "workloads": listed,
                        **options,
                    },
                    sub,
                ),
            }
        )
    body = {
        "module_defaults": {"group/workload_identity.aks.azure": "{{ azure_auth }}"},
        "tasks": [
            {
                "name": "every case",
                "workload_identity.aks.workload_identities": "{{ item.args }}",
                "check_mode": "{{ item.check }}",
                "loop": "{{ cases }}",
                "loop_control": {"label": "{{ item.case }}"},
                "register": "answered",
                "ignore_errors": True,
            },
            {
                "name": "show",
                "ansible.builtin.debug": {
                    "msg": "MATRIX={{ answered.results | map(attribute='msg', default='') | list | to_json }}"
                },
            },
        ],
    }
    sandbox.control.reset_stats()
    tmp = tmp_path_factory.mktemp("matrix")
    done = play(sandbox, collections, tmp, body, {"azure_auth": auth(sandbox), "cases": cases}, expect_ok=False)
    found = re.search(r'"msg": "MATRIX=(.*)"\n', done.stdout)
    assert found, done.stdout[-4000:]
    messages = json.loads(json.loads(f'"{found.group(1)}"'))
    writes = [
        op
        for op in sandbox.control.stats()["operations"]
        if op.rsplit(".", 1)[-1] in ("put", "delete", "patch", "post") and not op.startswith(("sandbox.", "entra."))
    ]
    return {"messages": dict(zip([c[0] for c in CASES], messages, strict=True)), "writes": writes}


def test_the_matrix_has_the_kinds_of_mistake_an_operator_makes() -> None:
    rejected = [c for c in CASES if c[3] is not None]
    assert len({c[0] for c in CASES}) == len(CASES) and len(rejected) >= 60


@pytest.mark.parametrize(("case", "expected"), [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_rejected_naming_cluster_workload_and_field(
    matrix: dict[str, Any], case: str, expected: str | None
) -> None:
    message = matrix["messages"][case]
    if expected is None:
        assert message == "", message  # accepted by design
        return
    assert f"cluster {CLUSTER}: " in message, message
    assert expected in message, message


def test_no_case_wrote_anything(matrix: dict[str, Any]) -> None:
    """Every rejection came before any write; the accepted cases ran in check mode."""
    assert matrix["writes"] == []


def test_the_roles_name_the_inventorys_variables_and_never_show_a_mappings_content(
    sandbox: Sandbox, collections: str, tmp_path: Path
) -> None:
    """Through the workloads role as site.yml runs it: every wrong type at once, in the inventory's names, even with
    -vvv no mapping's content in the output (a kubeconfig's token), and nothing asked of Azure."""
    inventory = {
        "workload_identity_identity_resource_group": RESOURCE_GROUP,
        "workload_identity_workloads": [ok()],
        "workload_identity_prune": "maybe",
        "workload_identity_prune_max": -1,
        "workload_identity_allow_privileged_roles": "perhaps",
        "workload_identity_webhook_mode": "Helm",
        "workload_identity_kubeconfig": {"users": [{"user": {"token": "kube-token-never-shown"}}]},
    }
    body = {
        "vars": inventory,
        "tasks": [
            {
                "name": "validate",
                "ansible.builtin.include_role": {"name": "workload_identity.aks.workloads", "tasks_from": "validate"},
            }
        ],
    }
    sandbox.control.reset_stats()
    done = play(sandbox, collections, tmp_path, body, {}, expect_ok=False, options=("-vvv",))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    for expected in (
        "cluster localhost: workload_identity_prune: 'maybe' is not a boolean",
        "cluster localhost: workload_identity_prune_max: -1 is not a count",
        "cluster localhost: workload_identity_allow_privileged_roles: 'perhaps' is not a boolean",
        "cluster localhost: workload_identity_webhook_mode: 'Helm' is not one of helm, addon",
        "cluster localhost: workload_identity_kubeconfig: must be a string (got a mapping)",
    ):
        assert expected in output, output[-4000:]
    assert "workloads_prune" not in output and "workloads_allow_privileged_roles" not in output
    assert "kube-token-never-shown" not in output
    assert sandbox.control.stats()["totals"].get("arm", 0) == 0
