"""Rate and concurrency limits that several API processes share, in Redis.

One API process keeps its partners' limits in memory (`guards.py`). Several
processes, on one machine or many, would each allow a partner its whole
limit; with `CREDITHUB_REDIS_URL` set they count together instead:

- the rate limit is a GCRA bucket per partner (one key holding the
  theoretical arrival time), the same bucket as `guards.RateLimiter`: `rate` a
  second, bursts to `rate`;
- the concurrency cap is a sorted set of leases per partner. A lease lasts
  `lease` seconds, so the slots of a process killed mid-request come free by
  themselves.

Both are one Lua script each, atomic in Redis, timed by Redis's own clock
(processes on several machines need not agree on the time). When Redis cannot
be reached, each process falls back to its own limits for a second at a time
and says so in its log: a partner is then limited per process, never refused
because a helper service is down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from integrations.endpoints.guards import Busy, ConcurrencyLimiter, RateLimiter

log = logging.getLogger("credithub.api")

T = TypeVar("T")

# Seconds: how long a request waits for Redis, and how long a process uses its
# own limits after Redis failed it.
_TIMEOUT = 0.25
_FALLBACK = 1.0
# Connections to Redis per process and event loop.
_CONNECTIONS = 64
# A partner waiting for a slot asks again after these pauses (then every 20 ms).
_POLL = (0.001, 0.002, 0.005, 0.01, 0.02)

_RATE = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local over = next_tat - now - burst
if over > 0 then return over end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
"""

_TAKE_SLOT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class SharedRedis:
    """One client per event loop (a Redis connection belongs to its loop), and
    the fallback switch every shared limit consults."""

    def __init__(self, url: str, prefix: str):
        aioredis.ConnectionPool.from_url(url)  # a malformed URL fails here, at start
        self.url, self.prefix = url, prefix
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._down_until = 0.0

    def client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # A burst waits for one of the connections rather than failing as if
            # Redis were down.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=_CONNECTIONS,
                timeout=_TIMEOUT,
                socket_timeout=_TIMEOUT,
                socket_connect_timeout=_TIMEOUT,
            )
            client = self._clients[loop] = aioredis.Redis(connection_pool=pool)
        return client

    def is_down(self) -> bool:
        """Whether Redis failed in the last second (the limits are per process meanwhile)."""
        return time.monotonic() < self._down_until

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def call(
        self, work: Callable[[aioredis.Redis], Awaitable[T]], always: bool = False
    ) -> T | None:
        """`work`'s answer, or None when Redis failed it (then, for a second, None
        without asking, unless `always`: giving a slot back is always tried)."""
        if self.is_down() and not always:
            return None
        try:
            return await asyncio.wait_for(work(self.client()), _TIMEOUT * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            if time.monotonic() >= self._down_until:  # once per outage, not per request
                log.warning(
                    "redis at CREDITHUB_REDIS_URL failed (%s): limits per process for %g s",
                    type(exc).__name__,
                    _FALLBACK,
                )
            self._down_until = time.monotonic() + _FALLBACK
            return None


class SharedRateLimiter:
    """`guards.RateLimiter`'s bucket, shared by every process on the same Redis."""

    def __init__(self, shared: SharedRedis, name: str, rate: float):
        self._shared, self._name, self._rate = shared, name, rate
        self._local = RateLimiter(rate)
        if rate > 0:
            self._interval = max(1, round(1_000_000 / rate))  # microseconds a request
            self._burst = round(self._interval * rate)  # `rate` requests at once

    async def check(self, key: str) -> int:
        """0 when the request may go ahead, else the seconds to wait."""
        if self._rate <= 0:
            return 0
        bucket = self._shared.key("rate", self._name, key)
        over = await self._shared.call(
            lambda r: r.eval(_RATE, 1, bucket, self._interval, self._burst)
        )
        if over is None:
            return self._local.allow(key)
        return 0 if int(over) <= 0 else max(1, math.ceil(int(over) / 1_000_000))


class SharedConcurrencyLimiter:
    """At most `limit` requests of one partner doing database work at once,
    counted over every process: `guards.ConcurrencyLimiter`, shared."""

    def __init__(self, shared: SharedRedis, limit: int, wait: float, lease: float):
        self._shared, self._limit, self._wait = shared, limit, wait
        self._lease_ms = max(1, round(lease * 1000))
        self._local = ConcurrencyLimiter(limit, wait)

    @asynccontextmanager
    async def slot(self, partner_id: str) -> AsyncIterator[None]:
        if self._limit <= 0:
            yield
            return
        leases, token = self._shared.key("slots", partner_id), uuid.uuid4().hex
        asked = not self._shared.is_down()
        taken = await self._take(leases, token)  # Busy: refused, nothing leased
        try:
            if taken is None:  # Redis failed: this process's own slots
                async with self._local.slot(partner_id):
                    yield
            else:
                yield
        finally:
            # Given back even after a take that failed (Redis may have run it before
            # the answer was lost); if this fails too, the lease runs out by itself.
            if asked:
                await self._shared.call(lambda r: r.zrem(leases, token), always=True)

    async def _take(self, leases: str, token: str) -> bool | None:
        """True once a lease is ours; None if Redis is down; Busy after the wait."""
        deadline = time.monotonic() + self._wait
        pauses = iter(_POLL)
        while True:
            taken = await self._shared.call(
                lambda r: r.eval(_TAKE_SLOT, 1, leases, self._limit, self._lease_ms, token)
            )
            if taken is None:
                return None
            if taken:
                return True
            pause = next(pauses, _POLL[-1])
            if time.monotonic() + pause > deadline:
                raise Busy
            await asyncio.sleep(pause)
