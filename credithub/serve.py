"""Running the API server (`credithub api`; `up` starts it as one of its parts)."""

from __future__ import annotations

import logging

import uvicorn
from rich.console import Console

from credithub.http_protocol import GuardedH11Protocol, raise_fd_limit
from hub.settings import get_settings

console = Console(stderr=True)


def serve_api(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    console.print(f"API      http://{host}:{port}/v1   docs http://{host}:{port}/docs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    raise_fd_limit(settings.api_max_connections)  # per process: each worker inherits it
    uvicorn.run(
        "integrations.endpoints.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=GuardedH11Protocol,  # header and request timeouts, a connection cap
        # libuv's loop: accepting and closing a connection in asyncio's Python loop
        # cost so much that a crowd reconnecting 1,500 times a second kept new
        # clients waiting 0.3 s (bench/slowloris.py); uvloop does it in C.
        loop="uvloop",
        # The kernel's queue of connections not yet accepted (nginx's is 511). On
        # asyncio's loop, which accepts up to this many in one go, uvicorn's 2,048
        # let a crowd overshoot the connection cap by as many.
        backlog=512,
        log_level="warning",
        access_log=False,
    )
