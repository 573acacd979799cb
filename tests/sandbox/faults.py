"""Injected faults: a status, a throttling storm or a connection reset, by operation."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    """One rule. ``operation`` and ``path`` are regular expressions (full match / search)."""

    operation: str = ".*"
    method: str | None = None
    path: str | None = None
    status: int | None = 500  # None: answer normally (with delay_after, a stale answer)
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    reset: bool = False  # drop the TCP connection instead of answering
    # Seconds to hold a computed answer before sending it: the state it describes may change meanwhile,
    # as when another client writes between a read and the write that follows it (races).
    delay_after: float = 0.0
    count: int = 1  # how many requests it hits; -1 for every one until cleared
    hits: int = 0

    def matches(self, operation: str, method: str, path: str) -> bool:
        if not re.fullmatch(self.operation, operation):
            return False
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not re.search(self.path, path, re.IGNORECASE))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> Fault:
        fault = Fault(**spec)
        re.compile(fault.operation)
        if fault.path:
            re.compile(fault.path)
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._rules]

    def pick(self, operation: str, method: str, path: str) -> Fault | None:
        """The first rule that matches, consuming one of its hits."""
        with self._lock:
            for fault in self._rules:
                if fault.matches(operation, method, path):
                    fault.hits += 1
                    if fault.count != -1 and fault.hits >= fault.count:
                        self._rules.remove(fault)
                    return fault
        return None
