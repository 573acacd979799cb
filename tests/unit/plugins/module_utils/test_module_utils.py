"""Pure logic of the collection's module_utils: scopes and names, retry decisions, error translation,
validation, tag and FIC comparison."""

from __future__ import annotations

import uuid

import pytest
import requests
from ansible_collections.workload_identity.aks.plugins.module_utils import _federated_credential as fic
from ansible_collections.workload_identity.aks.plugins.module_utils import _ids as ids
from ansible_collections.workload_identity.aks.plugins.module_utils._errors import AzureApiError, translate
from ansible_collections.workload_identity.aks.plugins.module_utils._identity import desired_tags, normalise_location
from ansible_collections.workload_identity.aks.plugins.module_utils._retry import RetryPolicy, call, decide
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransportResponse
from azure.core.rest import HttpRequest

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-App"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"/subscriptions/{SUB}", "subscription"),
        (f"/subscriptions/{SUB}/", "subscription"),
        (RG, "resourceGroup"),
        (f"{RG}/providers/Microsoft.Storage/storageAccounts/sa/blobServices/default/containers/orders", "resource"),
        ("/providers/Microsoft.Management/managementGroups/platform", "managementGroup"),
        (f"//subscriptions//{SUB}/resourceGroups/rg//", "resourceGroup"),
    ],
)
def test_valid_scopes(text: str, kind: str) -> None:
    scope = ids.parse_scope(text)
    assert scope.kind == kind and not scope.path.endswith("/") and "//" not in scope.path


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("subscriptions/x", "must start with"),
        ("/subscriptions/not-a-guid", "not a GUID"),
        (f"/subscriptions/{SUB}/resourcegroup/rg", "resourceGroups"),
        (f"{RG}/providers/Microsoft.Storage/storageAccounts", "resource scope"),
        (f"{RG}/providers/storage/storageAccounts/x", "namespace"),
        ("/providers/Microsoft.Management/managementGroups", "management group"),
    ],
)
def test_invalid_scopes_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ids.InvalidScope, match=says):
        ids.parse_scope(text)


def test_assignment_names_are_deterministic_and_case_insensitive() -> None:
    principal = "26fc24dc-33de-4c60-8ae9-0ac87fdbe06c"
    name = ids.assignment_name(RG, "ACDD72A7-3385-48EF-BD42-F606FBA81AE7", principal)
    assert uuid.UUID(name).version == 5
    assert ids.assignment_name(RG.upper() + "/", "acdd72a7-3385-48ef-bd42-f606fba81ae7", principal.upper()) == name
    assert ids.assignment_name(RG + "2", "acdd72a7-3385-48ef-bd42-f606fba81ae7", principal) != name


def test_role_guid_from_any_scope_and_canonical_ids() -> None:
    assert ids.role_guid(f"{RG}/providers/Microsoft.Authorization/roleDefinitions/ABC/") == "abc"
    raw = f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
    assert ids.canonical(raw) == raw.replace("resourcegroups", "resourceGroups")
    assert ids.same_scope(RG + "/", RG.upper())
    ref = ids.IdentityRef.parse(raw)
    assert (ref.resource_group, ref.name) == ("rg", "x")
    with pytest.raises(ids.InvalidScope):
        ids.IdentityRef.parse(RG)


def error(status: int | None, code: str | None = None, retry_after: float | None = None) -> AzureApiError:
    return AzureApiError("m", status=status, code=code, retry_after=retry_after)


def test_retry_decisions() -> None:
    policy = RetryPolicy(attempts=3, base_delay=1, max_delay=30, principal_wait=20, fic_attempts=4)
    assert decide(error(429, retry_after=7), 1, 0, policy) == 7
    assert decide(error(503), 1, 0, policy) == 1 and decide(error(503), 2, 0, policy) == 2
    assert decide(error(503), 3, 0, policy) is None  # attempts spent
    assert decide(error(None, "ConnectionError"), 1, 0, policy) == 1
    assert decide(error(400, "BadRequest"), 1, 0, policy) is None
    assert decide(error(409, "RoleAssignmentExists"), 1, 0, policy) is None
    assert decide(error(400, "PrincipalNotFound"), 9, 10, policy) == 5
    assert decide(error(400, "PrincipalNotFound"), 9, 18, policy) == 2
    assert decide(error(400, "PrincipalNotFound"), 9, 20, policy) is None
    fic_conflict = error(409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity")
    delay = decide(fic_conflict, 2, 0, policy)
    assert delay is not None and 0.75 <= delay <= 1.5
    assert decide(fic_conflict, 4, 0, policy) is None


def sdk_error(status: int, body: str, headers: dict[str, str] | None = None) -> HttpResponseError:
    """A real azure-core HttpResponseError around a real HTTP response."""
    raw = requests.Response()
    raw.status_code = status
    raw._content = body.encode()
    raw.headers.update({"Content-Type": "application/json", **(headers or {})})
    response = RequestsTransportResponse(HttpRequest("GET", "https://management.azure.com/x"), raw)
    return HttpResponseError(response=response)


def test_translate_keeps_status_code_message_request_id() -> None:
    translated = translate(
        sdk_error(
            409,
            '{"error": {"code": "RoleAssignmentExists", "message": "exists"}}',
            {"x-ms-request-id": "rid-1", "Retry-After": "3"},
        ),
        "create",
    )
    assert (translated.status, translated.code, translated.message) == (409, "RoleAssignmentExists", "exists")
    assert translated.request_id == "rid-1" and translated.retry_after == 3
    assert str(translated) == "create: 409 RoleAssignmentExists: exists (x-ms-request-id rid-1)"
    auth = translate(ClientAuthenticationError(message="AADSTS7000215: Invalid client secret provided."), "token")
    assert (auth.status, auth.code) == (401, "AADSTS7000215")
    assert translate(ServiceRequestError("boom"), "get").code == "ConnectionError"


def test_call_retries_then_raises_the_translated_error() -> None:
    sleeps: list[float] = []
    attempts = iter(
        [sdk_error(429, '{"error": {"code": "TooManyRequests", "message": "slow"}}', {"Retry-After": "2"}), None]
    )

    def flaky() -> str:
        failure = next(attempts)
        if failure is not None:
            raise failure
        return "ok"

    assert call("op", flaky, RetryPolicy(), sleep=sleeps.append) == "ok" and sleeps == [2.0]
    forbidden = sdk_error(403, '{"error": {"code": "AuthorizationFailed", "message": "no"}}')

    def denied() -> str:
        raise forbidden

    with pytest.raises(AzureApiError) as raised:
        call("op", denied, sleep=sleeps.append)
    assert raised.value.code == "AuthorizationFailed" and sleeps == [2.0]

    def buggy() -> str:
        raise KeyError("a bug, not an Azure failure")

    with pytest.raises(KeyError):
        call("op", buggy, sleep=sleeps.append)


@pytest.mark.parametrize(
    ("name", "issuer", "subject", "audiences", "field"),
    [
        ("ends-with=", "https://i/", "s", ["a"], "name"),
        ("ok-name", "http://i/", "s", ["a"], "issuer"),
        ("ok-name", "https://i/", "", ["a"], "subject"),
        ("ok-name", "https://i/", "s" * 601, ["a"], "subject"),
        ("ok-name", "https://i/", "s", ["a", "b"], "audiences"),
    ],
)
def test_fic_validation_names_the_field(name: str, issuer: str, subject: str, audiences: list[str], field: str) -> None:
    problems = fic.validation_problems(name, issuer, subject, audiences, "w")
    assert len(problems) == 1 and problems[0].startswith(f"w: {field}:")


def test_fic_comparison_ignores_audience_order_only() -> None:
    current = {"issuer": "https://i/", "subject": "s", "audiences": ["b", "a"]}
    assert fic.same_fic(current, "https://i/", "s", ["a", "b"])
    assert not fic.same_fic(current, "https://i", "s", ["a", "b"])  # Entra compares issuers exactly
    assert not fic.same_fic(current, "https://I/", "s", ["a", "b"])


def test_tags_and_locations() -> None:
    assert desired_tags({"a": "1"}, None, True) == {"a": "1"}
    assert desired_tags({"a": "1"}, {"b": "2"}, True) == {"b": "2"}
    assert desired_tags({"a": "1"}, {"b": "2"}, False) == {"a": "1", "b": "2"}
    assert normalise_location("West Europe") == "westeurope"


def test_fic_names_are_readable_valid_and_stable() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._workloads import fic_name

    assert fic_name("aks-prod", "system:serviceaccount:orders:orders-api") == "aks-prod-orders-orders-api"
    long = fic_name("aks-" + "x" * 80, "system:serviceaccount:" + "n" * 60 + ":" + "s" * 60)
    assert len(long) <= 120 and fic.NAME_PATTERN.match(long)
    assert long == fic_name("aks-" + "x" * 80, "system:serviceaccount:" + "n" * 60 + ":" + "s" * 60)
    assert fic.NAME_PATTERN.match(fic_name("c", "https://github.com/org/repo:ref:refs/heads/main"))


def test_batch_validation_reports_every_problem_with_workload_and_field() -> None:
    from ansible_collections.workload_identity.aks.plugins.module_utils._workloads import validate

    specs, problems = validate(
        "aks-dev",
        "https://issuer/",
        [
            {"name": "ok", "namespace": "orders", "service_account": "api", "roles": [{"role": "Reader", "scope": RG}]},
            {"name": "bad", "namespace": "Orders", "service_account": "api", "roles": "Reader"},
            "not a mapping",
        ],
        subscription_id=SUB,
        identity_resource_group="rg-ids",
        allow_privileged_roles=False,
    )
    assert [s.name for s in specs] == ["ok"]
    assert specs[0].identity.name == "id-aks-dev-orders-ok"
    assert specs[0].subjects == ["system:serviceaccount:orders:api"]
    assert problems == [
        "cluster aks-dev: workload 'bad': namespace: must be a Kubernetes namespace name (DNS label), got 'Orders'",
        "cluster aks-dev: workload 'bad': roles: must be a list of {role, scope}",
        "cluster aks-dev: workload #3: must be a mapping with name, namespace, service_account and roles",
    ]
    _specs, privileged = validate(
        "aks-dev",
        "https://issuer/",
        [
            {
                "name": "x",
                "namespace": "n",
                "service_account": "s",
                "roles": [{"role": "Owner", "scope": f"/subscriptions/{SUB}"}, {"role": "Owner", "scope": RG}],
            }
        ],
        subscription_id=SUB,
        identity_resource_group="rg",
        allow_privileged_roles=False,
    )
    assert len(privileged) == 1 and "Owner at subscription scope" in privileged[0]
