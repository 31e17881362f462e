"""A loan's repayment schedule: monthly equal total payments (annuity), CONTRACT.md §4.

Fixed when the bank reports the payout. With the monthly rate
``r = annual_rate_bps / 120000`` and ``k`` instalments left on a principal ``P``:

- the payment is ``A = P·r / (1 - (1 + r)^-k)`` (``P / k`` at rate 0), rounded
  half up to the fen;
- each instalment's interest is the outstanding principal × r, rounded half up
  to the fen; its principal is ``A`` less that interest, but never more than the
  principal still outstanding (on a loan of a few fen over many months the
  rounded-up payment would otherwise repay it early; the later instalments are
  then 0);
- the last instalment takes all the principal still outstanding (plus its
  interest), so the principal sums exactly to the loan.

Rounding: the one rule is ROUND_HALF_UP to the fen (`round_fen`). The rate is a
Decimal, never a float. Interest is ``outstanding × bps / 120000`` as one exact
division (a half fen is a half fen), and the payment is worked out at
`PRECISION` significant digits before its one rounding, whatever the caller's
decimal context.

Due dates: the disbursement's day of the month, or the month's last day when
the month is shorter (disbursed Jan 31: Feb 28 or 29, Mar 31, Apr 30, ...).
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import NamedTuple

RATE_DIVISOR = 120_000  # basis points a year → a fraction a month: 10000 × 12
PRECISION = 50
_CONTEXT = Context(prec=PRECISION, rounding=ROUND_HALF_UP)
_FEN = Decimal(1)


class Instalment(NamedTuple):
    n: int  # 1-based
    due_date: date
    principal_fen: int
    interest_fen: int


def monthly_rate(annual_rate_bps: int) -> Decimal:
    """The monthly rate as a fraction, e.g. 435 bps → 0.003625."""
    return _CONTEXT.divide(Decimal(annual_rate_bps), Decimal(RATE_DIVISOR))


def round_fen(amount: Decimal) -> int:
    """The programme's one rounding: half up to the fen."""
    return int(amount.quantize(_FEN, rounding=ROUND_HALF_UP, context=_CONTEXT))


def interest_fen(outstanding_fen: int, annual_rate_bps: int) -> int:
    """One month's interest on `outstanding_fen`, rounded half up to the fen."""
    exact = _CONTEXT.divide(
        _CONTEXT.multiply(Decimal(outstanding_fen), annual_rate_bps), Decimal(RATE_DIVISOR)
    )
    return round_fen(exact)


def payment_fen(principal_fen: int, annual_rate_bps: int, months: int) -> int:
    """The equal monthly payment (principal and interest) that repays `principal_fen`."""
    if months < 1:
        raise ValueError("a schedule has at least one month")
    if annual_rate_bps == 0:
        return round_fen(_CONTEXT.divide(Decimal(principal_fen), Decimal(months)))
    rate = monthly_rate(annual_rate_bps)
    growth = _CONTEXT.power(_CONTEXT.add(1, rate), months)  # exact: an integer power
    exact = _CONTEXT.divide(
        _CONTEXT.multiply(_CONTEXT.multiply(Decimal(principal_fen), rate), growth),
        _CONTEXT.subtract(growth, 1),
    )
    return round_fen(exact)


def amortize(principal_fen: int, annual_rate_bps: int, months: int) -> list[tuple[int, int]]:
    """(principal_fen, interest_fen) of each month of an annuity on `principal_fen`."""
    if principal_fen < 0 or annual_rate_bps < 0:
        raise ValueError("principal and rate are not negative")
    payment = payment_fen(principal_fen, annual_rate_bps, months)
    outstanding = principal_fen
    rows: list[tuple[int, int]] = []
    for n in range(1, months + 1):
        interest = interest_fen(outstanding, annual_rate_bps)
        principal = outstanding if n == months else min(payment - interest, outstanding)
        rows.append((principal, interest))
        outstanding -= principal
    return rows


def due_date(disbursed_on: date, n: int) -> date:
    """The `n`th monthly due date after `disbursed_on`: same day, or the month's last day."""
    months = disbursed_on.month - 1 + n
    year, month = disbursed_on.year + months // 12, months % 12 + 1
    return date(year, month, min(disbursed_on.day, calendar.monthrange(year, month)[1]))


def annuity_schedule(
    principal_fen: int, annual_rate_bps: int, term_months: int, disbursed_on: date
) -> list[Instalment]:
    """The loan's schedule, as fixed on its disbursement (business date `disbursed_on`)."""
    if principal_fen < 1:
        raise ValueError("a loan's principal is at least 1 fen")
    rows = amortize(principal_fen, annual_rate_bps, term_months)
    return [
        Instalment(n, due_date(disbursed_on, n), principal, interest)
        for n, (principal, interest) in enumerate(rows, start=1)
    ]
