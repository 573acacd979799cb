"""Role assignment conditions (Azure ABAC) as ARM judges them on a PUT.

ARM answers 400 ``InvalidRoleAssignmentCondition`` ("The given role assignment condition is invalid.") when the
condition does not follow the documented format (learn.microsoft.com: "Azure role assignment condition format and
syntax"), when the role's actions take no condition (conditions exist for storage blob and queue data actions, and
for writing or deleting role assignments: delegation), and when ActionMatches names an action the role does not
grant. ARM's message does not say which; the sandbox adds the reason after it, in the same sentence style.

Written apart from the collection's own check on purpose: the suites find what Azure would refuse only if the
sandbox judges it by itself.
"""

from __future__ import annotations

import re
from typing import Any

from ..core import ApiError
from ..rbac import permits

INVALID = "The given role assignment condition is invalid."

_LEXEME = re.compile(
    r"\s*(?:"
    r"(?P<attr>@(?:Resource|Request|Principal|Environment)\[[^\]]+\])"
    r"|(?P<str>'(?:\\.|[^'\\])*')"
    r"|(?P<guid>[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b)"
    r"|(?P<num>-?\d+(?:\.\d+)?\b)"
    r"|(?P<op>&&|\|\||[(){},!])"
    r"|(?P<word>[A-Za-z]+(?::[A-Za-z]+)?)"
    r")",
)
_BASE = (
    [
        f"String{o}{c}"
        for o in ("Equals", "NotEquals", "StartsWith", "NotStartsWith", "Like", "NotLike")
        for c in ("", "IgnoreCase")
    ]
    + [
        f"{t}{o}"
        for t in ("Numeric", "DateTime")
        for o in ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")
    ]
    + [
        "BoolEquals",
        "BoolNotEquals",
        "GuidEquals",
        "GuidNotEquals",
        "IpMatch",
        "IpNotMatch",
        "IpInRange",
        "IpNotInRange",
    ]
)
_OPERATORS = {b.lower() for b in _BASE} | {
    f"for{q}values:{b}".lower()
    for q in ("anyofany", "allofany", "anyofall", "allofall")
    for b in _BASE
    if b.startswith(("String", "Numeric", "Guid"))
}
_STORAGE_DATA = ("microsoft.storage/storageaccounts/blobservices/", "microsoft.storage/storageaccounts/queueservices/")
_DELEGATION = ("Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete")


def refuse(reason: str) -> ApiError:
    return ApiError(400, "InvalidRoleAssignmentCondition", f"{INVALID} {reason}")


def check(condition: str, role: dict[str, Any]) -> None:
    """Raise ARM's 400 for a condition it would refuse on this role definition (its properties)."""
    lexemes = _lex(condition)
    actions = _Reader(lexemes).condition()
    permissions = role.get("permissions") or []
    storage = any(a.lower().startswith(_STORAGE_DATA) for block in permissions for a in block.get("dataActions") or [])
    if not storage and not any(permits(permissions, a) for a in _DELEGATION):
        raise refuse(f"The role '{role.get('roleName')}' does not support conditions.")
    for action in actions:
        if "*" in action:
            continue
        if not (permits(permissions, action) or permits(permissions, action, data_action=True)):
            raise refuse(f"The action '{action}' is not granted by the role '{role.get('roleName')}'.")


def _lex(text: str) -> list[tuple[str, str]]:
    found, at = [], 0
    while at < len(text):
        if not text[at:].strip():
            break
        match = _LEXEME.match(text, at)
        if match is None or match.end() == at:
            raise refuse(f"Unexpected text at position {at}.")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        at = match.end()
    if not found:
        raise refuse("The condition is empty.")
    return found


class _Reader:
    """Reads lexemes front to back: expression := term ((AND|OR) term)* (one connective per parenthesis level)."""

    def __init__(self, lexemes: list[tuple[str, str]]) -> None:
        self.rest = list(reversed(lexemes))
        self.named: list[str] = []

    def condition(self) -> list[str]:
        self.expression()
        if self.rest:
            raise refuse(f"Unexpected '{self.rest[-1][1]}'.")
        return self.named

    def take(self) -> tuple[str, str]:
        if not self.rest:
            raise refuse("The condition ends too early.")
        return self.rest.pop()

    def peek_value(self) -> str:
        return self.rest[-1][1].lower() if self.rest else ""

    def expression(self) -> None:
        self.term()
        joined = None
        while self.peek_value() in ("and", "&&", "or", "||"):
            connective = "and" if self.take()[1].lower() in ("and", "&&") else "or"
            if joined not in (None, connective):
                raise refuse("AND and OR are mixed without parentheses.")
            joined = connective
            self.term()

    def term(self) -> None:
        kind, value = self.take()
        word = value.lower()
        if value == "!" or word == "not":
            self.term()
        elif value == "(":
            self.expression()
            if self.take()[1] != ")":
                raise refuse("A parenthesis is not closed.")
        elif word in ("actionmatches", "suboperationmatches"):
            opened, (quoted, action), closed = self.take(), self.take(), self.take()
            if (opened[1], quoted, closed[1]) != ("{", "str", "}"):
                raise refuse(f"{value} takes {{'<action>'}}.")
            if word == "actionmatches":
                self.named.append(action[1:-1])
        elif word in ("exists", "notexists"):
            if self.take()[0] != "attr":
                raise refuse(f"{value} takes an attribute.")
        else:
            self.rest.append((kind, value))
            self.operand()
            if self.take()[1].lower() not in _OPERATORS:
                raise refuse("Unknown operator.")
            self.operand()

    def operand(self) -> None:
        kind, value = self.take()
        if kind in ("attr", "str", "guid", "num") or value.lower() in ("true", "false"):
            return
        if value != "{":
            raise refuse(f"'{value}' is not an attribute or a value.")
        while True:
            if self.take()[0] not in ("str", "guid", "num", "word"):
                raise refuse("A value set holds values only.")
            separator = self.take()[1]
            if separator == "}":
                return
            if separator != ",":
                raise refuse("Values in a set are separated by commas.")
