"""Slow clients cannot hold the API (credithub/http_protocol.py): real uvicorn in a
thread, real sockets, small limits so that each test takes about a second."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from credithub import http_protocol
from credithub.http_protocol import GuardedH11Protocol
from credithub.threaded_server import serve

HEAD = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


class Quick(GuardedH11Protocol):
    header_timeout = 0.5
    request_timeout = 1.5
    max_connections = 4


busy = {"release": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 "ok" (after the body, if any); /hold holds the request until released."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    while scope["path"] == "/hold" and not busy["release"]:
        await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def server(keep_alive: int = 5) -> Iterator[tuple[str, int]]:
    busy["release"] = False
    with serve(app, http=Quick, keep_alive=keep_alive) as url:
        parts = urlsplit(url)
        yield parts.hostname or "", parts.port or 0


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """How long until the server closed `sock` without answering; None if it did not."""
    start = time.monotonic()
    ready, _, _ = select.select([sock], [], [], seconds)
    if not ready:
        return None
    try:
        data = sock.recv(1024)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"an answer, not a close: {data!r}"
    return time.monotonic() - start


def response(sock: socket.socket) -> bytes:
    """One response (the test app's have a content length); b"" if the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    with server() as address, connect(address) as sock:
        waited = closed_within(sock, 3)
    assert waited is not None and 0.3 < waited < 1.2


def test_a_head_trickled_a_byte_at_a_time_is_closed_too() -> None:
    with server() as address, connect(address) as sock:
        start, sent = time.monotonic(), 0
        trickle = b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100
        while sent < len(trickle):
            if closed_within(sock, 0.1) is not None:
                break
            try:
                sock.send(trickle[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        assert 0.4 < time.monotonic() - start < 1.2 and sent < 15


def test_a_body_trickled_after_its_head_is_bounded_by_the_request_timeout() -> None:
    with server() as address, connect(address) as sock:
        start = time.monotonic()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n")
        while closed_within(sock, 0.2) is None:
            sock.send(b"x")
        assert 1.3 < time.monotonic() - start < 2.2


def test_prompt_requests_on_a_kept_alive_connection_are_answered_until_it_idles_out() -> None:
    with server(keep_alive=1) as address, connect(address) as sock:
        # a head in two parts, then two pipelined requests, then a body
        sock.sendall(HEAD[:10])
        time.sleep(0.2)
        sock.sendall(HEAD[10:])
        assert response(sock).endswith(b"ok")
        sock.sendall(HEAD + HEAD)
        both = b""  # the two answers may come in one packet
        while both.count(b"\r\n\r\nok") < 2:
            chunk = sock.recv(4096)
            assert chunk, both
            both += chunk
        sock.sendall(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc")
        assert response(sock).endswith(b"ok")
        # idle longer than the header timeout: still open (the keep-alive timeout rules)
        time.sleep(0.8)
        sock.sendall(HEAD)
        assert response(sock).startswith(b"HTTP/1.1 200")
        # idle past uvicorn's keep-alive timeout: closed
        waited = closed_within(sock, 3)
        assert waited is not None and 0.8 < waited < 1.6


def test_at_the_cap_a_new_connection_displaces_the_oldest_waiting_one() -> None:
    with server() as address, ExitStack() as stack:
        idle = [stack.enter_context(connect(address)) for _ in range(Quick.max_connections)]
        time.sleep(0.1)
        late = stack.enter_context(connect(address))
        late.sendall(HEAD)
        assert response(late).startswith(b"HTTP/1.1 200")
        oldest_closed = closed_within(idle[0], 0.2)
        assert oldest_closed is not None and oldest_closed < 0.2
        assert closed_within(idle[1], 0.05) is None  # the others wait their turn


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused_with_503() -> None:
    with server() as address, ExitStack() as stack:
        holding = [stack.enter_context(connect(address)) for _ in range(Quick.max_connections)]
        for sock in holding:
            sock.sendall(HEAD.replace(b"GET /", b"GET /hold"))
        time.sleep(0.2)
        refused = stack.enter_context(connect(address))
        refusal = response(refused)
        assert refusal.startswith(b"HTTP/1.1 503")
        assert b"application/problem+json" in refusal and b"retry-after: 1" in refusal
        assert json.loads(refusal.split(b"\r\n\r\n", 1)[1])["code"] == "too_many_connections"
        assert closed_within(refused, 1) is not None
        busy["release"] = True  # the held requests are still answered
        assert all(response(sock).endswith(b"ok") for sock in holding)


def test_normal_clients_are_answered_through_a_crowd_of_silent_connections() -> None:
    with server() as address, ExitStack() as stack:
        url = f"http://{address[0]}:{address[1]}/"
        for _ in range(5):
            for _ in range(8):  # twice the cap, again and again
                stack.enter_context(connect(address))
            for _ in range(3):
                answer = httpx.get(url, timeout=2)
                assert answer.status_code == 200 and answer.text == "ok"


class Crowded(Quick):
    max_connections = 20
    crowd = 10


def test_memory_is_released_once_a_crowd_has_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[float] = []
    monkeypatch.setattr(http_protocol, "release_memory", lambda: released.append(time.monotonic()))
    with serve(app, http=Crowded) as url, ExitStack() as stack:
        address = (urlsplit(url).hostname or "", urlsplit(url).port or 0)
        crowd = [stack.enter_context(connect(address)) for _ in range(12)]
        time.sleep(0.2)
        for sock in crowd:
            sock.close()
        gone = time.monotonic()
        time.sleep(1.5)
        assert len(released) == 1 and 0.9 < released[0] - gone < 1.4
    http_protocol.release_memory()  # and the real one runs anywhere
