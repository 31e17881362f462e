"""Asking a partner system about many things at once, one call each: every call's
answer or the exception it raised, so that one failing call does not cost the
others theirs (each is judged, audited and answered on its own by the caller)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each_answer(
    call: Callable[[T], R], items: Sequence[T], concurrency: int
) -> list[R | Exception]:
    """`call(item)` for each item, in order, `concurrency` at a time (threads: the
    calls wait on the network); each its result or the Exception it raised."""

    def one(item: T) -> R | Exception:
        try:
            return call(item)
        except Exception as exc:  # returned, not raised: judged per item by the caller
            return exc

    if concurrency <= 1 or len(items) <= 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(one, items))
