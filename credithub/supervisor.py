"""`credithub up`: start every part, print where it is, stop them all on Ctrl-C.

Parts run as child processes in their own process groups (a worker started
without job control would ignore SIGTERM otherwise), each logging to
`.credithub/logs/<part>.log`. Prefect runs offline with its home inside
`.credithub/` and an explicit PREFECT_API_URL, so no process starts a
temporary server of its own. Asked to put the Prefect server beyond loopback,
`up` requires an auth string first (credithub/prefect_access.py).

Up means every part answers: the flows part only once the Prefect server lists
every deployment of flows/serve.py as served. Ctrl-C stops the parts one at a
time in the order that loses nothing: the flows runner first (its runs finish
their reports while the server still answers), then the traffic and the
partners' stand-ins, then the API, the Prefect server last. A second Ctrl-C
stops what is left at once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from credithub import demo, prefect_access, prefect_roles
from hub.core import migrate, prefect_database
from hub.settings import Settings, get_settings

console = Console(stderr=True)
BIN = Path(sys.executable).parent
HIS_URL, HIS_KEY = "http://127.0.0.1:8121", "his-dev-key"


@dataclass
class Part:
    name: str
    argv: list[str]
    health: str  # a URL that answers below 500 once the part is ready ("" if `ready` says)
    address: str  # the part's base URL, as up.json gives it
    note: str = ""  # what the table of addresses adds for a person
    api_key: str | None = None  # a stand-in's key, as up.json gives it
    ready: Callable[[], bool] | None = None  # readiness other than answering `health`
    stop_rank: int = 2  # stopped in rank order: 0 first, the Prefect server (4) last
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def prefect_env(settings: Settings, port: int, auth: str | None = None) -> dict[str, str]:
    """What every part needs to reach the Prefect server (`auth`: its auth string)."""
    return {
        **prefect_access.environment(auth),
        "PREFECT_API_URL": f"{prefect_base(settings, port)}/api",
        "PREFECT_HOME": str(Path(settings.home) / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }


def prefect_base(settings: Settings, port: int) -> str:
    """The Prefect server's base URL, as this machine's clients reach it."""
    return f"http://{prefect_access.client_host(settings.prefect_host)}:{port}"


def plan(settings: Settings, ports: dict[str, int], up_file: Path) -> list[Part]:
    py, api = str(BIN / "python"), f"http://{settings.api_host}:{settings.api_port}"
    prefect = prefect_base(settings, ports["prefect"])
    his_url = f"http://127.0.0.1:{ports['his']}" if "his" in ports else HIS_URL  # the demo's
    parts = [
        Part(
            "prefect",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                settings.prefect_host,
                "--port",
                str(ports["prefect"]),
            ],
            f"{prefect}/api/health",  # answers without authentication
            prefect,
            note="the Prefect UI: deployments, runs, artifacts",
            stop_rank=4,
        ),
        Part(
            "credit-bureau",
            [
                py,
                "-m",
                "simulators.credit_bureau",
                "--port",
                str(ports["bureau"]),
                "--api-key",
                settings.bureau_api_key,
                "--seed",
                "1",
            ],
            f"{settings.bureau_url}/_sim/knobs",
            settings.bureau_url,
            note="the public credit database's stand-in",
            api_key=settings.bureau_api_key,
        ),
    ]
    for code, system in settings.bank_systems.items():
        port = system["url"].rsplit(":", 1)[1]
        parts.append(
            Part(
                f"bank-{code}",
                [
                    py,
                    "-m",
                    "simulators.bank",
                    "--port",
                    port,
                    "--api-key",
                    system["api_key"],
                    "--seed",
                    "1",
                ],
                f"{system['url']}/_sim/knobs",
                system["url"],
                note=f"{code}'s stand-in",
                api_key=system["api_key"],
            )
        )
    parts += [
        Part(
            "api",
            [py, "-m", "credithub.cli", "api"],
            f"{api}/v1/health",
            api,
            note="the partner API under /v1, its docs at /docs",
            stop_rank=3,
        ),
        Part(
            "hospitals",
            [
                py,
                "-m",
                "simulators.hospital",
                "--port",
                his_url.rsplit(":", 1)[1],
                "--api-key",
                HIS_KEY,
                "--hub-url",
                api,
                "--bureau-url",
                settings.bureau_url,
                "--bureau-key",
                settings.bureau_api_key,
                "--partners-file",
                str(up_file),
                "--seed",
                "1",
                "--rate",
                str(settings.demo_rate),
            ],
            f"{his_url}/_sim/knobs",
            his_url,
            note="the hospitals' systems, sending demo traffic",
            api_key=HIS_KEY,
            stop_rank=1,
        ),
        Part(
            "flows",
            [py, "-m", "flows.serve"],
            "",
            f"{prefect}/deployments",
            note="every deployment served (flows/serve.py)",
            stop_rank=0,
        ),
    ]
    return parts


def deployments_served(
    prefect: str, names: list[str], since: datetime, auth: str | None = None
) -> bool:
    """Whether the Prefect server at `prefect` lists every deployment in `names`, not
    paused, polled by a runner since `since` (a deployment stays listed, paused, after
    its runner stopped: listed alone says nothing about this start)."""
    try:
        answer = httpx.post(
            f"{prefect}/api/deployments/filter",
            json={"deployments": {"name": {"any_": names}}},
            headers=prefect_access.headers(auth),
            timeout=2,
        )
        answer.raise_for_status()
    except httpx.HTTPError:
        return False
    served = set()
    for d in answer.json():
        polled = d.get("last_polled")
        if polled and not d.get("paused") and datetime.fromisoformat(polled) >= since:
            served.add(d["name"])
    return served >= set(names)


def wait_healthy(
    part: Part, deadline_s: float, cancelled: Callable[[], bool] = lambda: False
) -> None:
    """Until the part is ready; raises if it exits or is not ready by the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and not cancelled():
        if part.process is not None and part.process.poll() is not None:
            raise RuntimeError(f"{part.name} exited with {part.process.returncode}; see its log")
        if part.ready is not None:
            if part.ready():
                return
        else:
            try:
                headers = {"Authorization": f"Bearer {part.api_key}"} if part.api_key else {}
                if httpx.get(part.health, timeout=1, headers=headers).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if not cancelled():
        raise RuntimeError(f"{part.name} did not become ready in {deadline_s:.0f} s; see its log")


def start(part: Part, env: dict[str, str], logs: Path) -> None:
    log = (logs / f"{part.name}.log").open("ab")
    part.process = subprocess.Popen(
        part.argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


GRACE_S = {"flows": 30.0}  # seconds from SIGTERM to SIGKILL: the runner stops its runs first
DEFAULT_GRACE_S = 10.0


def start_together(parts: list[Part], env: dict[str, str], logs: Path, deadline_s: float) -> None:
    """Start every part at once, then wait until each is ready (all within `deadline_s`).

    For parts that do not need each other to start (the demo's world); if one
    fails or is late, every part is stopped and the error raised.
    """
    try:
        for part in parts:
            start(part, env, logs)
        end = time.monotonic() + deadline_s
        for part in parts:
            wait_healthy(part, max(1.0, end - time.monotonic()))
    except BaseException:
        stop(parts)
        raise


def stop(parts: list[Part], hurry: Callable[[], bool] = lambda: False) -> None:
    """Stop the parts one rank at a time (flows, traffic, stand-ins, API, Prefect):
    SIGTERM a rank's groups, wait for them (GRACE_S), SIGKILL what is left. Once
    `hurry()` says so (a second Ctrl-C), whatever is left is killed at once."""
    for rank in sorted({p.stop_rank for p in parts}):
        group = [p for p in parts if p.stop_rank == rank and _alive(p)]
        for part in group:
            console.print(f"  stopping {part.name} ...")
            _signal(part, signal.SIGKILL if hurry() else signal.SIGTERM)
        for part in group:
            end = time.monotonic() + GRACE_S.get(part.name, DEFAULT_GRACE_S)
            while _alive(part) and time.monotonic() < end and not hurry():
                time.sleep(0.1)
            if _alive(part):
                _signal(part, signal.SIGKILL)
        for part in group:
            if part.process is not None:
                part.process.wait()


def _alive(part: Part) -> bool:
    return part.process is not None and part.process.poll() is None


def _signal(part: Part, signum: int) -> None:
    if part.process is not None:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(part.process.pid, signum)


def with_demo_systems(settings: Settings) -> Settings:
    """The settings with the stand-ins' addresses and keys for the banks' and the
    hospitals' systems, unless the settings name real ones."""
    bank_systems = settings.bank_systems or {
        code: {"url": f"http://127.0.0.1:{8111 + i}", "api_key": f"{code.lower()}-dev-key"}
        for i, (code, _) in enumerate(demo.BANKS)
    }
    hospital_systems = settings.hospital_systems or {
        code: {"url": HIS_URL, "api_key": HIS_KEY} for code, _ in demo.HOSPITALS
    }
    return settings.model_copy(
        update={"bank_systems": bank_systems, "hospital_systems": hospital_systems}
    )


def run_all() -> None:
    """Start everything; raises prefect_access.OpenServer, before starting anything,
    when the Prefect server would listen beyond loopback without an auth string."""
    settings = get_settings()
    auth = prefect_access.server_auth(settings.prefect_host, os.environ)
    home = Path(settings.home)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    up_file = home / "up.json"
    previous = demo.read_up_file(up_file)
    ports = {"prefect": 4200, "bureau": int(settings.bureau_url.rsplit(":", 1)[1])}
    settings = with_demo_systems(settings)
    bank_systems, hospital_systems = settings.bank_systems, settings.hospital_systems
    env = {
        **os.environ,
        **prefect_env(settings, ports["prefect"], auth),
        # Prefect's state beside the hub's when the hub is on PostgreSQL.
        **prefect_roles.server_environment(settings),
        "CREDITHUB_HOME": str(home),
        "CREDITHUB_BANK_SYSTEMS": json.dumps(bank_systems),
        "CREDITHUB_HOSPITAL_SYSTEMS": json.dumps(hospital_systems),
    }
    console.print(
        "[bold]credithub up[/bold]: migrations, then every part (logs in .credithub/logs)"
    )
    migrate.upgrade(settings)
    prefect_database.ensure_database(
        settings, [str(BIN / "prefect"), "server", "database", "upgrade", "-y"], env
    )
    keys = demo.ensure_partners(settings, previous.get("partner_keys", {}), webhook_url=None)
    content = {
        "partner_keys": keys,
        "bank_systems": bank_systems,
        "hospital_systems": hospital_systems,
        "partners": [{"kind": k, "code": c, "name": n} for k, c, n in demo.demo_partners()],
    }
    demo.write_up_file(up_file, content)  # the hospitals' stand-in reads it as it starts
    parts = plan(settings, ports, up_file)
    flows = next(p for p in parts if p.name == "flows")
    prefect = next(p for p in parts if p.name == "prefect").address
    os.environ.update(prefect_env(settings, ports["prefect"], auth))  # before Prefect is imported
    from flows.serve import schedules

    names = list(schedules(settings))
    signals = 0

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal signals
        signals += 1

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for part in parts:
            if signals:
                break
            console.print(f"  starting {part.name} ...")
            if part is flows:
                flows.ready = functools.partial(
                    deployments_served, prefect, names, datetime.now(UTC), auth
                )
            start(part, env, logs)
            wait_healthy(part, 90 if part.name in ("prefect", "flows") else 30, lambda: signals > 0)
        if not signals:
            demo.write_up_file(up_file, {**up_file_content(parts), **content})
            _print_addresses(parts, up_file)
        while not signals:
            for part in parts:
                if part.process is not None and part.process.poll() is not None:
                    console.print(
                        f"[red]{part.name} stopped ({part.process.returncode}); "
                        f"stopping everything — see .credithub/logs/{part.name}.log[/red]"
                    )
                    signals = max(signals, 1)
            time.sleep(0.5)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
    finally:
        console.print("stopping every part in order (Ctrl-C again: at once) ...")
        stop(parts, hurry=lambda: signals > 1)
        demo.write_up_file(up_file, content)  # no addresses: nothing answers there now
        console.print("stopped.")


def up_file_content(parts: list[Part]) -> dict[str, Any]:
    """What up.json says of the parts: each one's base URL, the API's docs apart, and
    each stand-in's URL with its key (the hospitals' and banks' also under
    hospital_systems and bank_systems)."""
    addresses = {p.name: p.address for p in parts}
    api = addresses["api"]
    return {
        "addresses": {**addresses, "api_docs": f"{api}/docs"},
        "stand_ins": {p.name: {"url": p.address, "api_key": p.api_key} for p in parts if p.api_key},
    }


def _print_addresses(parts: list[Part], up_file: Path) -> None:
    table = Table(title="credithub is up — Ctrl-C stops everything")
    table.add_column("part")
    table.add_column("address", no_wrap=True)
    table.add_column("what it is")
    for part in parts:
        table.add_row(part.name, part.address, part.note)
    console.print(table)
    console.print(f"Addresses and the demo partners' API keys: {up_file} (yours only)")
