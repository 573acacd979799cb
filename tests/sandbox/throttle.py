"""ARM-style token buckets keyed by subscription + principal."""

from __future__ import annotations

import math
import threading
import time

from .config import Settings


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        # (bucket kind, subscription, principal) -> (tokens, last refill time)
        self._state: dict[tuple[str, str, str], tuple[float, float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._state.clear()

    def take(self, kind: str, subscription: str, principal: str, now: float | None = None) -> tuple[bool, int, int]:
        """Take one token. Returns (allowed, remaining, retry_after_seconds)."""
        capacity, refill = getattr(self._settings.buckets, kind)
        now = time.monotonic() if now is None else now
        key = (kind, subscription.lower(), principal)
        with self._lock:
            tokens, last = self._state.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * refill)
            if tokens >= 1:
                tokens -= 1
                self._state[key] = (tokens, now)
                return True, int(tokens), 0
            self._state[key] = (tokens, now)
            wait = (1 - tokens) / refill if refill > 0 else 60
            return False, 0, max(1, math.ceil(wait))
