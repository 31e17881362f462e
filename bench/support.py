"""What the benchmarks share: messages, a scratch database, child processes
(each in its own process group, always stopped), and a Prefect server (or its
parts apart: servers, background services and workers)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from credithub import supervisor
from credithub.threaded_server import free_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".credithub" / "bench"
ADMIN_URL = os.environ.get(
    "CREDITHUB_BENCH_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
SECRET = "credithub-bench-secret"

__all__ = ["ADMIN_URL", "OUT", "ROOT", "SECRET", "free_port"]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fresh_database(name: str) -> str:
    """Drop and recreate a scratch database; returns its URL."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return url


def drop_databases(*names: str) -> None:
    """Drop scratch databases (and whoever is still connected to them)."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    health_url: str


def spawn(
    name: str, command: list[str], env: dict[str, str], health_url: str, log: IO[bytes] | None
) -> Child:
    # Its own process group, so that stopping it stops whatever it started too
    # (and a Ctrl-C reaches only the bench, which then stops it in order).
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
        start_new_session=True,
    )
    return Child(name, process, health_url)


def wait_until_up(child: Child, timeout: float = 60, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise SystemExit(f"{child.name} exited with {child.process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(child.health_url, headers=headers, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{child.name} did not come up within {timeout:g} s")


def stop(child: Child) -> None:
    if child.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGTERM)
        try:
            child.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            stop(child)


def prefect_env(port: int, home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def prefect_server(port: int, log: IO[bytes], home: Path) -> Child:
    command = [str(Path(sys.executable).parent / "prefect"), "server", "start",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    health = f"http://127.0.0.1:{port}/api/health"
    return spawn("prefect server", command, prefect_env(port, home), health, log)


def prefect_apart(
    ports: dict[str, int], worker_prefix: str
) -> tuple[list[supervisor.Part], supervisor.Part, list[supervisor.Part]]:
    """Prefect's parts apart, as README "Running the parts apart" runs them: two API
    servers (`credithub prefect-server --no-services` on ports `prefect-a` and
    `prefect-b`), the background services (`credithub prefect-services`, asking a)
    and two workers (`credithub worker`, one asking each server), for
    `supervisor.start` with the hub's settings in its environment."""
    credithub = str(supervisor.BIN / "credithub")
    prefect = {n: f"http://127.0.0.1:{ports[f'prefect-{n}']}" for n in "ab"}

    def on(server: str, *argv: str) -> list[str]:  # a command talking to one server
        return ["env", f"PREFECT_API_URL={prefect[server]}/api", credithub, *argv]

    servers = [
        supervisor.Part(
            f"prefect-{n}",
            [credithub, "prefect-server", "--port", str(ports[f"prefect-{n}"]), "--no-services"],
            f"{prefect[n]}/api/health",
            prefect[n],
            stop_rank=4,
        )
        for n in "ab"
    ]
    services = supervisor.Part("prefect-services", on("a", "prefect-services"), "", "", stop_rank=4)
    services.ready = lambda: True  # it serves nothing: alive is ready
    workers = [
        supervisor.Part(
            f"worker-{n}", on(s, "worker", "--name", f"{worker_prefix}-{n}"), "", "", stop_rank=0
        )
        for n, s in (("1", "a"), ("2", "b"))
    ]
    for worker in workers:
        worker.ready = lambda: True
    return servers, services, workers


def run_wrk(port: int, script: Path, clients: int, seconds: float, args: list[str]) -> str:
    """wrk's report of `clients` connections driving the API on `port` for `seconds`,
    requests made by the Lua `script` (given `args`)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    command = [
        "wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{seconds:g}s",
        "--timeout", "10s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}",
        "--", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def settle(quiet_load: float = 1.0, patience: float = 90) -> float:
    """Let the machine settle before a measurement: the database writes its dirty
    pages (CHECKPOINT, else the previous part's writes land during this one), then
    wait until the 1-minute load average is under `quiet_load` or `patience`
    seconds have passed. Returns the load average then."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("CHECKPOINT"))
    except DBAPIError as exc:  # needs a superuser or pg_checkpoint: go on without it
        say(f"  (no checkpoint: {type(exc.orig).__name__})")
    finally:
        admin.dispose()
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] >= quiet_load and time.monotonic() < deadline:
        time.sleep(2)
    return os.getloadavg()[0]
