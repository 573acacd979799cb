"""Verification's judgements on what was read: each link's finding and remedy, AADSTS codes, accepted findings."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import Role
from ansible_collections.workload_identity.aks.plugins.module_utils._verify_checks import (
    credential_problem,
    dry_run_pod,
    mutation_problem,
    permission_gaps,
    service_account_problem,
    template_problem,
)
from ansible_collections.workload_identity.aks.plugins.module_utils._verify_findings import (
    Finding,
    Verdict,
    aadsts_cause,
    accept,
    accepted_problems,
    summary,
)

CLIENT = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/"
SUBJECT = "system:serviceaccount:orders:orders-api"


def account(annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "orders-api", "annotations": annotations}}


def test_service_account_missing_unannotated_other_client_and_other_tenant() -> None:
    missing = service_account_problem("aks-dev", None, "orders", "orders-api", CLIENT, TENANT)
    assert missing == (
        "ServiceAccount orders/orders-api does not exist",
        "run workload_identity.aks.site for aks-dev (it creates and annotates it)",
    )
    bare = service_account_problem("aks-dev", account({}), "orders", "orders-api", CLIENT, TENANT)
    assert bare and "has no azure.workload.identity/client-id annotation" in bare[0]
    other = service_account_problem(
        "aks-dev", account({"azure.workload.identity/client-id": "x"}), "orders", "orders-api", CLIENT, TENANT
    )
    assert other and other[0].endswith(f"names client id x; the identity's client id is {CLIENT}")
    tenant = {"azure.workload.identity/client-id": CLIENT, "azure.workload.identity/tenant-id": "other"}
    wrong_tenant = service_account_problem("aks-dev", account(tenant), "orders", "orders-api", CLIENT, TENANT)
    assert wrong_tenant and "names tenant other" in wrong_tenant[0]
    right = {"azure.workload.identity/client-id": CLIENT, "azure.workload.identity/tenant-id": TENANT.upper()}
    assert service_account_problem("aks-dev", account(right), "orders", "orders-api", CLIENT, TENANT) is None


def template(labels: dict[str, str], account_name: str | None = "orders-api") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app:1"}]}
    if account_name:
        spec["serviceAccountName"] = account_name
    return {"metadata": {"labels": labels}, "spec": spec}


def test_pod_template_missing_unlabelled_or_on_another_account() -> None:
    assert "does not exist" in str(template_problem("c", "Deployment", "orders", "api", None, "orders-api"))
    unlabelled = template_problem("c", "Deployment", "orders", "api", template({}), "orders-api")
    assert unlabelled and "lacks the label azure.workload.identity/use" in unlabelled[0]
    default = template_problem(
        "c", "Deployment", "orders", "api", template({"azure.workload.identity/use": "true"}, None), "orders-api"
    )
    assert default and "its pods run as ServiceAccount default, not orders-api" in default[0]
    good = template({"azure.workload.identity/use": "true"})
    assert template_problem("c", "Deployment", "orders", "api", good, "orders-api") is None
    pod = dry_run_pod("orders", "api", good)
    assert pod["metadata"]["generateName"] == "api-verify-" and pod["spec"] == good["spec"]


def mutated(client_id: str = CLIENT, audience: str = "api://AzureADTokenExchange") -> dict[str, Any]:
    """A pod as webhook 1.6 returns it (its volume named azure-workload-identity-reserved-<hash>)."""
    env = [
        {"name": "AZURE_CLIENT_ID", "value": client_id},
        {"name": "AZURE_TENANT_ID", "value": TENANT},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/wi/token/azure-identity-token"},
    ]
    token = {"audience": audience, "expirationSeconds": 3600, "path": "token/azure-identity-token"}
    return {
        "spec": {
            "containers": [{"name": "app", "env": env}],
            "volumes": [
                {"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {
                    "name": "azure-workload-identity-reserved-abc",
                    "projected": {"sources": [{"serviceAccountToken": token}]},
                },
            ],
        }
    }


def test_the_dry_run_pod_is_judged_as_the_webhook_mutates_it() -> None:
    assert mutation_problem("c", "Deployment orders/api", mutated(), CLIENT, TENANT) is None
    untouched = mutation_problem(
        "c", "Deployment orders/api", {"spec": {"containers": [{"name": "app"}]}}, CLIENT, TENANT
    )
    assert untouched and untouched[0].startswith("no webhook answered")
    other = mutation_problem("c", "Deployment orders/api", mutated(client_id="other"), CLIENT, TENANT)
    assert other and "injects client id other" in other[0]
    audience = mutation_problem("c", "Deployment orders/api", mutated(audience="api://x"), CLIENT, TENANT)
    assert audience and "has audience api://x, not api://AzureADTokenExchange" in audience[0]
    tenant = mutation_problem("c", "Deployment orders/api", mutated(), CLIENT, "another-tenant")
    assert tenant and "injects tenant" in tenant[0]


def fic(
    name: str,
    issuer: str = ISSUER,
    subject: str = SUBJECT,
    audiences: tuple[str, ...] = ("api://AzureADTokenExchange",),
) -> Any:
    return {
        "id": name,
        "name": name,
        "identity": "id",
        "issuer": issuer,
        "subject": subject,
        "audiences": list(audiences),
    }


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ([fic("ok")], None),
        ([fic("slash", issuer=ISSUER.rstrip("/"))], "differ in the trailing slash"),
        ([fic("case", issuer=ISSUER.upper())], "(they differ in case)"),
        (
            [fic("typo", subject="system:serviceaccount:orders:order-api")],
            "trusts subject 'system:serviceaccount:orders:order-api'",
        ),
        ([fic("upper", subject=SUBJECT.upper())], "(they differ only in case)"),
        ([fic("aud", audiences=("api://other",))], "lists audiences api://other"),
        ([], f"no federated credential on id-orders trusts {SUBJECT}"),
        ([fic("elsewhere", issuer="https://other/", subject="system:serviceaccount:x:y")], "no federated credential"),
    ],
)
def test_credentials_say_what_does_not_match(credentials: list[Any], expected: str | None) -> None:
    matched, problem = credential_problem("aks-dev", "id-orders", credentials, ISSUER, SUBJECT)
    if expected is None:
        assert problem is None and matched is not None and matched["name"] == "ok"
    else:
        assert problem is not None and expected in problem[0]
        assert problem[1] == "run workload_identity.aks.site for aks-dev (it writes the credential)"


def test_aadsts_codes_in_plain_words_and_unknown_ones_kept() -> None:
    assert aadsts_cause(
        "AADSTS700211: No matching federated identity record found for presented assertion issuer"
    ).startswith("AADSTS700211: no federated credential trusts the token's issuer")
    assert aadsts_cause("invalid_client AADSTS7002138: No matching ...").startswith(
        "AADSTS7002138: a federated credential's subject differs"
    )
    assert aadsts_cause("invalid_request AADSTS12345: something new\nTrace ID: x") == "AADSTS12345: something new"
    assert aadsts_cause("connection reset").startswith("Entra refused the exchange: connection reset")


BLOB = Role(
    "/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Contributor",
    (
        (
            (
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            ),
            (),
            ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",),
        ),
    ),
)


def test_permission_gaps_follow_wildcards_not_actions_and_data_actions() -> None:
    granted_exactly = [
        {
            "actions": [
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            ],
            "notActions": [],
            "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
            "notDataActions": [],
        }
    ]
    assert permission_gaps(BLOB, granted_exactly) == []
    owner = [{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}]
    assert permission_gaps(BLOB, owner) == ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"]
    denied = [
        {"actions": ["*"], "notActions": ["Microsoft.Storage/*/delete"], "dataActions": ["*"], "notDataActions": []}
    ]
    assert permission_gaps(BLOB, denied) == ["Microsoft.Storage/storageAccounts/blobServices/containers/delete"]
    assert len(permission_gaps(BLOB, [])) == 3


def test_accepted_findings_by_workload_link_and_text_and_their_mistakes() -> None:
    verdict = Verdict("orders-api", "orders", "orders-api")
    verdict.find("assignments", "holds Owner at /subscriptions/s", "remove it")
    verdict.find("assignments", "holds Reader at /subscriptions/s", "remove it")
    accept([verdict], [{"workload": "orders-api", "link": "assignments", "matching": "Owner", "reason": "CHG-1"}])
    assert [f.accepted for f in verdict.findings] == ["CHG-1", None]
    assert not verdict.verified
    assert summary([verdict]) == {"workloads": 1, "verified": 0, "findings": 1, "accepted": 1}
    accept([verdict], [{"workload": "orders-api", "link": "assignments", "reason": "all of them"}])
    assert verdict.verified and summary([verdict])["verified"] == 1
    problems = accepted_problems("aks-dev", [{"workload": "x", "link": "y", "why": 1}, "z"], {"orders-api"})
    assert problems == [
        "cluster aks-dev: workload_identity_verify_accepted #1: why: unknown (workload, link, reason, matching)",
        "cluster aks-dev: workload_identity_verify_accepted #1: workload: 'x' is not a workload of this cluster",
        "cluster aks-dev: workload_identity_verify_accepted #1: link: must be one of identity, service_account, "
        "pod_template, webhook, sign_in, permissions, assignments (got 'y')",
        "cluster aks-dev: workload_identity_verify_accepted #1: reason: say why it is accepted (it is shown in the "
        "access review)",
        "cluster aks-dev: workload_identity_verify_accepted #2: must be a mapping with workload, link and reason",
    ]
    assert accepted_problems("aks-dev", "nope", set()) == [
        "cluster aks-dev: workload_identity_verify_accepted: must be a list (got str)"
    ]
    assert Finding("webhook", "m", "r").as_dict() == {
        "link": "webhook",
        "message": "m",
        "remedy": "r",
        "accepted": None,
    }
