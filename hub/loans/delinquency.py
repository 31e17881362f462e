"""Loan delinquency (CONTRACT.md §4 Loans): each day, how late every loan is.

For the loans still being repaid (active, overdue, defaulted), as of the
business date:

- 1+ days past due (the oldest instalment still unpaid fell due before today):
  `active` → `overdue`, event `loan.overdue`;
- `default_after_days_past_due` (90) or more: → `defaulted` (`defaulted_at`
  set), event `loan.defaulted`; a loan that went from active straight past 90
  (the flow did not run meanwhile) gets only `loan.defaulted`;
- no longer past due: `overdue` → `active`, without an event (the contract
  has none; the bank reported the repayment itself);
- `defaulted` ends only when the loan is closed (by a repayment), so it is
  never moved here; its `days_past_due` is still kept up to date.

Events go to the loan's channel and bank, with the loan as GET returns it. An
event is sent once per transition, so a second run on the same day changes
nothing. Loans are worked in batches, each locked (so a repayment reported at
the same moment is applied before or after, never in between) and committed.

The run also feeds the shared collections (hub/medical/collections.py): each
instalment past due with something unpaid becomes a debt (source
`loan_instalment`, `<loan id>:<n>`, on no credit line), and the debts already
recorded follow the schedule's amounts and what was paid — for every loan with
an unpaid debt, closed ones included, so a debt paid off is settled too.
Collections report a debt 30 days past due to the credit database once; they
never suspend a credit line for it (a firm's loan is no resident's line).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from hub.core import clock, events
from hub.core.clock import business_date
from hub.core.db import unit_of_work
from hub.core.ids import new_id
from hub.core.references import insert_new
from hub.loans import loans
from hub.loans.views import view_as_of
from models.loans.tables import Loan, LoanInstalment, LoanStatus
from models.medical.tables import Debt, DebtSource

if TYPE_CHECKING:
    from hub.context import HubContext

BATCH = 500
SERVICED = (LoanStatus.ACTIVE, LoanStatus.OVERDUE, LoanStatus.DEFAULTED)


def status_for(current: str, days_late: int, default_after: int) -> LoanStatus:
    """The status a serviced loan should have at `days_late` days past due."""
    if current == LoanStatus.DEFAULTED or days_late >= default_after:
        return LoanStatus.DEFAULTED
    return LoanStatus.OVERDUE if days_late >= 1 else LoanStatus.ACTIVE


def oldest_unpaid_due(session: Session, loan_ids: Sequence[str], as_of: date) -> dict[str, date]:
    """Each loan's oldest due date before `as_of` with something unpaid (set-based)."""
    rows = session.execute(
        select(LoanInstalment.loan_id, func.min(LoanInstalment.due_date))
        .where(
            LoanInstalment.loan_id.in_(loan_ids),
            LoanInstalment.due_date < as_of,
            LoanInstalment.unpaid_fen > 0,
        )
        .group_by(LoanInstalment.loan_id)
    )
    return {loan_id: due for loan_id, due in rows}


def run_batch(
    session: Session, loan_ids: Sequence[str], as_of: date, default_after: int, now: datetime
) -> Counter[str]:
    """Move these loans to the status their lateness on `as_of` calls for; counts of
    what changed. The loans are locked first: their instalments are read after."""
    batch = list(
        session.scalars(
            select(Loan)
            .where(Loan.id.in_(loan_ids), Loan.status.in_(SERVICED))
            .order_by(Loan.id)
            .with_for_update()
        )
    )
    oldest = oldest_unpaid_due(session, [loan.id for loan in batch], as_of)
    done: Counter[str] = Counter()
    for loan in batch:
        due = oldest.get(loan.id)
        days_late = (as_of - due).days if due is not None else 0
        loan.days_past_due = days_late
        target = status_for(loan.status, days_late, default_after)
        if target == loan.status:
            continue
        loan.status = target
        if target == LoanStatus.DEFAULTED:
            loan.defaulted_at = now
            _announce(session, loan, "loan.defaulted", as_of, now)
            done["defaulted"] += 1
        elif target == LoanStatus.OVERDUE:
            _announce(session, loan, "loan.overdue", as_of, now)
            done["overdue"] += 1
        else:
            done["back_to_active"] += 1
    session.flush()
    sync_debts(session, [loan.id for loan in batch], as_of)
    return done


def instalment_source(loan_id: str, n: int) -> str:
    """The source id of a loan instalment's debt."""
    return f"{loan_id}:{n}"


def loan_of(source_id: str) -> str:
    """The loan an instalment's debt source id names."""
    return source_id.rpartition(":")[0]


def sync_debts(session: Session, loan_ids: Sequence[str], as_of: date) -> int:
    """Record each instalment of these loans past due on `as_of` with something
    unpaid as a debt, and bring every unpaid debt already recorded for them in step
    with its instalment (amount and paid); how many debts were recorded now.

    Set-based: one query of the past-due instalments still unpaid or whose debt is,
    each with its debt if it has one (by the unique source). Callers hold the
    loans' locks, so no repayment changes the instalments meanwhile."""
    if not loan_ids:
        return 0
    source = LoanInstalment.loan_id + ":" + cast(LoanInstalment.n, String)
    rows = session.execute(
        select(LoanInstalment, Debt)
        .outerjoin(
            Debt,
            and_(Debt.source_kind == DebtSource.LOAN_INSTALMENT, Debt.source_id == source),
        )
        .where(
            LoanInstalment.loan_id.in_(loan_ids),
            LoanInstalment.due_date < as_of,
            or_(LoanInstalment.unpaid_fen > 0, Debt.unpaid_fen > 0),
        )
        .order_by(LoanInstalment.loan_id, LoanInstalment.n)
    ).all()
    recorded = 0
    for row, debt in rows:
        amount = row.principal_fen + row.interest_fen
        paid = min(row.paid_fen, amount)
        if debt is not None:
            if (debt.amount_fen, debt.paid_fen) != (amount, paid):
                debt.amount_fen, debt.paid_fen = amount, paid
            continue
        values = {
            "id": new_id("dbt"),
            "source_kind": DebtSource.LOAN_INSTALMENT,
            "source_id": instalment_source(row.loan_id, row.n),
            "credit_line_id": None,
            "due_date": row.due_date,
            "amount_fen": amount,
            "paid_fen": paid,
            "reduced_fen": 0,
        }
        recorded += insert_new(session, Debt, values)
    session.flush()
    return recorded


def loans_with_unpaid_debts(session: Session) -> list[str]:
    """The loans whose instalments' debts are not paid off yet (whatever their status)."""
    sources = session.scalars(
        select(Debt.source_id).where(
            Debt.source_kind == DebtSource.LOAN_INSTALMENT, Debt.unpaid_fen > 0
        )
    )
    return sorted({loan_of(source) for source in sources})


def settle_debts(session: Session, loan_ids: Sequence[str], as_of: date) -> None:
    """Lock these loans and bring their debts in step with their schedules (for loans
    the status run does not hold: closed ones, or before a report is made)."""
    locked = session.scalars(
        select(Loan.id).where(Loan.id.in_(loan_ids)).order_by(Loan.id).with_for_update()
    ).all()
    sync_debts(session, list(locked), as_of)


def _announce(session: Session, loan: Loan, type_: str, as_of: date, now: datetime) -> None:
    session.flush()
    data = view_as_of(session, loan, as_of)
    events.emit(session, type_, data, [loan.channel_id, loan.bank_id], now)


# --------------------------------------------------------------------------
# the daily run, as the delinquency flow calls it


@dataclass(frozen=True)
class StatusLine:
    status: str
    loans: int
    outstanding_principal_fen: int


@dataclass(frozen=True)
class Portfolio:
    """The programme's loans by status, and the ratio that pauses new offers."""

    by_status: list[StatusLine]
    overdue_principal_fen: int
    outstanding_principal_fen: int

    @property
    def overdue_ratio_bps(self) -> int | None:
        """Overdue over outstanding principal, in basis points rounded down; None
        when nothing is outstanding."""
        if self.outstanding_principal_fen == 0:
            return None
        return self.overdue_principal_fen * 10_000 // self.outstanding_principal_fen


def today(ctx: HubContext) -> date:
    """The business date delinquency works on (the hub clock's)."""
    return business_date(clock.now(), ctx.settings.business_timezone)


def run_day(ctx: HubContext) -> dict[str, int]:
    """Today's transitions over every serviced loan, a batch per transaction; counts."""
    now, as_of = clock.now(), today(ctx)
    default_after = ctx.settings.default_after_days_past_due
    with unit_of_work(ctx.engine, write=False) as session:
        ids = list(
            session.scalars(select(Loan.id).where(Loan.status.in_(SERVICED)).order_by(Loan.id))
        )
        # loans no longer serviced (closed) whose debts were not settled yet
        settle = sorted(set(loans_with_unpaid_debts(session)) - set(ids))
    done: Counter[str] = Counter()
    for start in range(0, len(ids), BATCH):
        with unit_of_work(ctx.engine) as session:
            done.update(run_batch(session, ids[start : start + BATCH], as_of, default_after, now))
    for start in range(0, len(settle), BATCH):
        with unit_of_work(ctx.engine) as session:
            settle_debts(session, settle[start : start + BATCH], as_of)
    steps = ("overdue", "defaulted", "back_to_active")
    return {"checked": len(ids), **{step: done[step] for step in steps}}


def portfolio(ctx: HubContext) -> Portfolio:
    """Loans by status with their outstanding principal, and the overdue ratio."""
    with unit_of_work(ctx.engine, write=False) as session:
        rows = session.execute(
            select(Loan.status, func.count(), func.sum(Loan.outstanding_principal_fen))
            .group_by(Loan.status)
            .order_by(Loan.status)
        )
        lines = [StatusLine(status, int(n), int(total or 0)) for status, n, total in rows]
        overdue, outstanding = loans.portfolio_principal(session)
    return Portfolio(lines, overdue, outstanding)
