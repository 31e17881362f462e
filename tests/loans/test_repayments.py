"""Loan repayments (CONTRACT.md §4 Loans) through the real app, on SQLite and
PostgreSQL: the allocation order, overpayment, replays, early payoff closing the
loan, the fund's share after a claim, racing repayments, and the books."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub import books as hub_books
from hub import context
from hub.core import clock, ledger
from hub.core.db import get_engine, unit_of_work
from hub.loans import delinquency
from hub.settings import Settings
from models.loans.tables import Loan, LoanRepayment
from tests.books import books_agree
from tests.conftest import World, make_world
from tests.live import live_server
from tests.loans.factory import approved_loan, defaulted_loan, disbursed_loan
from tests.racing import race_posts

T0 = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)  # 12:00 on 31 January in Shanghai
# The schedule of 1,200,000 fen at 600 bps over 12 months (test_disbursement.py):
# each month 103,280 fen; the first 6,000 interest + 97,280 principal, due 28 February;
# the second 5,514 + 97,766, due 31 March.


def shanghai_noon(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 4, 0, tzinfo=UTC)


def repay(
    world: World, loan_id: str, amount: int, txn: str, paid_at: datetime | None = None
) -> Any:
    body = {
        "amount_fen": amount,
        "bank_txn_id": txn,
        "paid_at": (paid_at or clock.now()).isoformat(),
    }
    return world.post("b1", f"/v1/loans/{loan_id}/repayments", body)


def parts(answer: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        answer["overdue_interest_fen"],
        answer["overdue_principal_fen"],
        answer["current_interest_fen"],
        answer["current_principal_fen"],
        answer["early_principal_fen"],
    )


def loan(world: World, loan_id: str) -> Any:
    return world.get("b1", f"/v1/loans/{loan_id}").json()


@pytest.fixture
def active(world: World) -> str:
    clock.set_now(T0)
    return disbursed_loan(world, amount_fen=1_200_000, annual_rate_bps=600, term_months=12)


def test_an_instalment_paid_on_its_due_date_is_current(world: World, active: str) -> None:
    clock.set_now(shanghai_noon(2, 28))
    r = repay(world, active, 103_280, "R1")
    assert r.status_code == 201, r.text
    assert r.json()["repayment_id"].startswith("lrp_") and r.json()["loan_id"] == active
    assert parts(r.json()) == (0, 0, 6_000, 97_280, 0)
    assert r.json()["outstanding_principal_fen"] == 1_200_000 - 97_280
    after = loan(world, active)
    assert after["schedule"][0]["paid_fen"] == 103_280 and after["days_past_due"] == 0
    assert after["outstanding_principal_fen"] == 1_102_720 and after["status"] == "active"
    tb = {
        a["account"]: a["balance_fen"]
        for a in world.get("op", "/v1/ledger/trial-balance").json()["accounts"]
    }
    b1 = world.ids["b1"]
    assert tb[f"bank:{b1}:loan_receipts"] == 103_280
    assert tb[f"bank:{b1}:interest_earned"] == -6_000
    assert tb[f"loan:{active}:principal"] == 1_102_720
    assert books_agree(world.settings)


def test_overdue_interest_then_overdue_principal_then_current_then_early(
    world: World, active: str
) -> None:
    clock.set_now(shanghai_noon(3, 5))  # the first instalment is 5 days late
    assert loan(world, active)["days_past_due"] == 5
    first = repay(world, active, 3_000, "R1")  # only part of the overdue interest
    assert parts(first.json()) == (3_000, 0, 0, 0, 0)
    assert loan(world, active)["days_past_due"] == 5
    second = repay(world, active, 3_000 + 97_280 + 5_514 + 1_206, "R2")
    assert parts(second.json()) == (3_000, 97_280, 5_514, 1_206, 0)
    assert loan(world, active)["days_past_due"] == 0
    third = repay(world, active, 96_560 + 10_000, "R3")  # the rest of March, then early
    assert parts(third.json()) == (0, 0, 0, 96_560, 10_000)
    after = loan(world, active)
    assert after["outstanding_principal_fen"] == 1_200_000 - 97_280 - 97_766 - 10_000
    # Early principal lowers the later payments over the same dates (allocation.py).
    assert after["schedule"][1]["principal_fen"] == 97_766 + 10_000
    assert after["schedule"][2]["interest_fen"] == 4_975  # 994,954 × 0.005 = 4,974.77
    assert books_agree(world.settings)


def test_a_payment_after_midnight_in_shanghai_counts_on_that_business_date(
    world: World, active: str
) -> None:
    clock.set_now(shanghai_noon(3, 1))
    paid_at = datetime(2026, 2, 28, 16, 30, tzinfo=UTC)  # 00:30 on 1 March in Shanghai
    r = repay(world, active, 6_000, "R1", paid_at)
    assert parts(r.json()) == (6_000, 0, 0, 0, 0)  # the first instalment was due the day before
    with unit_of_work(get_engine(world.settings)) as session:
        stored = session.scalars(select(LoanRepayment)).one()
        assert stored.paid_on == date(2026, 3, 1)  # the subsidy's month comes from it


def test_a_late_report_is_applied_as_of_the_latest_date_applied(world: World, active: str) -> None:
    clock.set_now(shanghai_noon(3, 31))
    on_time = repay(world, active, 2 * 103_280, "R1")  # February (late) and March
    assert parts(on_time.json()) == (6_000, 97_280, 5_514, 97_766, 0)
    # Reported now, paid on 20 February: as of then, February was the current month
    # and March is paid already; applied as of 31 March, it goes to April, early.
    late = repay(world, active, 10_000, "R2", shanghai_noon(2, 20))
    assert late.status_code == 201, late.text
    assert parts(late.json()) == (0, 0, 0, 0, 10_000)
    with unit_of_work(get_engine(world.settings)) as session:
        paid_on = session.scalars(select(LoanRepayment.paid_on).order_by(LoanRepayment.paid_on))
        assert list(paid_on) == [date(2026, 2, 20), date(2026, 3, 31)]  # its own date
    assert books_agree(world.settings)


def test_early_payoff_closes_the_loan_and_more_is_an_overpayment(world: World, active: str) -> None:
    clock.set_now(shanghai_noon(2, 10))
    payoff = 6_000 + 1_200_000  # the running month's interest, and all the principal
    over = repay(world, active, payoff + 1, "R0")
    assert over.status_code == 422 and over.json()["code"] == "overpayment"
    assert over.json()["errors"][0]["field"] == "amount_fen"
    assert loan(world, active)["outstanding_principal_fen"] == 1_200_000  # nothing happened
    r = repay(world, active, payoff, "R1")
    assert r.status_code == 201
    assert parts(r.json()) == (0, 0, 6_000, 97_280, 1_200_000 - 97_280)
    assert r.json()["outstanding_principal_fen"] == 0
    after = loan(world, active)
    assert after["status"] == "closed" and after["outstanding_principal_fen"] == 0
    assert all(s["paid_fen"] == s["principal_fen"] + s["interest_fen"] for s in after["schedule"])
    assert sum(s["principal_fen"] for s in after["schedule"]) == 1_200_000
    closed = repay(world, active, 1, "R2")
    assert closed.status_code == 409 and closed.json()["code"] == "loan_closed"
    assert books_agree(world.settings)


def test_the_same_reference_replays_what_it_answered(world: World, active: str) -> None:
    clock.set_now(shanghai_noon(2, 20))
    first = repay(world, active, 50_000, "R1")
    repay(world, active, 50_000, "R2")
    again = repay(world, active, 50_000, "R1")  # another Idempotency-Key, the same report
    assert (again.status_code, again.json()) == (201, first.json())  # its own outstanding
    clash = repay(world, active, 50_001, "R1")
    assert clash.status_code == 409 and clash.json()["code"] == "duplicate_reference"
    assert first.json()["repayment_id"] in clash.json()["detail"]
    assert loan(world, active)["schedule"][0]["paid_fen"] == 100_000  # twice, not three times
    assert books_agree(world.settings)


def test_repayments_the_loan_cannot_take_are_refused(world: World, active: str) -> None:
    clock.set_now(shanghai_noon(2, 20))
    approved = approved_loan(world)
    not_out = repay(world, approved, 1_000, "R1")
    assert not_out.status_code == 409 and not_out.json()["code"] == "loan_not_disbursed"
    body = {"amount_fen": 1_000, "bank_txn_id": "R2", "paid_at": clock.now().isoformat()}
    assert world.post("b2", f"/v1/loans/{active}/repayments", body).status_code == 404
    assert world.post("ch", f"/v1/loans/{active}/repayments", body).status_code == 403
    future = repay(world, active, 1_000, "R3", clock.now() + timedelta(minutes=6))
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "paid_at"
    before = repay(world, active, 1_000, "R4", T0 - timedelta(days=1))
    assert before.status_code == 422 and before.json()["errors"][0]["field"] == "paid_at"
    assert (
        world.post("b1", f"/v1/loans/{active}/repayments", {**body, "amount_fen": 0}).status_code
        == 422
    )
    assert loan(world, active)["outstanding_principal_fen"] == 1_200_000
    assert books_agree(world.settings)


def test_repaid_arrears_make_an_overdue_loan_active_but_not_a_defaulted_one(
    world: World, active: str
) -> None:
    ctx = context.use(world.settings)
    clock.set_now(shanghai_noon(3, 2))
    assert delinquency.run_day(ctx)["overdue"] == 1
    repay(world, active, 103_280, "R1")
    assert loan(world, active)["status"] == "active"
    clock.set_now(shanghai_noon(6, 30))  # 31 March + 91 days: defaulted
    assert delinquency.run_day(ctx)["defaulted"] == 1
    arrears = repay(world, active, 3 * 103_280, "R2")  # March, April and May
    assert parts(arrears.json())[:2] == (5_514 + 5_025 + 4_533, 97_766 + 98_255 + 98_747)
    after = loan(world, active)
    assert after["days_past_due"] == 0 and after["status"] == "defaulted"  # until closed
    june, *later = after["schedule"][4:]
    payoff = june["principal_fen"] + june["interest_fen"] + sum(s["principal_fen"] for s in later)
    assert repay(world, active, payoff, "R3").json()["outstanding_principal_fen"] == 0
    assert loan(world, active)["status"] == "closed"
    assert books_agree(world.settings)


def test_after_a_claim_the_fund_shares_the_principal_recovered(world: World) -> None:
    clock.set_now(shanghai_noon(7, 1))
    loan_id = defaulted_loan(world, amount_fen=1_200_000)  # nothing repaid
    deposit = {"amount_fen": 10_000_000, "reference": "D1"}
    assert world.post("op", "/v1/risk-compensation/fund/deposits", deposit).status_code == 201
    claim = world.post("b1", "/v1/risk-compensation/claims", {"loan_id": loan_id})
    assert claim.status_code == 201 and claim.json()["amount_fen"] == 600_000  # half of it
    view = loan(world, loan_id)
    overdue_interest = sum(
        s["interest_fen"] for s in view["schedule"] if s["due_date"] < "2026-07-01"
    )
    r = repay(world, loan_id, overdue_interest + 20_000, "R1")
    assert parts(r.json())[:2] == (overdue_interest, 20_000)
    with unit_of_work(get_engine(world.settings)) as session:
        stored = session.scalars(select(LoanRepayment)).one()
        assert stored.fund_share_fen == 10_000  # half the principal, none of the interest
    fund = world.get("op", "/v1/risk-compensation/fund").json()
    assert fund["recovered_fen"] == 10_000
    assert fund["balance_fen"] == 10_000_000 - 600_000 + 10_000
    assert books_agree(world.settings)


@pytest.mark.pg
def test_racing_repayments_on_one_loan_are_applied_one_after_another(
    pg_settings: Settings,
) -> None:
    clock.set_now(None)
    world = make_world(pg_settings)
    with world.client:
        loan_id = disbursed_loan(world, disbursed_at=clock.now() - timedelta(hours=1))
        paid_at = clock.now().isoformat()
        racers = 16
        with live_server(pg_settings) as base:
            responses = race_posts(
                base,
                [
                    (
                        f"/v1/loans/{loan_id}/repayments",
                        {"amount_fen": 10_000, "bank_txn_id": f"R{i}", "paid_at": paid_at},
                        world.headers("b1", uuid.uuid4().hex),
                    )
                    for i in range(racers)
                ],
            )
        assert [r.status_code for r in responses] == [201] * racers
        after = loan(world, loan_id)
        assert sum(s["paid_fen"] for s in after["schedule"]) == racers * 10_000
        outstanding = sorted(r.json()["outstanding_principal_fen"] for r in responses)
        assert len(set(outstanding)) == racers  # each saw the one before it
        assert after["outstanding_principal_fen"] == outstanding[0]
        assert books_agree(pg_settings)


def test_the_books_see_a_loan_that_disagrees_with_its_rows(world: World, active: str) -> None:
    clock.set_now(shanghai_noon(2, 28))
    repay(world, active, 103_280, "R1")
    with unit_of_work(get_engine(world.settings)) as session:
        assert hub_books.discrepancies(session) == []
        stored = session.get(Loan, active)
        assert stored is not None
        stored.outstanding_principal_fen += 1  # a row moved without its entry
        ledger.transfer(session, "stray", "x", "loan:loan_x:principal", "bank:b:lent", 5, T0)
    with unit_of_work(get_engine(world.settings), write=False) as session:
        found = {d.subject for d in hub_books.discrepancies(session)}
    assert found == {
        f"loan:{active}:principal",  # the ledger says one fen less than the loan
        f"loans[{active}].outstanding_principal_fen",  # twice: instalments and repayments
        "loan:loan_x:principal",  # no loan stands behind it
        "bank:b:lent",
    }
