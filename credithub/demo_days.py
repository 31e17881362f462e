"""`credithub demo --days N`: fast-forward N business days of treat first, pay later.

A world of its own, so a running `credithub up` is never disturbed: a fresh
database under `<CREDITHUB_HOME>/demo-days/` (or `--database-url`, emptied
first), its own stand-ins (credit database, two banks, the hospitals' systems)
on free loopback ports in threads, the demo partners, and the hub's API in this
process, so that `hub.clock.set_now` drives every part. Each day (weekends
included: hospitals open daily and the settlement schedule is daily): at 08:00
residents enrol and the enrolment flow decides them; at 09:00 collections and
the hold-expiry sweep run; from 08:30 to 19:30 patients are treated on credit;
at 20:00 the banks book repayments; at 23:30 settlement closes the window,
pays and reconciles. Flows run through Prefect: the server of `up` when it
answers, else a temporary one.
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx

from credithub.demo import demo_partners, read_up_file
from credithub.demo_desks import Desks, Tally, set_clock
from credithub.demo_report import DayRow, Summary
from credithub.supervisor import prefect_env
from credithub.threaded_server import serve
from hub.context import HubContext
from hub.core import clock, migrate, partner_admin
from hub.core.db import empty_all_tables
from hub.medical import reconciliation_run, settlement_run
from hub.settings import Settings
from simulators import bank, credit_bureau, hospital

if TYPE_CHECKING:
    from starlette.testclient import TestClient

STAND_IN_KEY = "demo-days-key"


@dataclass(frozen=True)
class Options:
    """What to simulate."""

    days: int = 7
    visits_per_day: int = 30
    enrolments_per_day: int | None = None  # default: a third of the visits, plus two
    repayment_window_days: int = 2  # compressed from 15 so collections has work within days
    database_url: str | None = None
    seed: int = 1

    def enrolments(self) -> int:
        """Residents who sign up each morning."""
        if self.enrolments_per_day is None:
            return self.visits_per_day // 3 + 2
        return self.enrolments_per_day


# Stand-ins and Prefect -------------------------------------------------------------------------


@contextmanager
def prefect_backend(main_settings: Settings) -> Iterator[str]:
    """The Prefect server of `credithub up` if it answers, else a temporary one; says which."""
    os.environ.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    address = read_up_file(Path(main_settings.home) / "up.json").get("addresses", {}).get("prefect")
    if address and _answers(f"{address}/api/health"):
        os.environ.update(prefect_env(main_settings, int(address.rsplit(":", 1)[1])))
        yield f"the Prefect server of `credithub up` at {address} (runs in its UI)"
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield "a temporary Prefect server (no `credithub up` answered)"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# The world -------------------------------------------------------------------------------------


def demo_settings(main: Settings, home: Path, options: Options, urls: dict[str, str]) -> Settings:
    """The hub's settings for the demo: its own home, database and stand-ins."""
    banks = {"XMBANK": urls["XMBANK"], "XMRCB": urls["XMRCB"]}
    return main.model_copy(
        update={
            "home": home,
            "database_url": options.database_url or "",
            "secret_key": "",  # a key file of the demo's own, under its home
            "bureau_url": urls["bureau"],
            "bureau_api_key": STAND_IN_KEY,
            "bank_systems": {c: {"url": u, "api_key": STAND_IN_KEY} for c, u in banks.items()},
            "hospital_systems": {
                code: {"url": urls["his"], "api_key": STAND_IN_KEY}
                for kind, code, _ in demo_partners()
                if kind == "hospital"
            },
            "repayment_window_days": options.repayment_window_days,
            "rate_limit_per_second": 0.0,
        }
    )


def fresh_database(settings: Settings, main: Settings) -> None:
    """A new SQLite file each run; a named database is migrated and emptied."""
    engine = HubContext.of(settings).engine
    engine.dispose()
    if not settings.database_url:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{Path(settings.home) / 'credithub.db'}{suffix}").unlink(missing_ok=True)
    migrate.upgrade(settings)
    empty_all_tables(engine)


def add_partners(settings: Settings) -> dict[str, str]:
    """The demo partners (five hospitals, two banks, the channel, the operator); their keys."""
    wanted = [(kind, code, name, None) for kind, code, name in demo_partners()]
    return {new.code: new.api_key for new in partner_admin.add_all(HubContext.of(settings), wanted)}


def business_days(zone: str, count: int) -> list[date]:
    """Today in the business zone, and the days after it."""
    today = datetime.now(ZoneInfo(zone)).date()
    return [today + timedelta(days=n) for n in range(count)]


# One day ---------------------------------------------------------------------------------------


def simulate_day(desks: Desks, settings: Settings, day: date, options: Options) -> DayRow:
    """Morning enrolments and collections, the day's care and repayments, settlement at 23:30."""
    from flows.medical.collections import collect
    from flows.medical.enrollment import enroll_pending
    from flows.medical.hold_expiry import expire_holds
    from flows.medical.settlement import settle

    zone, desks.tally = settings.business_timezone, Tally()
    set_clock(day, 8, 0, zone)
    desks.enrol(options.enrolments())
    set_clock(day, 8, 5, zone)
    enroll_pending()
    desks.learn_decisions()
    set_clock(day, 9, 0, zone)
    steps = collect()
    expire_holds()
    desks.hospital_day(day, options.visits_per_day)
    set_clock(day, 20, 0, zone)
    desks.repay_day()
    set_clock(day, 23, 30, zone)
    row = DayRow(day, desks.tally)
    row.reminders = steps.get("reminder_before", 0) + steps.get("reminder_after", 0)
    row.suspensions = steps.get("suspended", 0)
    record_night(settings, row, list(settle(close=True)))
    return row


def record_night(settings: Settings, row: DayRow, settled: list[str]) -> None:
    """What the night's settlement paid, the state of the window it closed, open mismatches."""
    ctx = HubContext.of(settings)
    for window_id in settled:
        rows = settlement_run.window_report(ctx, window_id)
        row.settled_fen += sum(r["net_fen"] for r in rows if r["status"] == "settled")
    row.window_status = settlement_run.last_closed_status(ctx) or "none"
    row.open_mismatches = reconciliation_run.count(ctx, "open")


def check_books(
    api: TestClient, keys: dict[str, str], settings: Settings, summary: Summary
) -> None:
    """The trial balance totals 0 and every closed settlement window is settled."""
    answer = api.get("/v1/ledger/trial-balance", headers={"Authorization": f"Bearer {keys['OPS']}"})
    summary.trial_balance_fen = int(answer.json()["total_fen"])
    if summary.trial_balance_fen != 0:
        summary.failures.append(f"the trial balance totals {summary.trial_balance_fen} fen, not 0")
    for window_id, status in settlement_run.unsettled(HubContext.of(settings)):
        summary.failures.append(f"settlement window {window_id} is {status}, not settled")
    for row in summary.rows:
        if row.window_status != "settled":
            summary.failures.append(f"the window closed on {row.day} is {row.window_status}")


def run_demo(
    main: Settings, options: Options, on_day: Callable[[DayRow], None] | None = None
) -> Summary:
    """Simulate the days under `<main.home>/demo-days/`; the summary with its checks."""
    if options.database_url and options.database_url == main.sqlalchemy_url():
        raise RuntimeError("--database-url names the hub's own database; give the demo another")
    home = Path(main.home) / "demo-days"
    home.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry URLs with numbers
    days = business_days(main.business_timezone, options.days)
    set_clock(days[0], 7, 0, main.business_timezone)
    try:
        with ExitStack() as stack:
            summary = Summary(stack.enter_context(prefect_backend(main)))
            logging.getLogger("prefect").setLevel(logging.WARNING)
            desks, settings, keys = _world(stack, main, home, options)
            for day in days:
                summary.rows.append(simulate_day(desks, settings, day, options))
                if on_day is not None:
                    on_day(summary.rows[-1])
            check_books(desks.api, keys, settings, summary)
            return summary
    finally:
        clock.set_now(None)


def _world(
    stack: ExitStack, main: Settings, home: Path, options: Options
) -> tuple[Desks, Settings, dict[str, str]]:
    """Start the stand-ins, make the database and partners, open the API; the desks."""
    from hub import context

    knobs = credit_bureau.Knobs(seed=options.seed)
    urls = {"bureau": stack.enter_context(serve(credit_bureau.create_app(STAND_IN_KEY, knobs)))}
    for code in ("XMBANK", "XMRCB"):
        bank_knobs = bank.BankKnobs(seed=options.seed, decline_rate=0.05)
        urls[code] = stack.enter_context(serve(bank.create_app(STAND_IN_KEY, bank_knobs)))
    codes = [code for kind, code, _ in demo_partners() if kind == "hospital"]
    his = hospital.create_app(STAND_IN_KEY, hospital.HospitalKnobs(seed=options.seed), codes)
    urls["his"] = stack.enter_context(serve(his))
    settings = demo_settings(main, home, options, urls)
    fresh_database(settings, main)
    keys = add_partners(settings)
    context.use(settings)
    from integrations.endpoints.app import create_app

    with warnings.catch_warnings():  # starlette would rather we used httpx2: not our choice here
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    api = stack.enter_context(TestClient(create_app(settings), raise_server_exceptions=False))
    auth = {"Authorization": f"Bearer {STAND_IN_KEY}"}
    stand_ins = {
        name: stack.enter_context(httpx.Client(base_url=urls[name], headers=auth))
        for name in ("bureau", "his")
    }
    rng = random.Random(options.seed)
    return Desks(api, keys, stand_ins, rng, settings.business_timezone), settings, keys
