"""The world of `credithub demo`: the parts `credithub up` starts, in a home of their own.

Under `<CREDITHUB_HOME>/demo-days/` (its own SQLite database and key file, or
the database `--database-url` names, emptied first; its own `up.json` with the
partners' keys and the parts' addresses; logs in `logs/`; Prefect's home in
`prefect/`), on free loopback ports, so a running `credithub up` is never
disturbed: a Prefect server, the API server, the credit database and bank
stand-ins, and the hospitals' stand-in with its traffic generator idle until
the demo asks for a step. They are started and checked by the supervisor's
code, like `up`'s parts.

The simulated clock reaches every part that decides by date through a clock
file (`hub.core.clock`, CREDITHUB_CLOCK_FILE): the API server and this
process (which runs the flows) read it; the hospitals' desks act at the
instant each step names; the banks and the credit database only see the dates
the hub sends them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from credithub import demo, supervisor
from credithub.threaded_server import free_port
from hub.core import clock, migrate
from hub.settings import Settings

STAND_IN_KEY = "demo-days-key"
BANK_DECLINE_RATE = "0.05"  # a bank now and then declines a line the hub's rules allowed
READY_WITHIN_S = 120  # every part ready within this, started together


@dataclass(frozen=True)
class World:
    """The running parts, their settings and the partners' keys."""

    home: Path
    settings: Settings
    keys: dict[str, str]
    addresses: dict[str, str]
    clock_file: Path

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def his_url(self) -> str:
        return next(iter(self.settings.hospital_systems.values()))["url"]

    @property
    def prefect_url(self) -> str:
        return self.addresses["prefect"]

    def move_clock(self, instant: datetime) -> None:
        clock.write_clock_file(self.clock_file, instant)


def overrides(
    home: Path,
    database_url: str | None,
    repayment_window_days: int,
    ports: dict[str, int],
    default_after_days: int = 90,
) -> dict[str, Any]:
    """The settings the demo's parts run with, where they differ from the hub's own."""
    url = "http://127.0.0.1:{}".format
    hospitals = [code for kind, code, _ in demo.demo_partners() if kind == "hospital"]
    banks = [code for kind, code, _ in demo.demo_partners() if kind == "bank"]
    return {
        "home": home,
        "database_url": database_url or "",  # empty: a SQLite file under the demo's home
        "secret_key": "",  # a key file of the demo's own, under its home
        "api_host": "127.0.0.1",
        "prefect_host": "127.0.0.1",  # the demo's own server, on this machine only
        "api_port": ports["api"],
        "bureau_url": url(ports["bureau"]),
        "bureau_api_key": STAND_IN_KEY,
        "bank_systems": {c: {"url": url(ports[c]), "api_key": STAND_IN_KEY} for c in banks},
        "hospital_systems": {
            c: {"url": url(ports["his"]), "api_key": supervisor.HIS_KEY} for c in hospitals
        },
        "repayment_window_days": repayment_window_days,
        "default_after_days_past_due": default_after_days,
        "rate_limit_per_second": 0.0,
        "demo_rate": 0.0,  # the hospitals' desks wait for the demo's steps
    }


def as_environment(changes: dict[str, Any]) -> dict[str, str]:
    """The same settings as CREDITHUB_* variables, for the parts' processes."""
    return {
        f"CREDITHUB_{name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
        for name, value in changes.items()
    }


def fresh_database(settings: Settings) -> None:
    """A new SQLite file each run; a named database is migrated and emptied."""
    migrate.fresh(settings)


def stand_in_knobs(parts: list[supervisor.Part], seed: int) -> None:
    """The demo's seed for every stand-in, and banks that decline now and then."""
    for part in parts:
        if part.name not in ("prefect", "api"):
            part.argv += ["--seed", str(seed)]  # the last --seed given wins
        if part.name.startswith("bank-"):
            part.argv += ["--decline-rate", BANK_DECLINE_RATE]


@contextmanager
def opened(
    main: Settings,
    home: Path,
    *,
    database_url: str | None,
    repayment_window_days: int,
    seed: int,
    starts_at: datetime,
    default_after_days: int = 90,
) -> Iterator[World]:
    """Make the database and partners, start every part, yield the world; stop them after."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()  # this run's logs only
    names = [
        "prefect",
        "api",
        "bureau",
        "his",
        *(c for k, c, _ in demo.demo_partners() if k == "bank"),
    ]
    ports = {name: free_port() for name in names}
    changes = overrides(home, database_url, repayment_window_days, ports, default_after_days)
    settings = main.model_copy(update=changes)
    clock_file = home / "clock"
    clock.write_clock_file(clock_file, starts_at)
    with ExitStack() as stack:
        stack.enter_context(clock_of_this_process(clock_file))
        fresh_database(settings)
        keys = demo.ensure_partners(settings, {}, webhook_url=None)
        up_file = home / "up.json"
        content = {
            "partner_keys": keys,
            "bank_systems": settings.bank_systems,
            "hospital_systems": settings.hospital_systems,
            "partners": [{"kind": k, "code": c, "name": n} for k, c, n in demo.demo_partners()],
        }
        demo.write_up_file(up_file, content)  # the hospitals' stand-in reads its keys from it
        parts = [p for p in supervisor.plan(settings, ports, up_file) if p.name != "flows"]
        stand_in_knobs(parts, seed)
        env = {
            **os.environ,
            **supervisor.prefect_env(settings, ports["prefect"]),
            **as_environment(changes),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            clock.CLOCK_FILE_VARIABLE: str(clock_file),
        }
        supervisor.start_together(parts, env, logs, READY_WITHIN_S)
        stack.callback(supervisor.stop, parts)
        addresses = {p.name: p.address for p in parts}
        demo.write_up_file(up_file, {"addresses": addresses, **content})
        yield World(home, settings, keys, addresses, clock_file)


@contextmanager
def clock_of_this_process(clock_file: Path) -> Iterator[None]:
    """This process reads the shared clock too (and its children inherit it), until the end."""
    before = os.environ.get(clock.CLOCK_FILE_VARIABLE)
    os.environ[clock.CLOCK_FILE_VARIABLE] = str(clock_file)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(clock.CLOCK_FILE_VARIABLE, None)
        else:
            os.environ[clock.CLOCK_FILE_VARIABLE] = before
