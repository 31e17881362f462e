"""Where a firm's repayment goes: the allocation over a loan's instalments (CONTRACT.md §4).

Positions, as of the business date ``D`` on which the repayment was made
(the business date of `paid_at`):

- **overdue**: every instalment due before ``D`` (paying on the due date is on time);
- **current**: the first instalment due on or after ``D`` — the month running.
  Its interest is owed in full: the contract counts interest by the month, and
  the month has begun (so even a payoff on the day of the payout pays the first
  month's interest). There is none once the last due date has passed;
- **future**: the instalments after the current one. Their interest is not owed
  yet, and is never owed on principal repaid before their month begins.

A repayment pays, each step in full before the next, oldest instalment first
within a step:

1. overdue interest, 2. overdue principal, 3. current interest,
4. current principal, 5. early repayment of principal.

Early repayment (提前还款) keeps the term and lowers the payment: the principal
is added to the current instalment (which is then paid in full: that is where
the money went, and the schedule's principal still sums to the loan) and the
future instalments are worked out again as an annuity (`schedule.amortize`) on
the principal left, over the same due dates at the same rate, so each one's
interest is again on the principal outstanding. Repaying the whole payoff turns
the future instalments into zeros: the loan is repaid.

The payoff is everything overdue, the current instalment, and the future
instalments' principal. More than that is refused whole (`Overpayment`).

Within an instalment interest is always paid before principal, so one paid
amount per instalment (`paid_fen`, as the contract shows it) says both.
Repayments are applied in the order of their business dates. Given a date
earlier than one already applied, an instalment after the current one may
already be paid; that is refused (ValueError) rather than worked out again: the
caller applies such a late report as of the latest date applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from hub.core.errors import FieldError, Invalid
from hub.loans.schedule import Instalment, amortize


class Overpayment(Invalid):
    """A repayment larger than everything the firm could owe on the loan (422)."""

    code = "overpayment"
    title = "The repayment is more than the payoff amount"

    def __init__(self, amount_fen: int, payoff_fen: int):
        message = f"{amount_fen} fen is more than the payoff amount of {payoff_fen} fen"
        super().__init__(message, errors=[FieldError("amount_fen", message)])
        self.amount_fen = amount_fen
        self.payoff_fen = payoff_fen


@dataclass(frozen=True)
class InstalmentState:
    """One instalment of a loan's schedule with what has been paid on it."""

    n: int
    due_date: date
    principal_fen: int
    interest_fen: int
    paid_fen: int = 0

    def __post_init__(self) -> None:
        if min(self.principal_fen, self.interest_fen, self.paid_fen) < 0:
            raise ValueError(f"instalment {self.n}: amounts are not negative")
        if self.paid_fen > self.principal_fen + self.interest_fen:
            raise ValueError(f"instalment {self.n}: paid more than it asks")

    @classmethod
    def scheduled(cls, instalment: Instalment, paid_fen: int = 0) -> InstalmentState:
        return cls(*instalment, paid_fen=paid_fen)

    @property
    def unpaid_interest_fen(self) -> int:
        return max(0, self.interest_fen - self.paid_fen)

    @property
    def unpaid_principal_fen(self) -> int:
        return self.principal_fen + self.interest_fen - self.paid_fen - self.unpaid_interest_fen


@dataclass(frozen=True)
class Allocation:
    """One repayment's five parts, what each instalment got, and the schedule after it."""

    overdue_interest_fen: int
    overdue_principal_fen: int
    current_interest_fen: int
    current_principal_fen: int
    early_principal_fen: int
    paid_by_instalment: dict[int, int] = field(default_factory=dict)  # n → fen, only n paid
    instalments: tuple[InstalmentState, ...] = ()

    @property
    def total_fen(self) -> int:
        return (
            self.overdue_interest_fen
            + self.overdue_principal_fen
            + self.current_interest_fen
            + self.current_principal_fen
            + self.early_principal_fen
        )


@dataclass(frozen=True)
class _Positions:
    overdue: tuple[InstalmentState, ...]
    current: InstalmentState | None
    future: tuple[InstalmentState, ...]


def _positions(instalments: Sequence[InstalmentState], as_of: date) -> _Positions:
    ordered = sorted(instalments, key=lambda i: i.n)
    overdue = tuple(i for i in ordered if i.due_date < as_of)
    later = [i for i in ordered if i.due_date >= as_of]
    return _Positions(overdue, later[0] if later else None, tuple(later[1:]))


def outstanding_principal_fen(instalments: Sequence[InstalmentState]) -> int:
    """Principal not yet repaid, whenever it falls due."""
    return sum(i.unpaid_principal_fen for i in instalments)


def overdue_principal_fen(instalments: Sequence[InstalmentState], as_of: date) -> int:
    """Principal of the instalments due before `as_of` and not yet repaid."""
    return sum(i.unpaid_principal_fen for i in instalments if i.due_date < as_of)


def days_past_due(instalments: Sequence[InstalmentState], as_of: date) -> int:
    """Days since the oldest instalment still (partly) unpaid fell due; 0 when none is late."""
    late = [i.due_date for i in instalments if i.due_date < as_of and i.paid_fen < _owed(i)]
    return (as_of - min(late)).days if late else 0


def payoff_fen(instalments: Sequence[InstalmentState], as_of: date) -> int:
    """What repays the loan in full on `as_of`: all that is due, and the principal to come."""
    at = _positions(instalments, as_of)
    due = [*at.overdue, *([at.current] if at.current else [])]
    return sum(_owed(i) - i.paid_fen for i in due) + sum(i.unpaid_principal_fen for i in at.future)


def allocate_repayment(
    instalments: Sequence[InstalmentState], amount_fen: int, as_of: date, annual_rate_bps: int
) -> Allocation:
    """Split `amount_fen` paid on business date `as_of` over the loan, in the contract's order."""
    if amount_fen < 1:
        raise ValueError("a repayment is at least 1 fen")
    at = _positions(instalments, as_of)
    if any(i.paid_fen for i in at.future):
        raise ValueError("an instalment after the current one is already paid: apply in date order")
    payoff = payoff_fen(instalments, as_of)
    if amount_fen > payoff:
        raise Overpayment(amount_fen, payoff)

    left = amount_fen
    paid: dict[int, int] = {}

    def take(instalment: InstalmentState, owed: int) -> int:
        nonlocal left
        amount = min(left, owed)
        left -= amount
        if amount:
            paid[instalment.n] = paid.get(instalment.n, 0) + amount
        return amount

    overdue_interest = sum(take(i, i.unpaid_interest_fen) for i in at.overdue)
    overdue_principal = sum(take(i, i.unpaid_principal_fen) for i in at.overdue)
    current_interest = take(at.current, at.current.unpaid_interest_fen) if at.current else 0
    current_principal = take(at.current, at.current.unpaid_principal_fen) if at.current else 0
    early = left  # within the payoff, so only future principal is left to pay
    after = {i.n: i for i in instalments}
    for n, amount in paid.items():  # only the instalments paid change
        after[n] = replace(after[n], paid_fen=after[n].paid_fen + amount)
    if early:
        assert at.current is not None  # future principal implies a current instalment
        paid[at.current.n] = paid.get(at.current.n, 0) + early
        current = after[at.current.n]
        after[current.n] = replace(
            current,
            principal_fen=current.principal_fen + early,
            paid_fen=current.paid_fen + early,
        )
        remaining = sum(i.unpaid_principal_fen for i in at.future) - early
        rows = amortize(remaining, annual_rate_bps, len(at.future))
        for instalment, (principal, interest) in zip(at.future, rows, strict=True):
            after[instalment.n] = replace(
                instalment, principal_fen=principal, interest_fen=interest, paid_fen=0
            )
    return Allocation(
        overdue_interest_fen=overdue_interest,
        overdue_principal_fen=overdue_principal,
        current_interest_fen=current_interest,
        current_principal_fen=current_principal,
        early_principal_fen=early,
        paid_by_instalment=paid,
        instalments=tuple(sorted(after.values(), key=lambda i: i.n)),
    )


def _owed(instalment: InstalmentState) -> int:
    return instalment.principal_fen + instalment.interest_fen
