"""The annuity schedule (CONTRACT.md §4): exact principal, half-up fen, due dates."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_DOWN, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.loans.schedule import annuity_schedule, due_date, interest_fen, payment_fen


def _on_or_before_month_end(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


# Days 1..31 drawn evenly, so the 29th-31st come often (and meet short months).
disbursement_dates = st.builds(
    _on_or_before_month_end, st.integers(2000, 2090), st.integers(1, 12), st.integers(1, 31)
)


def half_up_interest(outstanding: int, bps: int) -> int:
    """outstanding × bps / 120000 rounded half up, in integers only (the oracle)."""
    return (2 * outstanding * bps + 120_000) // 240_000


def test_a_known_loan() -> None:
    # 100,000 yuan at 4.35% over 12 months: 8,530.99 yuan a month, as banks quote it.
    schedule = annuity_schedule(10_000_000, 435, 12, date(2024, 1, 31))
    assert payment_fen(10_000_000, 435, 12) == 853_099
    assert schedule[0] == (1, date(2024, 2, 29), 816_849, 36_250)
    assert all(s.principal_fen + s.interest_fen == 853_099 for s in schedule[:-1])
    assert schedule[-1] == (12, date(2025, 1, 31), 850_020, 3_081)  # the remainder
    assert sum(s.principal_fen for s in schedule) == 10_000_000


def test_due_on_the_day_of_the_month_or_its_last_day() -> None:
    dates = [s.due_date for s in annuity_schedule(1_000_000, 600, 14, date(2025, 1, 31))]
    assert dates[:4] == [date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30), date(2025, 5, 31)]
    assert dates[11] == date(2026, 1, 31)  # across the year
    assert dates[12] == date(2026, 2, 28)
    assert due_date(date(2023, 3, 29), 11) == date(2024, 2, 29)  # a leap February
    assert due_date(date(2023, 3, 30), 11) == date(2024, 2, 29)
    assert due_date(date(2025, 12, 15), 1) == date(2026, 1, 15)


def test_interest_free_loan() -> None:
    schedule = annuity_schedule(1_000, 0, 3, date(2025, 5, 10))
    assert [(s.principal_fen, s.interest_fen) for s in schedule] == [(333, 0), (333, 0), (334, 0)]
    # 2.5 fen a month rounds up to 3: the last takes what is left.
    halves = annuity_schedule(10, 0, 4, date(2025, 5, 10))
    assert [s.principal_fen for s in halves] == [3, 3, 3, 1]


def test_a_tiny_loan_is_repaid_early_rather_than_below_zero() -> None:
    # 4 fen over 6 months: the payment rounds up to 1 fen, so it is repaid by month 4.
    schedule = annuity_schedule(4, 0, 6, date(2025, 3, 15))
    assert [s.principal_fen for s in schedule] == [1, 1, 1, 1, 0, 0]


def test_interest_rounds_half_up_whatever_the_decimal_context() -> None:
    assert interest_fen(60_000, 1) == 1  # exactly half a fen
    assert interest_fen(59_999, 1) == 0
    assert interest_fen(180_000, 1) == 2  # 1.5 fen
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = 3, ROUND_DOWN
        assert interest_fen(60_000, 1) == 1
        assert payment_fen(10_000_000, 435, 12) == 853_099
        assert interest_fen(10**12, 3600) == half_up_interest(10**12, 3600)


@pytest.mark.parametrize(
    ("principal", "bps", "months"),
    [(0, 100, 12), (100, -1, 12), (100, 100, 0)],
)
def test_refuses_what_is_not_a_loan(principal: int, bps: int, months: int) -> None:
    with pytest.raises(ValueError):
        annuity_schedule(principal, bps, months, date(2025, 1, 1))


@given(
    principal=st.integers(1, 10**10),
    bps=st.integers(0, 3600),
    months=st.integers(1, 360),
    disbursed_on=disbursement_dates,
)
def test_schedule_properties(principal: int, bps: int, months: int, disbursed_on: date) -> None:
    schedule = annuity_schedule(principal, bps, months, disbursed_on)
    payment = payment_fen(principal, bps, months)
    assert [s.n for s in schedule] == list(range(1, months + 1))
    assert sum(s.principal_fen for s in schedule) == principal
    outstanding = principal
    for s in schedule:
        assert s.principal_fen >= 0 and s.interest_fen >= 0
        assert s.interest_fen == half_up_interest(outstanding, bps)
        if s.n < months:
            # Equal payments, unless the loan is already repaid (a few fen over many months).
            assert s.principal_fen + s.interest_fen == payment or s.principal_fen == outstanding
        assert s.due_date == due_date(disbursed_on, s.n)
        outstanding -= s.principal_fen
    assert outstanding == 0


@given(disbursed_on=disbursement_dates, n=st.integers(1, 360))
def test_due_dates_follow_the_day_of_disbursement(disbursed_on: date, n: int) -> None:
    due = due_date(disbursed_on, n)
    total = disbursed_on.month - 1 + n
    assert (due.year, due.month) == (disbursed_on.year + total // 12, total % 12 + 1)
    if due.day != disbursed_on.day:  # only in a month too short, then on its last day
        assert due.day < disbursed_on.day
        assert (due + timedelta(days=1)).day == 1
    assert due_date(disbursed_on, n + 1) > due
