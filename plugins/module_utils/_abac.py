# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): role assignment conditions (Azure ABAC), checked before
any write.

ARM answers 400 ``InvalidRoleAssignmentCondition`` ("The given role assignment condition is invalid.") for a
condition that does not parse, for one on a role whose actions take no condition, and for one naming an action the
role does not grant; by then a run has written the workload's identity and credential. So the grammar of the
condition format (learn.microsoft.com, "Azure role assignment condition format and syntax") is checked with the
inventory, and the role's side once the role is resolved. The grammar is read leniently where the documentation is
silent (keyword case, decimals), so that nothing Azure takes is refused here.
"""

from __future__ import annotations

import re

ATTRIBUTE_SOURCES = ("Resource", "Request", "Principal", "Environment")
_COMPARISONS = {
    f"{family}{op}{case}"
    for family, ops, cases in (
        ("String", ("Equals", "NotEquals", "StartsWith", "NotStartsWith", "Like", "NotLike"), ("", "IgnoreCase")),
        ("Numeric", ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals"), ("",)),
        ("DateTime", ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals"), ("",)),
        ("Bool", ("Equals", "NotEquals"), ("",)),
        ("Guid", ("Equals", "NotEquals"), ("",)),
        ("Ip", ("Match", "NotMatch", "InRange", "NotInRange"), ("",)),
    )
    for op in ops
    for case in cases
}
# The cross-product forms take the string, numeric and GUID comparisons.
_CROSS = {"ForAnyOfAnyValues", "ForAllOfAnyValues", "ForAnyOfAllValues", "ForAllOfAllValues"}
OPERATORS = {op.lower() for op in _COMPARISONS} | {
    f"{cross}:{op}".lower() for cross in _CROSS for op in _COMPARISONS if op.startswith(("String", "Numeric", "Guid"))
}
_ACTION_FUNCTIONS = {"actionmatches", "suboperationmatches"}
_EXISTENCE = {"exists", "notexists"}

# Actions whose role assignments take a condition: storage blob and queue data actions, and (delegation) the
# writing and deleting of role assignments.
CONDITION_DATA_ACTIONS = (
    "Microsoft.Storage/storageAccounts/blobServices/",
    "Microsoft.Storage/storageAccounts/queueServices/",
)
CONDITION_ACTIONS = ("Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<attribute>@(?P<source>[A-Za-z]+)\[(?P<name>[^\]]*)\]?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<open>')
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-]))
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?![\w.]))
  | (?P<and>&&)
  | (?P<or>\|\|)
  | (?P<word>[A-Za-z][A-Za-z0-9]*(?::[A-Za-z][A-Za-z0-9]*)?)
  | (?P<punct>[(){},!])
    """,
    re.VERBOSE,
)


class ConditionError(ValueError):
    """Why a condition does not parse, with where."""


def condition_problem(text: str) -> str | None:
    """Why ARM would refuse this condition's syntax, or None."""
    if not text.strip():
        return "is empty (leave it out for an assignment without a condition)"
    try:
        _Parser(text).parse()
    except ConditionError as exc:
        return f"does not parse as an Azure role assignment condition: {exc}"
    return None


def condition_actions(text: str) -> list[str]:
    """The actions a (parsable) condition names in ActionMatches."""
    return _Parser(text).parse()


class _Parser:
    """Recursive descent over the documented grammar; collects the actions that ActionMatches names.

    condition := group; group := unary ((AND | OR) unary)* with one connective per level (Azure asks for parentheses
    where AND and OR mix); unary := (NOT | '!') unary | '(' group ')' | function | comparison.
    """

    def __init__(self, text: str) -> None:
        self.tokens = self._tokenize(text)
        self.at = 0
        self.actions: list[str] = []

    def parse(self) -> list[str]:
        self._group()
        if self.at < len(self.tokens):
            _kind, value, where = self.tokens[self.at]
            raise ConditionError(f"unexpected {value!r} at character {where + 1}")
        return self.actions

    def _tokenize(self, text: str) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise ConditionError(f"unexpected {text[position]!r} at character {position + 1}")
            kind = match.lastgroup or ""
            value = match.group(0)
            if kind == "attribute":
                kind = self._attribute(match, position)
            elif kind == "open":
                raise ConditionError(f"the string starting at character {position + 1} is not closed with '")
            if kind != "space":
                tokens.append((kind, value, position))
            position = match.end()
        return tokens

    @staticmethod
    def _attribute(match: re.Match[str], position: int) -> str:
        source, name = match.group("source"), match.group("name")
        if source.lower() not in {s.lower() for s in ATTRIBUTE_SOURCES}:
            raise ConditionError(
                f"@{source} at character {position + 1} is not an attribute source "
                f"({', '.join('@' + s for s in ATTRIBUTE_SOURCES)})"
            )
        if not match.group(0).endswith("]"):
            raise ConditionError(f"the attribute at character {position + 1} is not closed with ]")
        if not name.strip():
            raise ConditionError(f"the attribute at character {position + 1} names nothing between [ and ]")
        return "attribute"

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _next(self, expected: str) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise ConditionError(f"ends where {expected} was expected")
        self.at += 1
        return token

    def _connective(self) -> str | None:
        token = self._peek()
        if token is None:
            return None
        kind, value, _where = token
        if kind in ("and", "or"):
            return kind
        if kind == "word" and value.lower() in ("and", "or"):
            return value.lower()
        return None

    def _group(self) -> None:
        self._unary()
        used = None
        while (connective := self._connective()) is not None:
            where = self._peek()[2]  # type: ignore[index]
            if used is not None and connective != used:
                raise ConditionError(
                    f"AND and OR mixed at character {where + 1} without parentheses (write (a AND b) OR c)"
                )
            used = connective
            self.at += 1
            self._unary()

    def _unary(self) -> None:
        kind, value, where = self._next("an expression")
        lowered = value.lower()
        if value == "!" or (kind == "word" and lowered == "not"):
            self._unary()
        elif value == "(":
            self._group()
            self._expect(")", where, "the ( at character")
        elif kind == "word" and lowered in _ACTION_FUNCTIONS:
            self._expect("{", where, f"{value} at character")
            string = self._next("a quoted action")
            if string[0] != "string":
                raise ConditionError(f"{value} at character {where + 1} takes a quoted action: {{'...'}}")
            if lowered == "actionmatches":
                self.actions.append(string[1][1:-1])
            self._expect("}", where, f"{value} at character")
        elif kind == "word" and lowered in _EXISTENCE:
            if self._next("an attribute")[0] != "attribute":
                raise ConditionError(f"{value} at character {where + 1} takes an attribute (@Resource[...])")
        else:
            self.at -= 1
            self._comparison()

    def _expect(self, punct: str, where: int, what: str) -> None:
        token = self._peek()
        if token is None or token[1] != punct:
            found = f"{token[1]!r}" if token else "the end"
            raise ConditionError(f"{what} {where + 1} wants {punct!r}, found {found}")
        self.at += 1

    def _comparison(self) -> None:
        left = self._operand()
        token = self._peek()
        if token is None:
            raise ConditionError(f"ends after {left!r} where an operator was expected")
        kind, value, where = token
        if kind != "word" or value.lower() not in OPERATORS:
            raise ConditionError(
                f"{value!r} at character {where + 1} is not an operator (StringEquals, NumericLessThan, "
                "ForAnyOfAnyValues:StringEquals, ...)"
            )
        self.at += 1
        self._operand()

    def _operand(self) -> str:
        kind, value, where = self._next("an attribute or a value")
        if kind in ("attribute", "string", "guid", "number") or (kind == "word" and value.lower() in ("true", "false")):
            return value
        if value == "{":
            self._value_set(where)
            return "{...}"
        raise ConditionError(f"{value!r} at character {where + 1} is not an attribute or a value")

    def _value_set(self, where: int) -> None:
        while True:
            kind, value, at = self._next("a value")
            if kind not in ("string", "guid", "number") and value.lower() not in ("true", "false"):
                raise ConditionError(f"{value!r} at character {at + 1} is not a value in the set at {where + 1}")
            closing = self._next("',' or '}'")
            if closing[1] == "}":
                return
            if closing[1] != ",":
                raise ConditionError(f"{closing[1]!r} at character {closing[2] + 1}: the set wants ',' or '}}'")
