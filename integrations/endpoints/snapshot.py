"""The latest result of a slow read (the database's figures, Prefect's flow runs,
the readiness check), for answers that must never wait on it for long."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("credithub.metrics")
T = TypeVar("T")


@dataclass(frozen=True)
class Reading(Generic[T]):
    ok: bool
    value: T | None
    seconds: float  # how long the read took (NaN: none finished yet)
    at: float = -math.inf  # time.monotonic() when it finished


class Snapshot(Generic[T]):
    """The latest result of a slow read: refreshed when older than `max_age`, one read
    at a time on a thread of its own (never the API's), waited for at most `timeout`.
    A read still running when a later refresh comes is waited for again, not doubled."""

    def __init__(self, name: str, read: Callable[[], T], max_age: float, timeout: float):
        self.name, self.read, self.max_age, self.timeout = name, read, max_age, timeout
        self.latest: Reading[T] = Reading(False, None, math.nan)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"observe-{name}")
        self._pending: Future[None] | None = None

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            value = self.read()
        except Exception as exc:  # reported as `*_up 0`; the class only (see hub.core.logs)
            log.warning("%s: the read failed (%s)", self.name, type(exc).__name__)
            self.latest = Reading(False, None, time.perf_counter() - started, time.monotonic())
            return
        self.latest = Reading(True, value, time.perf_counter() - started, time.monotonic())

    async def refresh(self) -> Reading[T]:
        if self.latest.ok and time.monotonic() - self.latest.at < self.max_age:
            return self.latest
        if self._pending is None or self._pending.done():
            self._pending = self._executor.submit(self._run)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._pending)), self.timeout)
        except TimeoutError:
            log.warning("%s: no answer within %.1f s", self.name, self.timeout)
            # What was read before is older than it may be shown: nothing, until the
            # late read (or a later one) ends.
            self.latest = Reading(False, None, self.timeout, time.monotonic())
        return self.latest
