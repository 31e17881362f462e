"""Repayment allocation (CONTRACT.md §4): overdue interest, overdue principal, current
interest, current principal, early principal; the payoff and overpayment."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.errors import Invalid
from hub.loans.allocation import (
    Allocation,
    InstalmentState,
    Overpayment,
    allocate_repayment,
    days_past_due,
    outstanding_principal_fen,
    overdue_principal_fen,
    payoff_fen,
)
from hub.loans.schedule import amortize, annuity_schedule
from integrations.endpoints.problems import status_of

RATE = 1200  # 1% a month
DISBURSED = date(2025, 1, 15)
# 3,000 yuan over 3 months at 12%: payment 1,020.07 yuan.
#   n=1 Feb 15: principal 99,007 interest 3,000
#   n=2 Mar 15: principal 99,997 interest 2,010
#   n=3 Apr 15: principal 100,996 interest 1,010
FEB15, MAR15, APR15 = date(2025, 2, 15), date(2025, 3, 15), date(2025, 4, 15)


def loan(principal: int = 300_000, months: int = 3) -> list[InstalmentState]:
    return [
        InstalmentState.scheduled(i) for i in annuity_schedule(principal, RATE, months, DISBURSED)
    ]


def parts(a: Allocation) -> tuple[int, int, int, int, int]:
    return (
        a.overdue_interest_fen,
        a.overdue_principal_fen,
        a.current_interest_fen,
        a.current_principal_fen,
        a.early_principal_fen,
    )


def paid(a: Allocation) -> list[int]:
    return [i.paid_fen for i in a.instalments]


def test_the_instalment_paid_on_its_due_date_is_on_time() -> None:
    a = allocate_repayment(loan(), 102_007, FEB15, RATE)
    assert parts(a) == (0, 0, 3_000, 99_007, 0)
    assert a.paid_by_instalment == {1: 102_007}
    assert paid(a) == [102_007, 0, 0]
    assert a.instalments[1:] == tuple(loan()[1:])  # the rest of the schedule unchanged


def test_a_small_payment_goes_to_the_current_interest_first() -> None:
    a = allocate_repayment(loan(), 2_000, date(2025, 2, 1), RATE)
    assert parts(a) == (0, 0, 2_000, 0, 0)
    b = allocate_repayment(a.instalments, 1_500, date(2025, 2, 10), RATE)
    assert parts(b) == (0, 0, 1_000, 500, 0)
    assert paid(b) == [3_500, 0, 0]


def test_overdue_interest_then_overdue_principal_then_current() -> None:
    # Nothing paid by Mar 20: n=1 and n=2 are overdue, n=3 is current.
    state = loan()
    assert days_past_due(state, date(2025, 3, 20)) == 33  # since Feb 15
    a = allocate_repayment(state, 3_000 + 2_010 + 99_007 + 50_000, date(2025, 3, 20), RATE)
    assert parts(a) == (5_010, 149_007, 0, 0, 0)  # all overdue interest before any principal
    assert paid(a) == [102_007, 52_010, 0]
    assert a.paid_by_instalment == {1: 102_007, 2: 52_010}
    assert days_past_due(a.instalments, date(2025, 3, 20)) == 5  # since Mar 15
    # Then the rest of n=2's principal, n=3's interest, part of its principal.
    b = allocate_repayment(a.instalments, 49_997 + 1_010 + 10, date(2025, 3, 21), RATE)
    assert parts(b) == (0, 49_997, 1_010, 10, 0)
    assert days_past_due(b.instalments, date(2025, 3, 21)) == 0


def test_overdue_interest_is_paid_oldest_first_and_may_run_out() -> None:
    a = allocate_repayment(loan(), 4_000, date(2025, 4, 1), RATE)
    assert parts(a) == (4_000, 0, 0, 0, 0)
    assert paid(a) == [3_000, 1_000, 0]


def test_a_partly_paid_instalment_that_falls_due_keeps_its_split() -> None:
    a = allocate_repayment(loan(), 3_000 + 7, date(2025, 2, 1), RATE)  # interest, 7 principal
    b = allocate_repayment(a.instalments, 10, date(2025, 2, 20), RATE)  # n=1 now overdue
    assert parts(b) == (0, 10, 0, 0, 0)
    assert b.instalments[0].unpaid_principal_fen == 99_007 - 17


def test_early_principal_lowers_the_later_payments() -> None:
    a = allocate_repayment(loan(), 150_000, date(2025, 1, 20), RATE)
    assert parts(a) == (0, 0, 3_000, 99_007, 47_993)
    assert a.paid_by_instalment == {1: 150_000}
    first, second, third = a.instalments
    # The early principal is part of the instalment it was paid with...
    assert (first.principal_fen, first.interest_fen, first.paid_fen) == (147_000, 3_000, 150_000)
    # ...and the rest is an annuity again on what is left, the same dates and rate.
    left = 300_000 - 147_000
    assert [
        (second.principal_fen, second.interest_fen),
        (third.principal_fen, third.interest_fen),
    ] == (amortize(left, RATE, 2))
    assert second.interest_fen == 1_530  # 1% of 153,000
    assert (second.due_date, third.due_date) == (MAR15, APR15)
    assert sum(i.principal_fen for i in a.instalments) == 300_000
    assert outstanding_principal_fen(a.instalments) == left


def test_paying_more_once_the_instalment_is_paid_is_all_early_principal() -> None:
    a = allocate_repayment(loan(), 102_007, date(2025, 2, 10), RATE)
    b = allocate_repayment(a.instalments, 10_000, date(2025, 2, 12), RATE)
    assert parts(b) == (0, 0, 0, 0, 10_000)
    assert b.paid_by_instalment == {1: 10_000}
    assert b.instalments[0].principal_fen == 99_007 + 10_000
    assert b.instalments[0].paid_fen == 112_007


def test_the_exact_payoff_repays_the_loan() -> None:
    state = loan()
    on = date(2025, 1, 20)
    # What is due (the running month's interest) and all the principal.
    assert payoff_fen(state, on) == 300_000 + 3_000
    a = allocate_repayment(state, 303_000, on, RATE)
    assert parts(a) == (0, 0, 3_000, 99_007, 300_000 - 99_007)
    assert outstanding_principal_fen(a.instalments) == 0
    assert [(i.principal_fen, i.interest_fen) for i in a.instalments[1:]] == [(0, 0), (0, 0)]
    assert payoff_fen(a.instalments, on) == 0
    with pytest.raises(Overpayment):
        allocate_repayment(a.instalments, 1, on, RATE)


def test_payoff_with_arrears_counts_all_that_is_due() -> None:
    state = loan()
    on = date(2025, 3, 16)  # n=1, n=2 overdue; n=3 current
    assert payoff_fen(state, on) == 300_000 + 3_000 + 2_010 + 1_010
    a = allocate_repayment(state, payoff_fen(state, on), on, RATE)
    assert parts(a) == (5_010, 199_004, 1_010, 100_996, 0)
    assert outstanding_principal_fen(a.instalments) == 0


def test_after_the_last_due_date_everything_is_overdue() -> None:
    state = loan()
    on = date(2025, 5, 1)
    assert overdue_principal_fen(state, on) == 300_000
    assert payoff_fen(state, on) == 306_020
    a = allocate_repayment(state, 306_020, on, RATE)
    assert parts(a) == (6_020, 300_000, 0, 0, 0)
    assert days_past_due(state, on) == (on - FEB15).days


def test_more_than_the_payoff_is_an_overpayment() -> None:
    state = loan()
    with pytest.raises(Overpayment) as caught:
        allocate_repayment(state, 303_001, date(2025, 1, 20), RATE)
    error = caught.value
    assert error.code == "overpayment" and isinstance(error, Invalid)
    assert status_of(error) == 422
    assert (error.amount_fen, error.payoff_fen) == (303_001, 303_000)
    assert [e.field for e in error.errors] == ["amount_fen"]
    assert state == loan()  # nothing was changed


def test_refuses_nothing_and_out_of_order_repayments() -> None:
    with pytest.raises(ValueError):
        allocate_repayment(loan(), 0, FEB15, RATE)
    paid_in_march = allocate_repayment(loan(), 102_007 + 102_007, MAR15, RATE).instalments
    with pytest.raises(ValueError, match="date order"):
        allocate_repayment(paid_in_march, 100, date(2025, 1, 20), RATE)


def test_an_instalment_cannot_be_paid_more_than_it_asks() -> None:
    with pytest.raises(ValueError):
        InstalmentState(1, FEB15, 100, 10, paid_fen=111)
    with pytest.raises(ValueError):
        InstalmentState(1, FEB15, -1, 10)


@settings(max_examples=60, deadline=None)
@given(
    principal=st.integers(1, 10**9),
    bps=st.integers(0, 3600),
    months=st.integers(1, 24),
    payments=st.lists(
        st.tuples(st.integers(0, 40), st.integers(1, 10**9), st.booleans()), max_size=12
    ),
)
def test_allocations_keep_the_books(
    principal: int, bps: int, months: int, payments: list[tuple[int, int, bool]]
) -> None:
    """Random repayments on random dates: every fen lands once, the loan stays whole."""
    state = [
        InstalmentState.scheduled(i) for i in annuity_schedule(principal, bps, months, DISBURSED)
    ]
    on = DISBURSED
    for days_later, amount, pay_off in payments:
        on += timedelta(days=days_later)
        payoff = payoff_fen(state, on)
        if payoff == 0:
            break
        amount = payoff if pay_off else min(amount, payoff)
        before = outstanding_principal_fen(state)
        a = allocate_repayment(state, amount, on, bps)
        assert a.total_fen == amount == sum(a.paid_by_instalment.values())
        assert all(part >= 0 for part in parts(a))
        principal_paid = a.overdue_principal_fen + a.current_principal_fen + a.early_principal_fen
        assert outstanding_principal_fen(a.instalments) == before - principal_paid
        assert sum(i.principal_fen for i in a.instalments) == principal
        assert [i.n for i in a.instalments] == list(range(1, months + 1))
        for old, new in zip(state, a.instalments, strict=True):
            assert new.due_date == old.due_date
            assert new.paid_fen - old.paid_fen == a.paid_by_instalment.get(old.n, 0)
        assert all(0 <= i.paid_fen <= i.principal_fen + i.interest_fen for i in a.instalments)
        # Instalments not begun are an annuity on the principal after them: interest on it.
        ahead = 0
        for i in reversed(a.instalments):
            if i.paid_fen:
                break
            ahead += i.principal_fen
            assert i.interest_fen == (2 * ahead * bps + 120_000) // 240_000
        if pay_off:
            assert outstanding_principal_fen(a.instalments) == 0
            assert payoff_fen(a.instalments, on) == 0
        with pytest.raises(Overpayment):
            allocate_repayment(state, payoff + 1, on, bps)
        state = list(a.instalments)
