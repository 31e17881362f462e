"""Who may call, and how much of the server each caller may take.

- Bearer keys are looked up in the database once and then trusted for a few
  seconds per process (`KeyCache`). Keys found unknown are remembered apart,
  so a flood of random keys can neither cost a lookup each nor push the
  partners' own keys out of the cache.
- Lookups of keys this process has never seen are rate limited by client
  address before they reach the database (`RateLimiter` keyed by address).
- Each partner has a rate limit (`RateLimiter`, CONTRACT.md §1) and a cap on
  its requests doing database work at once (`ConcurrencyLimiter`), so that no
  partner, however fast it sends, can take the threads and connections that
  the others need.

These count per process; `shared_guards.py` has the same limits counted over
every API process, in Redis.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from hub.core.partners import Caller, hash_key

_MAX_ENTRIES = 10_000  # per table: the known keys, the unknown keys, the buckets


class RateLimits(Protocol):
    async def check(self, key: str) -> int: ...


class ConcurrencyLimits(Protocol):
    def slot(self, partner_id: str) -> AbstractAsyncContextManager[None]: ...


class KeyCache:
    """Remembers key lookups for `ttl` seconds, so most requests skip the database.

    A disabled partner or a lapsed key is refused within `ttl` seconds in
    every API process (`CREDITHUB_AUTH_CACHE_SECONDS`).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._ttl, self._clock = ttl, clock
        self._known: dict[str, tuple[float, Caller]] = {}
        self._unknown: dict[str, float] = {}

    def get(self, api_key: str) -> tuple[bool, Caller | None]:
        """(True, caller) or (True, None) for a fresh answer; (False, None) to look it up."""
        digest, now = hash_key(api_key), self._clock()
        known = self._known.get(digest)
        if known is not None and known[0] > now:
            return True, known[1]
        unknown_until = self._unknown.get(digest)
        if unknown_until is not None and unknown_until > now:
            return True, None
        return False, None

    def was_known(self, api_key: str) -> bool:
        """Did this key belong to a partner when last looked up (however long ago)?"""
        return hash_key(api_key) in self._known

    def put(self, api_key: str, caller: Caller | None) -> None:
        if self._ttl <= 0:
            return
        digest, until = hash_key(api_key), self._clock() + self._ttl
        if caller is not None:
            if len(self._known) >= _MAX_ENTRIES:
                self._known.clear()
            self._unknown.pop(digest, None)
            self._known[digest] = (until, caller)
            return
        self._known.pop(digest, None)
        if len(self._unknown) >= _MAX_ENTRIES:
            self._unknown.clear()  # a flood of random keys: forget them, not the partners
        self._unknown[digest] = until


class RateLimiter:
    """A token bucket per key (a partner, a client address): `rate` a second, bursts to `rate`."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self._rate, self._clock = rate, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> int:
        """0 when the request may go ahead, else the seconds to wait."""
        if self._rate <= 0:
            return 0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None and len(self._buckets) >= _MAX_ENTRIES:
            self._buckets.clear()  # buckets left idle are full anyway: dropping them loses nothing
        tokens, last = bucket or (self._rate, now)
        tokens = min(self._rate, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self._rate))
        self._buckets[key] = (tokens - 1, now)
        return 0

    async def check(self, key: str) -> int:
        """`allow`, as the shared limiter (`shared_guards.SharedRateLimiter`) is called."""
        return self.allow(key)


class Busy(Exception):
    """A partner already had its share of the server for longer than the wait."""


class ConcurrencyLimiter:
    """At most `limit` requests of one partner doing database work at once.

    The rest wait on the event loop, holding no thread or connection, for up
    to `wait` seconds, then are refused (`Busy`, a 429). A partner sending
    faster than the server can answer it thus queues behind itself, while the
    other partners' requests find threads free.
    """

    def __init__(self, limit: int, wait: float):
        self._limit, self._wait = limit, wait
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def slot(self, partner_id: str) -> AsyncIterator[None]:
        if self._limit <= 0:
            yield
            return
        slots = self._slots_of_this_loop()
        semaphore = slots.get(partner_id)
        if semaphore is None:
            semaphore = slots[partner_id] = asyncio.Semaphore(self._limit)
        if semaphore.locked():  # only then pay for a timer
            try:
                await asyncio.wait_for(semaphore.acquire(), self._wait)
            except TimeoutError:
                raise Busy from None
        else:
            await semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()

    def _slots_of_this_loop(self) -> dict[str, asyncio.Semaphore]:
        # A semaphore belongs to one event loop; tests may serve one app from several.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._slots = loop, {}
        return self._slots
