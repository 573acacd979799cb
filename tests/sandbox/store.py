"""The sandbox's state: in-memory records, written through to SQLite.

Every mutation is one SQLite transaction, so a crash (or ``kill -9``) leaves the last
committed state, never a torn file. ``down`` + ``up`` therefore keeps every resource.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._by_kind: dict[str, dict[str, Record]] = {}
        self._meta: dict[str, Any] = {}
        self._depth = 0
        for key, kind, data in self._db.execute("SELECT key, kind, data FROM objects"):
            self._by_kind.setdefault(kind, {})[key] = json.loads(data)
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            self._meta[key] = json.loads(value)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one atomic commit (re-entrant)."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                    self._reload()
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _reload(self) -> None:
        self._by_kind.clear()
        for key, kind, data in self._db.execute("SELECT key, kind, data FROM objects"):
            self._by_kind.setdefault(kind, {})[key] = json.loads(data)

    # -- objects ---------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Record | None:
        return self._by_kind.get(kind, {}).get(key)

    def all(self, kind: str) -> dict[str, Record]:
        """A snapshot: handlers iterate it while other threads write (a live dict would raise mid-loop)."""
        with self.lock:
            return dict(self._by_kind.get(kind, {}))

    def put(self, kind: str, key: str, record: Record) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO objects (key, kind, data) VALUES (?, ?, ?)", (key, kind, json.dumps(record))
            )
            self._by_kind.setdefault(kind, {})[key] = record

    def delete(self, kind: str, key: str) -> Record | None:
        with self.transaction():
            record = self._by_kind.get(kind, {}).pop(key, None)
            if record is not None:
                self._db.execute("DELETE FROM objects WHERE key = ?", (key,))
            return record

    # -- meta --------------------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        return self._meta.get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            self._meta[key] = value
