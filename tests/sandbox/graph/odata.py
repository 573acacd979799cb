"""OData as Microsoft Graph speaks it: alternate keys, $filter (the subset clients use), $select, paging."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from ..core import GraphError, Request

_QUOTED = r"'((?:[^']|'')*)'"
_KEYED = re.compile(r"^(?P<name>[A-Za-z.]+)\((?P<key>[^()]*)\)$")
_KEY_PAIR = re.compile(rf"^\s*(\w+)\s*=\s*{_QUOTED}\s*$")
_EQ = re.compile(rf"^(\w+)\s+eq\s+{_QUOTED}$")
_EQ_LITERAL = re.compile(r"^(\w+)\s+eq\s+(true|false|null)$")
_STARTSWITH = re.compile(rf"^startswith\(\s*(\w+)\s*,\s*{_QUOTED}\s*\)$", re.I)
_ANY = re.compile(rf"^(\w+)/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+{_QUOTED}\s*\)$")
MAX_TOP = 999


def unquote(value: str) -> str:
    return value.replace("''", "'")


def split_key(segment: str) -> tuple[str, dict[str, str] | None]:
    """'applications(appId='x')' -> ('applications', {'appId': 'x'}); 'applications' -> ('applications', None)."""
    match = _KEYED.match(segment)
    if not match:
        return segment, None
    pair = _KEY_PAIR.match(match.group("key"))
    if not pair:
        raise GraphError(400, "BadRequest", f"Bad request. Invalid key syntax in '{segment}'.")
    return match.group("name"), {pair.group(1): unquote(pair.group(2))}


def _clauses(text: str) -> list[str]:
    """Split on ' and ' outside quoted literals."""
    parts, current, quoted = [], "", False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "'":
            quoted = not quoted
        if not quoted and text[index : index + 5].lower() == " and ":
            parts.append(current.strip())
            current, index = "", index + 5
            continue
        current += char
        index += 1
    parts.append(current.strip())
    return [p for p in parts if p]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def compile_filter(text: str | None, resource: str, known: set[str]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for the clauses Graph clients send; anything else is Graph's 400 Request_UnsupportedQuery."""
    if not text:
        return lambda _item: True
    tests: list[Callable[[dict[str, Any]], bool]] = []

    def unsupported(prop: str | None) -> GraphError:
        if prop:
            return GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'.",
            )
        return GraphError(400, "BadRequest", f"Invalid filter clause: Syntax error at position 0 in '{text}'.")

    for clause in _clauses(text):
        if match := _EQ.match(clause):
            tests.append(_equals(_known(match.group(1), known, unsupported), unquote(match.group(2))))
        elif match := _EQ_LITERAL.match(clause):
            literal = {"true": True, "false": False, "null": None}[match.group(2)]
            tests.append(_equals(_known(match.group(1), known, unsupported), literal))
        elif match := _STARTSWITH.match(clause):
            tests.append(_starts(_known(match.group(1), known, unsupported), unquote(match.group(2))))
        elif (match := _ANY.match(clause)) and match.group(2) == match.group(3):
            tests.append(_contains(_known(match.group(1), known, unsupported), unquote(match.group(4))))
        else:
            raise unsupported(None)
    return lambda item: all(test(item) for test in tests)


Test = Callable[[dict[str, Any]], bool]


def _known(prop: str, known: set[str], unsupported: Callable[[str | None], GraphError]) -> str:
    if prop not in known:
        raise unsupported(prop)
    return prop


def _equals(prop: str, value: Any) -> Test:
    def test(item: dict[str, Any]) -> bool:
        return bool(_lower(item.get(prop)) == _lower(value))

    return test


def _starts(prop: str, value: str) -> Test:
    def test(item: dict[str, Any]) -> bool:
        return str(item.get(prop) or "").lower().startswith(value.lower())

    return test


def _contains(prop: str, value: str) -> Test:
    def test(item: dict[str, Any]) -> bool:
        return value.lower() in [str(x).lower() for x in item.get(prop) or []]

    return test


def select(item: dict[str, Any], request: Request, type_name: str) -> dict[str, Any]:
    text = request.q("$select")
    if not text:
        return item
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    for prop in wanted:
        if prop not in item:
            raise GraphError(
                400, "BadRequest", f"Could not find a property named '{prop}' on type 'microsoft.graph.{type_name}'."
            )
    return {p: item[p] for p in wanted}


def page(items: list[dict[str, Any]], request: Request, url: str, page_size: int, context: str) -> dict[str, Any]:
    """One page and an @odata.nextLink carrying an opaque $skiptoken, as Graph pages."""
    top = request.q("$top")
    size = page_size
    if top is not None:
        if not top.isdigit() or not 1 <= int(top) <= MAX_TOP:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_TOP} inclusive.",
            )
        size = int(top)
    token = request.q("$skiptoken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
        except ValueError as exc:
            raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired.") from exc
    result: dict[str, Any] = {"@odata.context": context, "value": items[start : start + size]}
    if start + size < len(items):
        query = {k: v for k, v in request.query.items() if k.lower() != "$skiptoken"}
        query["$skiptoken"] = base64.urlsafe_b64encode(f"offset:{start + size}".encode()).decode()
        result["@odata.nextLink"] = url + "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return result
