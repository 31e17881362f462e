"""Real servers for tests that need real HTTP: the hub and the stand-ins in
threads, or the hub's API as its own process (`credithub api`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from credithub.threaded_server import free_port, serve
from hub.settings import Settings
from tests.crashing import ROOT

__all__ = ["api_process", "free_port", "live_server", "serve"]


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The hub's API on a free loopback port; yields its base URL."""
    from integrations.endpoints.app import create_app

    with serve(create_app(settings)) as base:
        yield base


@contextmanager
def api_process(
    settings: Settings,
    port: int,
    log: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    ready: str = "/v1/health",
) -> Iterator[subprocess.Popen[bytes]]:
    """`credithub api --port PORT ARGS` with `settings` (and `env` over them), once
    `ready` answers 200; stopped at the end with its workers (SIGTERM to its process
    group, so its log is complete; SIGKILL after 30 s) if still running."""
    environment = {
        **os.environ,
        **settings.as_environment(),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # the API starts no flow here
        **(env or {}),
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each API process keeps its own
    command = [sys.executable, "-m", "credithub.cli", "api", "--port", str(port), *args]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not come up in 60 s"
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
