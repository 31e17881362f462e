"""Loan delinquency (CONTRACT.md §4 Loans) with the clock moved, on SQLite and
PostgreSQL: overdue at 1 day past due, defaulted at 90, each announced once to
the loan's channel and bank with the loan as GET returns it; a second run on the
same day changes nothing; the flow's artifact shows the loans by status in yuan
and the overdue ratio."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flows.loans.delinquency import check_delinquency
from hub import context
from hub.context import HubContext
from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.loans import delinquency
from hub.loans.delinquency import status_for
from models.core.tables import Event, Partner
from models.loans.tables import Loan, LoanStatus
from tests.books import books_agree
from tests.conftest import World, latest_artifact
from tests.crashing import kill_points, run_flow_process
from tests.loans.factory import defaulted_loan, disbursed_loan

T0 = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)  # 12:00 on 31 January; first due 28 February


def noon(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture
def ctx(world: World) -> Iterator[HubContext]:
    """The hub context of the world, with webhooks for the bank and the channel."""
    with unit_of_work(get_engine(world.settings)) as session:
        for who in ("b1", "ch"):
            session.get(Partner, world.ids[who]).webhook_url = "http://127.0.0.1:9/hook"  # type: ignore[union-attr]
    yield context.use(world.settings)


def events(world: World, type_: str) -> list[tuple[str, Any]]:
    with unit_of_work(get_engine(world.settings)) as session:
        rows = session.execute(
            select(Event.partner_id, Event.payload).where(Event.type == type_).order_by(Event.id)
        )
        return [(partner_id, payload) for partner_id, payload in rows]


def stored(world: World, loan_id: str) -> Loan:
    with unit_of_work(get_engine(world.settings)) as session:
        loan = session.get(Loan, loan_id)
        assert loan is not None
        session.expunge(loan)
        return loan


@pytest.mark.parametrize(
    ("current", "days", "expected"),
    [
        (LoanStatus.ACTIVE, 0, LoanStatus.ACTIVE),
        (LoanStatus.ACTIVE, 1, LoanStatus.OVERDUE),
        (LoanStatus.OVERDUE, 89, LoanStatus.OVERDUE),
        (LoanStatus.OVERDUE, 90, LoanStatus.DEFAULTED),
        (LoanStatus.ACTIVE, 120, LoanStatus.DEFAULTED),
        (LoanStatus.OVERDUE, 0, LoanStatus.ACTIVE),
        (LoanStatus.DEFAULTED, 0, LoanStatus.DEFAULTED),  # ends only when closed
    ],
)
def test_the_status_for_days_past_due(current: LoanStatus, days: int, expected: LoanStatus) -> None:
    assert status_for(current, days, 90) == expected


def test_overdue_then_defaulted_each_announced_once(world: World, ctx: HubContext) -> None:
    clock.set_now(T0)
    loan_id = disbursed_loan(world)
    clock.set_now(noon(2, 28))  # due today: on time
    assert delinquency.run_day(ctx) == {
        "checked": 1,
        "overdue": 0,
        "defaulted": 0,
        "back_to_active": 0,
    }
    clock.set_now(noon(3, 1))
    first, second = delinquency.run_day(ctx), delinquency.run_day(ctx)
    assert (first["overdue"], second["overdue"]) == (1, 0)
    overdue = events(world, "loan.overdue")
    assert {partner for partner, _ in overdue} == {world.ids["b1"], world.ids["ch"]}
    data = overdue[0][1]
    assert data == world.get("b1", f"/v1/loans/{loan_id}").json()  # the loan as GET returns it
    assert (data["status"], data["days_past_due"]) == ("overdue", 1)
    assert stored(world, loan_id).days_past_due == 1
    clock.set_now(noon(5, 28))  # 89 days past 28 February
    assert delinquency.run_day(ctx)["defaulted"] == 0
    assert stored(world, loan_id).days_past_due == 89
    clock.set_now(noon(5, 29))  # 90 days
    assert delinquency.run_day(ctx)["defaulted"] == 1
    assert delinquency.run_day(ctx)["defaulted"] == 0
    loan = stored(world, loan_id)
    assert loan.status == LoanStatus.DEFAULTED and loan.defaulted_at == noon(5, 29)
    defaulted = events(world, "loan.defaulted")
    assert len(defaulted) == 2 and defaulted[0][1]["status"] == "defaulted"
    assert defaulted[0][1]["days_past_due"] == 90
    assert len(events(world, "loan.overdue")) == 2  # one each for the bank and the channel
    assert books_agree(world.settings)


def test_a_loan_found_past_90_days_is_defaulted_at_once(world: World, ctx: HubContext) -> None:
    clock.set_now(T0)
    loan_id = disbursed_loan(world)
    clock.set_now(noon(7, 1))
    assert delinquency.run_day(ctx)["defaulted"] == 1
    assert stored(world, loan_id).status == LoanStatus.DEFAULTED
    assert events(world, "loan.overdue") == []  # it went straight past: one event
    assert len(events(world, "loan.defaulted")) == 2


def test_the_factory_makes_a_defaulted_loan(world: World, ctx: HubContext) -> None:
    clock.set_now(noon(7, 1))
    loan_id = defaulted_loan(world, amount_fen=500_000)
    view = world.get("ch", f"/v1/loans/{loan_id}").json()
    assert view["status"] == "defaulted" and view["days_past_due"] >= 90
    assert view["outstanding_principal_fen"] == 500_000
    assert delinquency.run_day(ctx)["defaulted"] == 0  # already moved: nothing more
    assert books_agree(world.settings)


def test_a_loan_paid_up_is_active_again(world: World, ctx: HubContext) -> None:
    clock.set_now(T0)
    loan_id = disbursed_loan(world)
    clock.set_now(noon(3, 3))
    delinquency.run_day(ctx)
    # The bank reports a repayment made on 28 February, late: on its date it was on time.
    body = {"amount_fen": 103_280, "bank_txn_id": "R1", "paid_at": noon(2, 28).isoformat()}
    assert world.post("b1", f"/v1/loans/{loan_id}/repayments", body).status_code == 201
    assert stored(world, loan_id).status == LoanStatus.ACTIVE
    assert delinquency.run_day(ctx)["overdue"] == 0
    clock.set_now(noon(4, 1))  # the March instalment is a day late now
    assert delinquency.run_day(ctx)["overdue"] == 1
    clock.set_now(noon(3, 30))  # an operator re-runs a day on which it was not late
    assert delinquency.run_day(ctx)["back_to_active"] == 1
    assert stored(world, loan_id).status == LoanStatus.ACTIVE
    assert books_agree(world.settings)


def test_the_flow_leaves_loans_by_status_and_the_overdue_ratio(
    world: World, ctx: HubContext, prefect_harness: None
) -> None:
    clock.set_now(T0)
    late = disbursed_loan(world, amount_fen=300_000)
    clock.set_now(noon(2, 15))
    disbursed_loan(world, amount_fen=900_000)  # first due 15 March
    clock.set_now(noon(3, 2))
    assert check_delinquency()["overdue"] == 1
    assert check_delinquency()["overdue"] == 0  # twice a day: nothing more
    assert stored(world, late).status == LoanStatus.OVERDUE
    markdown = latest_artifact("loan-delinquency-summary")
    assert "## Loan delinquency, 2026-03-02" in markdown
    assert "| overdue | 1 | 3,000.00 |" in markdown
    assert "| active | 1 | 9,000.00 |" in markdown
    assert "**25.00%**" in markdown and "3,000.00 of 12,000.00 yuan" in markdown
    check_delinquency(as_of="2026-03-01")  # re-run a past day: as of that date
    assert "2026-03-01" in latest_artifact("loan-delinquency-summary")
    assert books_agree(world.settings)


DELINQUENCY_COMMITS = 3  # of a clean run of each day below (tests/crash_child.py)
DAYS = [(3, 1), (3, 16), (5, 29)]  # the early loans overdue, the late ones, the early defaulted


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_kill_9_at_seeded_points_then_a_rerun_moves_and_announces_each_loan_once(
    world: World, ctx: HubContext, prefect_harness: None, tmp_path: Path
) -> None:
    """The delinquency flow's own process is killed (SIGKILL) before a seeded commit
    of a day that moves loans, then rerun: each transition announced once."""
    clock.set_now(T0)
    early = [disbursed_loan(world, amount_fen=100_000 * (n + 1)) for n in range(3)]
    clock.set_now(noon(2, 15))
    late = [disbursed_loan(world, amount_fen=200_000 * (n + 1)) for n in range(2)]  # due 15 March
    for (month, day), kill_at in zip(
        DAYS, kill_points(seed=14, trials=3, commits=DELINQUENCY_COMMITS), strict=True
    ):
        clock.set_now(noon(month, day))
        run = run_flow_process(world.settings, "delinquency", kill_at, [], tmp_path / "clock")
        assert run.killed, f"the run passed only {run.points} points"
        assert books_agree(world.settings)
        check_delinquency()
        assert books_agree(world.settings)
    assert {stored(world, i).status for i in early} == {LoanStatus.DEFAULTED}
    assert {stored(world, i).status for i in late} == {LoanStatus.OVERDUE}
    to_each = sorted([world.ids["b1"], world.ids["ch"]])  # the loan's bank and channel
    for type_, loans in (("loan.overdue", early + late), ("loan.defaulted", early)):
        told: dict[str, list[str]] = {}
        for partner_id, data in events(world, type_):
            told.setdefault(data["loan_id"], []).append(partner_id)
        assert {loan: sorted(p) for loan, p in told.items()} == dict.fromkeys(loans, to_each)
