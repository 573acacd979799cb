"""_abac and condition_role_problem: what ARM would refuse in a role assignment condition, found before any write."""

from __future__ import annotations

import pytest
from ansible_collections.workload_identity.aks.plugins.module_utils._abac import condition_actions, condition_problem
from ansible_collections.workload_identity.aks.plugins.module_utils._azure_role_assignment import (
    Role,
    condition_role_problem,
)

CONTAINER = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name]"
BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
# Conditions as the documentation and the portal's editor write them.
ACCEPTED = [
    f"{CONTAINER} StringEquals 'orders'",
    f"((!(ActionMatches{{'{BLOB_READ}'}})) OR ({CONTAINER} StringEquals 'blobs-example-container'))",
    f"((!(ActionMatches{{'{BLOB_READ}'}} AND @Request[subOperation] ForAnyOfAnyValues:StringEqualsIgnoreCase "
    f"{{'Blob.List'}})) OR (@Resource[{BLOB_READ[:-5]}/tags:Project<$key_case_sensitive$>] StringEquals 'Cascade'))",
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
    "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
    "{5e467623-bb1f-42f4-a55d-6e525e11384b, a795c7a0-d4a2-40c1-ae25-d81f01202912}))",
    "Exists @Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:versionId] && "
    "@Environment[UtcNow] DateTimeGreaterThan '2023-05-01T13:00:00.000Z'",
    f"NOT ({CONTAINER} StringLike 'tmp-\\*') and @Request[Microsoft.Storage/x:size] NumericLessThan 10",
    f"{CONTAINER} StringEquals 'a' AND ({CONTAINER} StringEquals 'b' OR {CONTAINER} StringEquals 'c')",
]


@pytest.mark.parametrize("condition", ACCEPTED)
def test_what_the_documentation_writes_parses(condition: str) -> None:
    assert condition_problem(condition) is None


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("true", "ends after 'true' where an operator was expected"),
        (f"{CONTAINER} StringEquals", "ends where an attribute or a value was expected"),
        (f"{CONTAINER} Equals 'x'", "'Equals' at character 75 is not an operator"),
        (f"{CONTAINER} ForAnyOfAnyValues:BoolEquals {{true}}", "is not an operator"),
        ("@Resource[a StringEquals 'x'", "the attribute at character 1 is not closed with ]"),
        ("@Resource[] StringEquals 'x'", "names nothing between [ and ]"),
        ("@Tenant[a] StringEquals 'x'", "@Tenant at character 1 is not an attribute source"),
        (f"{CONTAINER} StringEquals 'x", "the string starting at character 88 is not closed"),
        (f"({CONTAINER} StringEquals 'x'", "the ( at character 1 wants ')', found the end"),
        (f"{CONTAINER} StringEquals 'x')", "unexpected ')' at character 91"),
        (f"{CONTAINER} StringEquals 'x' ; drop", "unexpected ';'"),
        ("ActionMatches{read}", "ActionMatches at character 1 takes a quoted action"),
        ("Exists 'x'", "Exists at character 1 takes an attribute"),
        (
            f"{CONTAINER} StringEquals 'a' AND {CONTAINER} StringEquals 'b' OR {CONTAINER} StringEquals 'c'",
            "AND and OR mixed at character",
        ),
        (f"{CONTAINER} ForAnyOfAnyValues:StringEquals {{'a' 'b'}}", "the set wants ',' or '}'"),
    ],
)
def test_what_arm_would_refuse_is_named_with_where(condition: str, says: str) -> None:
    problem = condition_problem(condition)
    assert problem is not None and says in problem, problem


def test_the_actions_a_condition_names() -> None:
    assert condition_actions(ACCEPTED[1]) == [BLOB_READ]
    assert condition_actions(ACCEPTED[0]) == []


READER = Role("/r/acdd72a7", "acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", ((("*/read",), (), ()),))
BLOB_READER = Role(
    "/r/2a2b9908",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Blob Data Reader",
    (
        (
            ("Microsoft.Storage/storageAccounts/blobServices/containers/read",),
            (),
            ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",),
        ),
    ),
)
QUEUE_SENDER = Role(
    "/r/c6a89b2d",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Queue Data Message Sender",
    (((), (), ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/add/action",)),),
)
DELEGATOR = Role(
    "/r/f58310d9",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "Role Based Access Control Administrator",
    ((("Microsoft.Authorization/roleAssignments/*", "*/read"), (), ()),),
)


def test_a_condition_on_a_role_that_takes_none_is_refused() -> None:
    problem = condition_role_problem(READER, ACCEPTED[0])
    assert problem is not None and problem.startswith("Reader takes no condition")
    assert condition_role_problem(BLOB_READER, ACCEPTED[0]) is None
    assert condition_role_problem(QUEUE_SENDER, "@Resource[Microsoft.Storage/x:name] StringEquals 'q'") is None
    assert condition_role_problem(DELEGATOR, ACCEPTED[3]) is None


def test_a_condition_naming_an_action_the_role_does_not_grant_is_refused() -> None:
    write = BLOB_READ.replace("/read", "/write")
    condition = f"((!(ActionMatches{{'{write}'}})) OR ({CONTAINER} StringEquals 'x'))"
    problem = condition_role_problem(BLOB_READER, condition)
    assert (
        problem
        == f"names the action {write}, which Storage Blob Data Reader does not grant (Azure refuses such a condition)"
    )
    assert condition_role_problem(BLOB_READER, ACCEPTED[1]) is None
    # A wildcard is not judged (what it covers is the service's business); a role read without permissions neither.
    assert condition_role_problem(BLOB_READER, condition.replace(write, "Microsoft.Storage/*")) is None
    assert condition_role_problem(Role("/r/x", "x", "Unread"), condition) is None
