"""Collections (CONTRACT.md §2 Overdue): daily, for debt near or past its due date.

A reminder the day before and the day after the due date, suspension at 3 days
past due, a report to the credit database at 30 (settings), and reinstatement
once nothing is overdue. Each step is recorded per debt, once, so running the
flow twice in a day changes nothing.

Debts are shared by both programmes; these steps are a visit's debt's, on a
resident's credit line. A past-due loan instalment's debt (on no line) is only
reported, by `hub.loans.collections`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import events
from hub.core.personal_data import Vault
from hub.core.references import insert_new
from hub.medical.lines import announce, line_recipients, lock_line, overdue_fen
from models.medical.tables import (
    CollectionStep,
    CreditLine,
    Debt,
    DebtSource,
    LineStatus,
    Resident,
)


@dataclass(frozen=True)
class Policy:
    suspend_after_days: int = 3
    report_after_days: int = 30
    zone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class OverdueReport:
    """A debt to report to the credit database (done by the flow, then recorded)."""

    debt_id: str
    report_id: str  # the report's id and idempotency key at the credit database
    credit_line_id: str
    id_number: str
    amount_fen: int
    days_past_due: int


def report_id(debt: Debt) -> str:
    """The key a debt is reported under, derived from what it is owed for.

    From the source rather than the debt's own id, so that a report sent before
    debts had ids (migration 0005) is the same report when it is sent again.
    """
    return f"overdue:{debt.source_id}"


def _once(session: Session, debt: Debt, step: str, today: date, now: datetime) -> bool:
    """Record a step for a debt; False when it was taken before."""
    return insert_new(
        session,
        CollectionStep,
        {
            "debt_id": debt.id,
            "step": step,
            "credit_line_id": debt.credit_line_id,
            "business_date": today,
            "done_at": now,
        },
    )


def run_day(session: Session, policy: Policy, today: date, now: datetime) -> dict[str, int]:
    """Reminders, suspensions and reinstatements due today; counts of steps taken."""
    counts = {"reminder_before": 0, "reminder_after": 0, "suspended": 0, "reinstated": 0}
    window = today + timedelta(days=1)
    debts = session.scalars(
        select(Debt)
        .where(
            Debt.source_kind == DebtSource.VISIT,  # a loan's debt suspends no line
            Debt.unpaid_fen > 0,
            Debt.due_date <= window,
        )
        .order_by(Debt.due_date, Debt.id)
    ).all()
    for debt in debts:
        days_past = (today - debt.due_date).days
        step = {-1: "reminder_before", 1: "reminder_after"}.get(days_past)
        if step and _once(session, debt, step, today, now):
            _remind(session, debt, step, now)
            counts[step] += 1
        if days_past >= policy.suspend_after_days and _once(session, debt, "suspended", today, now):
            assert debt.credit_line_id is not None  # a visit's debt is on its line
            line = lock_line(session, debt.credit_line_id)
            if line.status == LineStatus.ACTIVE:
                line.status, line.suspension_reason = LineStatus.SUSPENDED, "overdue"
                session.flush()
                announce(session, line, "credit_line.suspended", policy.zone, now)
                counts["suspended"] += 1
    counts["reinstated"] = reinstate(session, policy, today, now)
    return counts


def _remind(session: Session, debt: Debt, step: str, now: datetime) -> None:
    line = session.get(CreditLine, debt.credit_line_id)
    assert line is not None
    data = {
        "credit_line_id": line.id,
        **({"visit_id": debt.source_id} if debt.source_kind == DebtSource.VISIT else {}),
        "debt_id": debt.id,
        "due_date": debt.due_date,
        "amount_due_fen": debt.unpaid_fen,
        "when": "before_due" if step == "reminder_before" else "after_due",
    }
    events.emit(session, "repayment.reminder", data, line_recipients(session, line), now)


def reinstate(session: Session, policy: Policy, today: date, now: datetime) -> int:
    """Lift overdue suspensions of lines with nothing overdue any more."""
    lifted = 0
    suspended = session.scalars(
        select(CreditLine.id).where(
            CreditLine.status == LineStatus.SUSPENDED, CreditLine.suspension_reason == "overdue"
        )
    ).all()
    for line_id in suspended:
        if overdue_fen(session, line_id, today) == 0:
            line = lock_line(session, line_id)
            line.status, line.suspension_reason = LineStatus.ACTIVE, None
            session.flush()
            announce(session, line, "credit_line.reinstated", policy.zone, now)
            lifted += 1
    return lifted


def reports_due(session: Session, vault: Vault, policy: Policy, today: date) -> list[OverdueReport]:
    """Debts at or past the report age that were not reported yet."""
    cutoff = today - timedelta(days=policy.report_after_days)
    done = select(CollectionStep.debt_id).where(CollectionStep.step == "reported")
    rows = session.execute(
        select(Debt, Resident.id_number_enc)
        .join(CreditLine, CreditLine.id == Debt.credit_line_id)
        .join(Resident, Resident.id == CreditLine.resident_id)
        .where(Debt.unpaid_fen > 0, Debt.due_date <= cutoff, Debt.id.not_in(done))
    )
    return [
        OverdueReport(
            debt.id,
            report_id(debt),
            str(debt.credit_line_id),  # joined to its line: never None here
            vault.decrypt(enc),
            debt.unpaid_fen,
            (today - debt.due_date).days,
        )
        for debt, enc in rows
    ]


def mark_reported(session: Session, report: OverdueReport, today: date, now: datetime) -> bool:
    debt = session.get(Debt, report.debt_id)
    assert debt is not None
    return _once(session, debt, "reported", today, now)
