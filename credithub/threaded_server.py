"""An ASGI app served on a free loopback port in a thread, for the tests that need
real HTTP; and `free_port`, which the demo also uses to place its parts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from credithub.http_protocol import GuardedH11Protocol


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    app: Any, http: type[GuardedH11Protocol] = GuardedH11Protocol, keep_alive: int = 5
) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL. `http`: the protocol,
    the API's unless a test passes a subclass with small limits; `keep_alive`:
    uvicorn's keep-alive timeout in seconds."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        loop="uvloop",  # as `credithub api` serves
        timeout_keep_alive=keep_alive,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
