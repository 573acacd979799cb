# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): Cosmos DB SQL role assignments, the engine that writes them.

Cosmos DB (NoSQL API) does not take ARM role assignments for its data: a principal reads a container through a
``sqlRoleAssignment`` of one of the account's ``sqlRoleDefinitions`` (the built-in Data Reader and Data Contributor,
or custom ones), scoped to the account, a database (``<account id>/dbs/<db>``) or a container
(``.../dbs/<db>/colls/<container>``). Both are child resources of the account in ARM; writes are long-running.

An assignment has no description to carry the collection's mark: the one this collection creates is named
deterministically from its principal, role definition and scope (``_ids.assignment_name``), so a run tells its own
from one an operator made (a random GUID) without any record, and two runs or clusters never make two.
:func:`ensure_sql_role_assignment` is the only code that writes one.
"""

from __future__ import annotations

import threading
from typing import Any, TypedDict

from ._azure_arm_rest import ArmRestClient
from ._ids import assignment_name, normalise, role_guid, same_scope
from ._limits import COSMOS_ACCOUNT_TYPE, COSMOS_BUILT_IN_ACTIONS, COSMOS_BUILT_IN_ROLES
from ._results import CosmosRoleAssignmentState, Outcome
from ._retry import RetryPolicy

API_VERSION = "2024-11-15"


class CosmosRoleDefinition(TypedDict):
    id: str
    guid: str
    name: str  # its roleName
    built_in: bool
    data_actions: list[str]
    assignable_scopes: list[str]


class AccountState(TypedDict):
    id: str
    name: str
    # Its SQL role definitions: the two built-ins every account has, until its own are read (``definitions_read``:
    # a run reads them only where a custom role is named, or a role at an account that could be one).
    definitions: list[CosmosRoleDefinition]
    definitions_read: bool
    # Its SQL role assignments (None: not read; a run reads them only for the accounts it grants on).
    assignments: list[CosmosRoleAssignmentState] | None


def within(scope: str, above: str) -> bool:
    """Whether ``scope`` is ``above`` or under it."""
    return same_scope(scope, above) or normalise(scope).lower().startswith(normalise(above).lower() + "/")


def built_in_state(account_id: str) -> AccountState:
    """An account as known before any read: its name, and the two built-in SQL roles every account has."""
    definitions: list[CosmosRoleDefinition] = [
        {
            "id": f"{account_id}/sqlRoleDefinitions/{guid}",
            "guid": guid,
            "name": name,
            "built_in": True,
            "data_actions": list(COSMOS_BUILT_IN_ACTIONS[guid]),
            "assignable_scopes": [account_id],
        }
        for guid, name in COSMOS_BUILT_IN_ROLES.items()
    ]
    name = account_id.rstrip("/").rsplit("/", 1)[-1]
    return {"id": account_id, "name": name, "definitions": definitions, "definitions_read": False, "assignments": None}


def definition_of(account: AccountState, role: str) -> CosmosRoleDefinition | None:
    """The account's SQL role definition a declared role names: its id, its GUID, or its roleName (any case)."""
    wanted = role.strip().lower()
    for definition in account["definitions"]:
        if wanted in (definition["id"].lower(), definition["guid"].lower(), definition["name"].lower()):
            return definition
    return None


def _definition(body: dict[str, Any]) -> CosmosRoleDefinition:
    props = body.get("properties") or {}
    return {
        "id": str(body.get("id")),
        "guid": str(body.get("name")),
        "name": str(props.get("roleName") or body.get("name")),
        "built_in": str(props.get("type") or "").lower() == "builtinrole",
        "data_actions": [str(a) for p in props.get("permissions") or [] for a in p.get("dataActions") or []],
        "assignable_scopes": [str(s) for s in props.get("assignableScopes") or []],
    }


def _assignment(body: dict[str, Any], account_id: str) -> CosmosRoleAssignmentState:
    props = body.get("properties") or {}
    return {
        "name": str(body.get("name")),
        "account": account_id,
        "role_definition_id": str(props.get("roleDefinitionId") or ""),
        "scope": str(props.get("scope") or ""),
        "principal_id": str(props.get("principalId") or ""),
    }


class CosmosApi:
    """Accounts' SQL role definitions and assignments, through an ARM SDK client's pipeline."""

    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.rest = ArmRestClient(client, API_VERSION, policy)

    def account(self, account_id: str) -> AccountState | None:
        """The account with its own SQL role definitions and its assignments; None when it does not exist."""
        state = built_in_state(account_id)
        return state if self.read_definitions(state) and self.read_assignments(state) else None

    def read_definitions(self, account: AccountState) -> bool:
        """The account's own SQL role definitions into ``account``; False when it does not exist."""
        found = self.rest.get_or_none(
            f"{account['id']}/sqlRoleDefinitions", f"read the SQL roles of Cosmos DB account {account['name']}"
        )
        if found is not None:
            account["definitions"] = [_definition(d) for d in found.get("value") or []]
            account["definitions_read"] = True
        return found is not None

    def read_assignments(self, account: AccountState) -> bool:
        """The account's SQL role assignments into ``account`` (one page: Cosmos DB's list has no nextLink); False
        when it does not exist."""
        found = self.rest.get_or_none(
            f"{account['id']}/sqlRoleAssignments",
            f"read the SQL role assignments of Cosmos DB account {account['name']}",
        )
        if found is not None:
            account["assignments"] = [_assignment(a, account["id"]) for a in found.get("value") or []]
        return found is not None

    def list_accounts(self, subscription: str) -> list[str]:
        """Every Cosmos DB account of the subscription, by id."""
        path = f"/subscriptions/{subscription}/providers/{COSMOS_ACCOUNT_TYPE}"
        return [str(a.get("id")) for a in self.rest.pages(path, "list Cosmos DB accounts")]

    def put(self, account: AccountState, state: CosmosRoleAssignmentState) -> None:
        body = {
            "properties": {
                "roleDefinitionId": state["role_definition_id"],
                "scope": state["scope"],
                "principalId": state["principal_id"],
            }
        }
        self.rest.send(
            "PUT",
            f"{account['id']}/sqlRoleAssignments/{state['name']}",
            f"assign SQL role {state['role_definition_id']} to {state['principal_id']} at {state['scope']}",
            body,
        )

    def delete(self, account: AccountState, state: CosmosRoleAssignmentState) -> None:
        self.rest.send(
            "DELETE",
            f"{account['id']}/sqlRoleAssignments/{state['name']}",
            f"delete SQL role assignment {state['name']} of Cosmos DB account {account['name']}",
        )


def held(account: AccountState, principal: str, definition_id: str, scope: str) -> CosmosRoleAssignmentState | None:
    """The principal's assignment of the definition at exactly the scope, by whatever name."""
    for assignment in account["assignments"] or []:
        if (
            assignment["principal_id"].lower() == principal.lower()
            and role_guid(assignment["role_definition_id"]) == role_guid(definition_id)
            and same_scope(assignment["scope"], scope)
        ):
            return assignment
    return None


def ours(assignment: CosmosRoleAssignmentState) -> bool:
    """Made by this collection: named as it names the ones it creates (an operator's has a random GUID)."""
    expected = assignment_name(
        assignment["scope"], role_guid(assignment["role_definition_id"]), assignment["principal_id"]
    )
    return assignment["name"].lower() == expected


def ensure_sql_role_assignment(
    api: CosmosApi,
    account: AccountState,
    principal: str,
    definition_id: str,
    scope: str,
    *,
    state: str,
    check_mode: bool,
) -> Outcome[CosmosRoleAssignmentState]:
    """The principal's assignment of the definition at the scope: present (one found by any name is used as it is),
    or absent. ``account`` is as read (its assignments once per account); what is written is applied to it too."""
    before = held(account, principal, definition_id, scope)
    if state == "absent":
        if before is None:
            return Outcome(False, "absent", None, None)
        if not check_mode:
            api.delete(account, before)
            _apply(account, before, present=False)
        return Outcome(True, "deleted", before, None)
    if before is not None:
        return Outcome(False, "unchanged", before, before)
    after: CosmosRoleAssignmentState = {
        "name": assignment_name(scope.rstrip("/"), role_guid(definition_id), principal),
        "account": account["id"],
        "role_definition_id": definition_id,
        "scope": scope.rstrip("/"),
        "principal_id": principal,
    }
    if not check_mode:
        api.put(account, after)
        _apply(account, after, present=True)
    return Outcome(True, "created", None, after)


def _apply(account: AccountState, assignment: CosmosRoleAssignmentState, present: bool) -> None:
    """What was written, applied to the account as read (workloads converge in parallel, several on one account)."""
    with _APPLYING:
        kept = [a for a in account["assignments"] or [] if a["name"].lower() != assignment["name"].lower()]
        account["assignments"] = [*kept, assignment] if present else kept


_APPLYING = threading.Lock()
