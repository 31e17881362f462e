"""Loans feed the shared collections (issue 8, item 6), on SQLite and PostgreSQL.

The daily delinquency run records each loan instalment past due with something
unpaid as a debt (`loan_instalment`, `<loan id>:<n>`, on no credit line) and
keeps it in step with the schedule as the bank reports repayments, closed loans
included. The collections run reports such a debt to the credit database (the
stand-in, over real HTTP) by the firm's code once it is 30 days past due, once,
under a key derived from the instalment, never one paid meanwhile; it never
suspends a credit line for it, and the medical steps go on exactly as before.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from flows.medical.collections import collect
from flows.partners import partner_systems
from hub import context
from hub.context import HubContext
from hub.core import clock, migrate
from hub.core.db import get_engine, unit_of_work
from hub.loans import collections as loan_collections
from hub.loans import delinquency
from hub.loans.allocation import payoff_fen
from hub.loans.views import instalments, states
from hub.medical import collections, collections_run
from hub.settings import Settings
from models.core.partner_errors import PartnerUnavailable
from models.core.partner_records import OverdueReceipt
from models.core.tables import Event
from models.loans.tables import Firm, Loan
from models.medical.tables import CollectionStep, Debt, DebtSource
from simulators import credit_bureau
from tests.books import books_agree
from tests.conftest import World, make_world
from tests.live import serve
from tests.loans.application_stage import hooks_on
from tests.loans.factory import disbursed_loan
from tests.test_migrations import _downgrade, scratch

__all__ = ["scratch"]

KEY = "bureau-test-key"
T0 = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)  # 12:00 on 31 January; due 28 Feb, 31 Mar, ...


def noon(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@dataclass
class Scene:
    world: World
    bureau: httpx.Client
    ctx: HubContext


@pytest.fixture
def scene(settings: Any) -> Iterator[Scene]:
    """A world wired to the credit-database stand-in, the hub clock at T0."""
    with serve(credit_bureau.create_app(KEY)) as url:
        wired = settings.model_copy(update={"bureau_url": url, "bureau_api_key": KEY})
        ctx = context.use(wired)
        clock.set_now(T0)
        world = make_world(wired)
        auth = {"Authorization": f"Bearer {KEY}"}
        try:
            with world.client, httpx.Client(base_url=url, headers=auth) as bureau:
                yield Scene(world, bureau, ctx)
        finally:
            clock.set_now(None)


def debts(world: World) -> dict[str, tuple[Any, ...]]:
    """Loan instalments' debts: source id -> (line, due date, amount, paid, unpaid)."""
    with unit_of_work(get_engine(world.settings), write=False) as session:
        rows = session.scalars(select(Debt).where(Debt.source_kind == DebtSource.LOAN_INSTALMENT))
        return {
            d.source_id: (d.credit_line_id, d.due_date, d.amount_fen, d.paid_fen, d.unpaid_fen)
            for d in rows
        }


def debt_ids(world: World) -> dict[str, str]:
    with unit_of_work(get_engine(world.settings), write=False) as session:
        return dict(session.execute(select(Debt.source_id, Debt.id)).all())


def schedule(world: World, loan_id: str) -> list[dict[str, Any]]:
    return list(world.get("b1", f"/v1/loans/{loan_id}").json()["schedule"])


def repay(world: World, loan_id: str, amount: int, txn: str) -> dict[str, Any]:
    paid_at = clock.now().isoformat()
    body = {"amount_fen": amount, "bank_txn_id": txn, "paid_at": paid_at}
    r = world.post("b1", f"/v1/loans/{loan_id}/repayments", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def payoff(world: World, loan_id: str) -> int:
    today = clock.business_date(clock.now(), world.settings.business_timezone)
    with unit_of_work(get_engine(world.settings), write=False) as session:
        return payoff_fen(states(instalments(session, loan_id)), today)


def owed(instalment: dict[str, Any]) -> int:
    return int(instalment["principal_fen"] + instalment["interest_fen"])


def steps(world: World) -> set[tuple[str, str]]:
    with unit_of_work(get_engine(world.settings), write=False) as session:
        return set(session.execute(select(CollectionStep.debt_id, CollectionStep.step)).all())


def uscc_of(world: World, loan_id: str) -> str:
    with unit_of_work(get_engine(world.settings), write=False) as session:
        return str(
            session.scalar(
                select(Firm.uscc).join(Loan, Loan.firm_id == Firm.id).where(Loan.id == loan_id)
            )
        )


def reports(scene: Scene) -> list[dict[str, Any]]:
    return list(scene.bureau.get("/reports/overdue").json()["items"])


# --- debts recorded and kept in step ------------------------------------------------------


def test_each_past_due_instalment_is_a_debt_kept_in_step_with_repayments(scene: Scene) -> None:
    w = scene.world
    loan = disbursed_loan(w, disbursed_at=T0)
    first, second = schedule(w, loan)[:2]
    assert (first["due_date"], second["due_date"]) == ("2026-02-28", "2026-03-31")

    clock.set_now(noon(2, 28))  # due today: not past due, no debt
    assert delinquency.run_day(scene.ctx)["overdue"] == 0
    assert debts(w) == {}

    clock.set_now(noon(3, 1))  # one day past due
    assert delinquency.run_day(scene.ctx)["overdue"] == 1
    due1 = dt.date(2026, 2, 28)
    assert debts(w) == {f"{loan}:1": (None, due1, owed(first), 0, owed(first))}
    recorded = debt_ids(w)
    delinquency.run_day(scene.ctx)  # a second run the same day records nothing again
    assert debt_ids(w) == recorded

    repay(w, loan, 50_000, "R1")  # part of what is overdue
    assert debts(w)[f"{loan}:1"][3:] == (0, owed(first))  # the next run brings it in step
    delinquency.run_day(scene.ctx)
    assert debts(w)[f"{loan}:1"][3:] == (50_000, owed(first) - 50_000)

    clock.set_now(noon(4, 1))  # the second instalment past due too
    delinquency.run_day(scene.ctx)
    assert set(debts(w)) == {f"{loan}:1", f"{loan}:2"}
    assert debts(w)[f"{loan}:2"] == (
        None,
        dt.date(2026, 3, 31),
        owed(second),
        0,
        owed(second),
    )

    repay(w, loan, payoff(w, loan), "R2")  # repaid in full: the loan is closed
    assert w.get("b1", f"/v1/loans/{loan}").json()["status"] == "closed"
    delinquency.run_day(scene.ctx)  # no longer serviced, but its debts are settled
    assert {source: d[4] for source, d in debts(w).items()} == {f"{loan}:1": 0, f"{loan}:2": 0}
    assert debt_ids(w)[f"{loan}:1"] == recorded[f"{loan}:1"]
    assert books_agree(w.settings)


def test_an_instalment_paid_on_time_is_never_a_debt(scene: Scene) -> None:
    w = scene.world
    loan = disbursed_loan(w, disbursed_at=T0)
    first = schedule(w, loan)[0]
    clock.set_now(noon(2, 28))
    repay(w, loan, owed(first), "R1")
    clock.set_now(noon(3, 10))
    assert delinquency.run_day(scene.ctx)["overdue"] == 0
    assert debts(w) == {}


# --- collections: reported once at 30 days, never a suspension -------------------------------


def test_a_loan_debt_is_reported_at_30_days_once_and_suspends_no_line(scene: Scene) -> None:
    w = scene.world
    loan = disbursed_loan(w, disbursed_at=T0)
    first = schedule(w, loan)[0]
    line_before = w.get("b1", f"/v1/credit-lines/{w.ids['line']}").json()
    clock.set_now(noon(3, 1))
    delinquency.run_day(scene.ctx)
    bureau = partner_systems(scene.ctx.settings).bureau

    for day, status in ((3, "active"), (29, "active")):  # 3 days late: a visit's would suspend
        clock.set_now(noon(3, day))
        delinquency.run_day(scene.ctx)
        taken = collections_run.take_steps(scene.ctx)
        assert taken == {"reminder_before": 0, "reminder_after": 0, "suspended": 0, "reinstated": 0}
        assert loan_collections.report_overdue(scene.ctx, bureau)["loans_reported"] == 0
        assert w.get("b1", f"/v1/credit-lines/{w.ids['line']}").json()["status"] == status
    assert reports(scene) == [] and steps(w) == set()

    clock.set_now(noon(3, 30))  # 30 days past the 28 February due date
    done = loan_collections.report_overdue(scene.ctx, bureau)
    assert done == {"loans_reported": 1, "loans_retry_later": 0}
    assert reports(scene) == [
        {
            "report_id": f"overdue:{loan}:1",
            "uscc": uscc_of(w, loan),
            "amount_fen": owed(first),
            "days_past_due": 30,
            "reported_on": "2026-03-30",
        }
    ]
    assert steps(w) == {(debt_ids(w)[f"{loan}:1"], "reported")}
    clock.set_now(noon(4, 1))
    delinquency.run_day(scene.ctx)
    assert loan_collections.report_overdue(scene.ctx, bureau)["loans_reported"] == 0
    assert len(reports(scene)) == 1
    # the medical line was never touched, nor told anything
    assert w.get("b1", f"/v1/credit-lines/{w.ids['line']}").json() == line_before
    with unit_of_work(get_engine(w.settings), write=False) as session:
        types = set(session.scalars(select(Event.type)))
    assert not types & {"credit_line.suspended", "repayment.reminder"}
    assert books_agree(w.settings)


def test_a_debt_paid_since_the_delinquency_run_is_not_reported(scene: Scene) -> None:
    w = scene.world
    loan = disbursed_loan(w, disbursed_at=T0)
    first = schedule(w, loan)[0]
    clock.set_now(noon(3, 30))
    delinquency.run_day(scene.ctx)  # at 00:15: the debt is 30 days past due, unpaid
    assert debts(w)[f"{loan}:1"][4] == owed(first)
    repay(w, loan, owed(first) + 2_000, "R1")  # the bank reports the payment at 08:00
    bureau = partner_systems(scene.ctx.settings).bureau
    assert loan_collections.report_overdue(scene.ctx, bureau)["loans_reported"] == 0
    assert reports(scene) == [] and debts(w)[f"{loan}:1"][4] == 0


class _Down:
    """The credit database unreachable for the first `failures` reports."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def report_firm_overdue(self, **report: Any) -> OverdueReceipt:
        self.calls += 1
        if self.calls <= self.failures:
            raise PartnerUnavailable("connection refused")
        return OverdueReceipt(report_id=report["report_id"], status="recorded")


def test_an_unreachable_database_is_asked_again_on_the_next_run(scene: Scene) -> None:
    w = scene.world
    loan = disbursed_loan(w, disbursed_at=T0)
    clock.set_now(noon(3, 30))
    delinquency.run_day(scene.ctx)
    down = _Down(failures=1)
    assert loan_collections.report_overdue(scene.ctx, down) == {
        "loans_reported": 0,
        "loans_retry_later": 1,
    }
    assert steps(w) == set()
    assert loan_collections.report_overdue(scene.ctx, down)["loans_reported"] == 1
    assert loan_collections.report_overdue(scene.ctx, down)["loans_reported"] == 0
    assert down.calls == 2 and steps(w) == {(debt_ids(w)[f"{loan}:1"], "reported")}


def test_the_collections_flow_reports_both_programmes_debts(
    scene: Scene, prefect_harness: None
) -> None:
    w = scene.world
    visit = w.closed_visit("V1", 12_345)  # due 15 February (a visit closed on 31 January)
    loan = disbursed_loan(w, disbursed_at=T0)
    clock.set_now(noon(3, 30))
    delinquency.run_day(scene.ctx)
    done = collect()
    assert (done["reported"], done["loans_reported"], done["suspended"]) == (1, 1, 1)
    ids = {r["report_id"] for r in reports(scene)}
    assert ids == {f"overdue:{visit}", f"overdue:{loan}:1"}
    second = collect()
    assert sum(second.values()) == 0
    assert books_agree(w.settings)


# --- migration 0010 ----------------------------------------------------------------------------


def test_migration_0010_down_and_up_keeps_the_visits_debts(scratch: Any) -> None:
    """Down to 0009 the loans' debts go (they cannot be on no line there) and the
    visits' debts and steps stay; up again, the next run records the loans' anew."""
    migrate.upgrade(scratch)
    clock.set_now(T0)
    try:
        world = make_world(scratch)
        with world.client:
            visit = world.closed_visit("V1", 10_000)  # due 15 February
            loan = disbursed_loan(world, disbursed_at=T0)
        engine = get_engine(scratch)
        today = dt.date(2026, 3, 1)
        with unit_of_work(engine) as session:
            delinquency.run_batch(session, [loan], today, 90, noon(3, 1))
            collections.run_day(session, collections.Policy(), today, noon(3, 1))
        found = {(d[0], d[1]) for d in _all_debts(scratch)}
        assert found == {("visit", visit), ("loan_instalment", f"{loan}:1")}
        kept = steps(world)
        assert {step for _, step in kept} == {"suspended"}  # the visit's, 14 days late

        _downgrade(scratch, "0009_loan_repayment_outstanding")
        assert {(d[0], d[1]) for d in _all_debts(scratch)} == {("visit", visit)}
        assert steps(world) == kept

        migrate.upgrade(scratch)
        with unit_of_work(engine) as session:
            delinquency.run_batch(session, [loan], today, 90, noon(3, 1))
        assert {(d[0], d[1], d[2]) for d in _all_debts(scratch)} == {
            ("visit", visit, world.ids["line"]),
            ("loan_instalment", f"{loan}:1", None),
        }
        assert steps(world) == kept
    finally:
        clock.set_now(None)


def _all_debts(settings: Any) -> list[tuple[str, str, str | None]]:
    with get_engine(settings).connect() as conn:
        rows = conn.execute(text("SELECT source_kind, source_id, credit_line_id FROM debts"))
        return [(kind, source, line) for kind, source, line in rows]


# --- races (PostgreSQL) ----------------------------------------------------------------------


class _Taking:
    """A credit database that takes every report and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def report_firm_overdue(self, **report: Any) -> OverdueReceipt:
        with self.lock:
            self.calls.append(report["report_id"])
        return OverdueReceipt(report_id=report["report_id"], status="recorded")


def test_racing_delinquency_runs_and_a_report_record_each_debt_once(
    pg_settings: Settings,
) -> None:
    ctx = context.use(pg_settings)
    clock.set_now(T0)
    try:
        world = make_world(pg_settings)
        hooks_on(pg_settings)  # the bank and the channel get (recorded) events
        with world.client:
            loans = [disbursed_loan(world, disbursed_at=T0) for _ in range(3)]
        clock.set_now(noon(4, 5))  # instalments 1 (36 days late) and 2 (5 days) past due
        bureau = _Taking()
        barrier = threading.Barrier(3)

        def run(job: Callable[[], Any]) -> Any:
            barrier.wait()
            return job()

        jobs: list[Callable[[], Any]] = [
            lambda: delinquency.run_day(ctx),
            lambda: delinquency.run_day(ctx),
            lambda: loan_collections.report_overdue(ctx, bureau),
        ]
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(run, jobs))
        loan_collections.report_overdue(ctx, bureau)  # whatever the race left

        assert set(debts(world)) == {f"{loan}:{n}" for loan in loans for n in (1, 2)}
        assert sorted(bureau.calls) == sorted(f"overdue:{loan}:1" for loan in loans)
        with unit_of_work(get_engine(pg_settings), write=False) as session:
            overdue = session.scalars(select(Event.payload).where(Event.type == "loan.overdue"))
            # once each, to its bank and its channel
            assert sorted(e["loan_id"] for e in overdue) == sorted(loans * 2)
        assert books_agree(pg_settings)
    finally:
        clock.set_now(None)
