"""`credithub demo --days N`: fast-forward N days of both programmes.

The demo runs on the parts `credithub up` starts, in a world of its own
(`credithub.demo_world`), and moves their shared clock through the days. Each
day (weekends included: hospitals open daily and the settlement schedule is
daily): on the 1st at 06:00 the month's interest subsidies are granted; at
08:00 residents enrol at the hospitals' desks and at 08:05 the enrolment flow
decides them; at 08:20 small firms apply for loans through the city's app and
the profiling flow offers them to banks, and unanswered applications expire; at
09:00 collections, the hold-expiry sweep and the loans' delinquency run; the
banks' loan desks answer, and pay out accepted loans, at 09:15 and 16:00; from
09:30 to 19:30 patients are treated on credit; at 20:00 the banks book the
residents' repayments and at 20:05 the firms'; at 23:30 settlement closes the
window, pays and reconciles. The fund gets its first deposit before the first day.

The desks are the hospitals' stand-in's traffic generator — the same that sends
`up`'s live traffic — asked for a step of the day at a time over HTTP. The
flows run in this process as Prefect flow runs on the demo's own Prefect
server (as `credithub run` runs them on `up`'s), with the deployments'
parameters: a served deployment would start a fresh interpreter per run (about
4 s of imports here, some 28 times a week), which the demo cannot afford.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from credithub import demo_world, supervisor
from credithub.demo_report import DayRow, Summary
from hub import books, context
from hub.medical import window_checks
from hub.settings import Settings
from simulators.traffic.world import Tally

STEP_TIMEOUT_S = 300  # a step of the desks (a morning's enrolments) waits this long at most


@dataclass(frozen=True)
class Options:
    """What to simulate."""

    days: int = 7
    visits_per_day: int = 30
    enrolments_per_day: int | None = None  # default: a third of the visits, plus two
    repayment_window_days: int = 2  # compressed from 15 so collections has work within days
    database_url: str | None = None
    seed: int = 1
    firms_per_day: int = 2  # small firms applying for loans each morning
    # Compressed from 90 so that loans default, and banks claim, within a few months:
    # a loan's first instalment falls due a month after its payout.
    default_after_days: int = 45
    fund_fen: int = 10_000_000_00  # the risk-compensation fund's first deposit: 10 million yuan

    def enrolments(self) -> int:
        """Residents who sign up each morning."""
        if self.enrolments_per_day is None:
            return self.visits_per_day // 3 + 2
        return self.enrolments_per_day


def business_days(zone: str, count: int) -> list[date]:
    """Today in the business zone, and the days after it."""
    today = datetime.now(ZoneInfo(zone)).date()
    return [today + timedelta(days=n) for n in range(count)]


class Desks:
    """The hospitals' and banks' desks: the hospitals' stand-in, a step of the day at a time."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def step(self, name: str, at: datetime, count: int = 1) -> Tally:
        answer = self.http.post(
            f"/_sim/traffic/{name}", json={"at": at.isoformat(), "count": count}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"the hospitals' stand-in refused the {name} step: {answer.text}")
        return Tally.from_dict(answer.json()["tally"])


class Day:
    """One simulated day: moving every part's clock through it, and the desks' tally."""

    def __init__(self, world: demo_world.World, desks: Desks, day: date) -> None:
        self.world, self.desks, self.day = world, desks, day
        self.zone = ZoneInfo(world.settings.business_timezone)
        self.tally = Tally()

    def at(self, hour: int, minute: int = 0) -> datetime:
        return self.move(datetime.combine(self.day, time(hour, minute), self.zone))

    def move(self, instant: datetime) -> datetime:
        """Move every part's clock to this instant of the day."""
        self.world.move_clock(instant)
        return instant

    def desks_step(self, name: str, at: datetime, count: int = 1) -> None:
        self.tally = self.tally.plus(self.desks.step(name, at, count))


def run_flow(settings: Settings, name: str) -> Any:
    """One flow run, with its deployment's parameters, at the shared clock's time."""
    from flows.serve import schedules

    flow_, _schedule, parameters, _description = schedules(settings)[name]
    return flow_(**parameters)


def simulate_day(world: demo_world.World, desks: Desks, day: date, options: Options) -> DayRow:
    """The day of both programmes: subsidies on the 1st, morning enrolments, loan
    applications and collections, the day's care and the banks' loan desks, the
    evening's repayments, settlement at 23:30."""
    today = Day(world, desks, day)
    subsidies: Any = None
    if day.day == 1:
        today.at(6, 0)
        subsidies = run_flow(world.settings, "loan-subsidies")
    today.desks_step("enrolments", today.at(8, 0), options.enrolments())
    today.at(8, 5)
    run_flow(world.settings, "enrollment")
    today.desks_step("decisions", today.at(8, 10))
    today.desks_step("loan_applications", today.at(8, 20), options.firms_per_day)
    today.at(8, 25)
    run_flow(world.settings, "loan-profiling")
    run_flow(world.settings, "loan-deadlines")
    today.at(9, 0)
    steps = run_flow(world.settings, "collections")
    run_flow(world.settings, "hold-expiry")
    delinquency = run_flow(world.settings, "loan-delinquency")
    today.desks_step("lending", today.at(9, 15))  # the banks' desks open
    opening, spacing = today.at(9, 30), timedelta(hours=10) / max(options.visits_per_day, 1)
    for n in range(options.visits_per_day):  # patients arrive from 09:30 to 19:30
        today.desks_step("visits", today.move(opening + spacing * n))
    today.desks_step("lending", today.at(16, 0))  # answers after lunch; the afternoon's payouts
    today.desks_step("repayments", today.at(20, 0))
    today.desks_step("loan_repayments", today.at(20, 5))
    today.at(23, 30)
    settled = list(run_flow(world.settings, "settlement"))
    night = window_checks.night(context.HubContext.of(world.settings), settled)
    return DayRow(
        day,
        today.tally,
        settled_fen=night.settled_fen,
        window_status=night.last_window_status,
        reminders=steps.get("reminder_before", 0) + steps.get("reminder_after", 0),
        suspensions=steps.get("suspended", 0),
        open_mismatches=night.open_mismatches,
        loans_overdue=_count(delinquency, "overdue"),
        loans_defaulted=_count(delinquency, "defaulted"),
        subsidies=_count(subsidies, "granted"),
    )


def _count(outcome: Any, key: str) -> int:
    """A count from a flow's returned summary (a mapping), 0 when it has none."""
    return int(outcome.get(key, 0)) if isinstance(outcome, dict) else 0


def fund_the_programme(world: demo_world.World, amount_fen: int) -> None:
    """The operator's first deposit into the risk-compensation fund (once per demo)."""
    answer = httpx.post(
        f"{world.api_url}/v1/risk-compensation/fund/deposits",
        json={"amount_fen": amount_fen, "reference": "demo-initial-deposit"},
        headers={
            "Authorization": f"Bearer {world.keys['OPS']}",
            "Idempotency-Key": "demo-initial-deposit",
        },
        timeout=60,
    )
    if answer.status_code != 201:
        raise RuntimeError(f"the fund's deposit was refused: {answer.text}")


def check_books(world: demo_world.World, summary: Summary) -> None:
    """The trial balance totals 0, every ledger account agrees with the rows it stands
    for, and every closed settlement window is settled."""
    answer = httpx.get(
        f"{world.api_url}/v1/ledger/trial-balance",
        headers={"Authorization": f"Bearer {world.keys['OPS']}"},
        timeout=60,
    )
    answer.raise_for_status()
    summary.trial_balance_fen = int(answer.json()["total_fen"])
    if summary.trial_balance_fen != 0:
        summary.failures.append(f"the trial balance totals {summary.trial_balance_fen} fen, not 0")
    ctx = context.HubContext.of(world.settings)
    for window_id, status in window_checks.unsettled_windows(ctx):
        summary.failures.append(f"settlement window {window_id} is {status}, not settled")
    # The trial balance is 0 by construction; the books must also agree with the rows.
    for discrepancy in books.described(ctx):
        summary.failures.append(f"the books disagree: {discrepancy}")
    for row in summary.rows:
        if row.window_status != "settled":
            summary.failures.append(f"the window closed on {row.day} is {row.window_status}")


@contextmanager
def flows_here(world: demo_world.World) -> Iterator[None]:
    """This process runs the flows: on the demo's Prefect server, with its settings."""
    import prefect.main  # noqa: F401  (configures Prefect's logging, once: then quieten it)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    context.use(world.settings)
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.WARNING)  # the table is the demo's output
    # No heartbeats: they tell a server a served run's process died; here the runs end
    # with this process, and each would wait up to a second for its heartbeat thread.
    updates = {
        PREFECT_API_URL: f"{world.prefect_url}/api",
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
    }
    with temporary_settings(updates=updates):
        try:
            yield
        finally:
            _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    """Send the runs' last logs and events while the demo's Prefect server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with suppress(RuntimeError):  # never started: nothing to send
        APILogWorker.instance().drain()
    EventsWorker.drain_all()


def run_demo(
    main: Settings, options: Options, on_day: Callable[[DayRow], None] | None = None
) -> Summary:
    """Simulate the days under `<main.home>/demo-days/`; the summary with its checks."""
    if options.database_url and options.database_url == main.sqlalchemy_url():
        raise RuntimeError("--database-url names the hub's own database; give the demo another")
    home = Path(main.home) / "demo-days"
    home.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry URLs with numbers
    zone = ZoneInfo(main.business_timezone)
    days = business_days(main.business_timezone, options.days)
    with (
        demo_world.opened(
            main,
            home,
            database_url=options.database_url,
            repayment_window_days=options.repayment_window_days,
            default_after_days=options.default_after_days,
            seed=options.seed,
            starts_at=datetime.combine(days[0], time(7, 0), zone),
        ) as world,
        flows_here(world),
        httpx.Client(
            base_url=world.his_url,
            headers={"Authorization": f"Bearer {supervisor.HIS_KEY}"},
            timeout=STEP_TIMEOUT_S,
        ) as his,
    ):
        summary = Summary(
            f"its own Prefect server at {world.prefect_url} "
            f"(runs kept in {home / 'prefect'}; it stops with the demo)"
        )
        desks = Desks(his)
        fund_the_programme(world, options.fund_fen)
        for day in days:
            summary.rows.append(simulate_day(world, desks, day, options))
            if on_day is not None:
                on_day(summary.rows[-1])
        check_books(world, summary)
        return summary
