"""Requests raced against a live server: each on its own connection and thread,
released together by a barrier, so the database sees them at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

Send = Callable[[httpx.Client], httpx.Response]


def race(base: str, senders: Sequence[Send]) -> list[httpx.Response]:
    """Run every sender at once against the server at `base`; the responses in order."""
    barrier = threading.Barrier(len(senders))

    def send(sender: Send) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=60) as client:
            barrier.wait()
            return sender(client)

    with ThreadPoolExecutor(len(senders)) as pool:
        return list(pool.map(send, senders))


def race_posts(
    base: str, requests: Sequence[tuple[str, dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    """POST each (path, body, headers) at once."""

    def poster(path: str, body: dict[str, Any], headers: dict[str, str]) -> Send:
        return lambda client: client.post(path, json=body, headers=headers)

    return race(base, [poster(*request) for request in requests])
