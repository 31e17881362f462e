"""Running the API server (`credithub api`; `up` starts it as one of its parts)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import uvicorn
from rich.console import Console

from credithub.http_protocol import GuardedH11Protocol, raise_fd_limit
from hub.core import logs
from hub.core.private_files import private_folder
from hub.settings import get_settings

console = Console(stderr=True)


def serve_api(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    console.print(f"API      http://{host}:{port}/v1   docs http://{host}:{port}/docs")
    logs.configure(settings.log_format, settings.log_level)
    if workers > 1:
        share_metrics(settings.home, port)
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
        # Each worker's lines as JSON (or text), ours and uvicorn's alike.
        log_config=logs.logging_config(settings.log_format, settings.log_level),
        log_level="warning",
        access_log=False,  # the app writes its own, with the route and the partner
    )


def share_metrics(home: Path, port: int) -> None:
    """Workers sharing one port keep their metrics in prometheus-client's multiprocess
    files, so that whichever worker answers /metrics answers for all of them: a fresh
    folder per start (the last start's counts would be added in), unless the operator
    named one in PROMETHEUS_MULTIPROC_DIR."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = Path(home) / "metrics" / f"api-{port}"
    shutil.rmtree(folder, ignore_errors=True)
    private_folder(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # before the workers start
