"""Who may call: bearer keys (cached briefly per process) and per-partner rate limits."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from hub.core.partners import Caller, hash_key


class KeyCache:
    """Remembers key lookups for `ttl` seconds, so most requests skip the database.

    A disabled partner or a lapsed key is refused within `ttl` seconds in
    every API process (`CREDITHUB_AUTH_CACHE_SECONDS`).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._ttl, self._clock = ttl, clock
        self._entries: dict[str, tuple[float, Caller | None]] = {}

    def get(self, api_key: str) -> tuple[bool, Caller | None]:
        entry = self._entries.get(hash_key(api_key))
        if entry is None or entry[0] <= self._clock():
            return False, None
        return True, entry[1]

    def put(self, api_key: str, caller: Caller | None) -> None:
        if self._ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[hash_key(api_key)] = (self._clock() + self._ttl, caller)


class RateLimiter:
    """A token bucket per partner: `rate` requests a second, bursts up to `rate`."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self._rate, self._clock = rate, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, partner_id: str) -> int:
        """0 when the request may go ahead, else the seconds to wait."""
        if self._rate <= 0:
            return 0
        now = self._clock()
        tokens, last = self._buckets.get(partner_id, (self._rate, now))
        tokens = min(self._rate, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[partner_id] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self._rate))
        self._buckets[partner_id] = (tokens - 1, now)
        return 0
