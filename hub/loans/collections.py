"""Loans in the shared collections: a past-due instalment's debt (recorded by the
delinquency run, on no credit line) is reported to the credit database at the
report age (`CREDITHUB_REPORT_AFTER_DAYS_PAST_DUE`, 30), by the firm's code,
once. It takes no other step: it suspends no line, and the loan's bank and
channel heard `loan.overdue` on its first day past due.

Each report is made under `overdue:<loan id>:<n>` outside any transaction and
recorded after the database took it (a rerun reports only what was not
recorded). Just before, the debts are brought in step with the schedules, so a
debt paid since the delinquency run is not reported.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import clock
from hub.core.clock import business_date
from hub.core.db import unit_of_work
from hub.core.references import insert_new
from hub.loans.delinquency import loan_of, settle_debts
from models.core.partner_errors import PartnerError
from models.core.partner_records import OverdueReceipt
from models.loans.tables import Firm, Loan
from models.medical.tables import CollectionStep, Debt, DebtSource

if TYPE_CHECKING:
    from hub.context import HubContext

REPORTED = "reported"  # the collections step, as for visits' debts


class FirmOverdueReporter(Protocol):
    """The credit database, as far as it takes reports of a firm's overdue debt."""

    def report_firm_overdue(
        self,
        *,
        report_id: str,
        uscc: str,
        amount_fen: int,
        days_past_due: int,
        reported_on: dt.date,
        idempotency_key: str,
    ) -> OverdueReceipt: ...


@dataclass(frozen=True)
class LoanOverdueReport:
    """A loan instalment's debt to report to the credit database, by the firm's code."""

    debt_id: str
    report_id: str  # `overdue:<loan id>:<n>`, also the idempotency key there
    loan_id: str
    uscc: str
    amount_fen: int
    days_past_due: int


def reports_due(
    session: Session, report_after_days: int, today: dt.date
) -> list[LoanOverdueReport]:
    """Loan instalments' debts at or past the report age, unpaid, not reported yet."""
    cutoff = today - dt.timedelta(days=report_after_days)
    done = select(CollectionStep.debt_id).where(CollectionStep.step == REPORTED)
    debts = session.scalars(
        select(Debt)
        .where(
            Debt.source_kind == DebtSource.LOAN_INSTALMENT,
            Debt.unpaid_fen > 0,
            Debt.due_date <= cutoff,
            Debt.id.not_in(done),
        )
        .order_by(Debt.due_date, Debt.id)
    ).all()
    loan_ids = {loan_of(debt.source_id) for debt in debts}
    firms = dict(
        session.execute(
            select(Loan.id, Firm.uscc)
            .join(Firm, Firm.id == Loan.firm_id)
            .where(Loan.id.in_(loan_ids))
        ).all()
    )
    return [
        LoanOverdueReport(
            debt.id,
            f"overdue:{debt.source_id}",
            loan_of(debt.source_id),
            firms[loan_of(debt.source_id)],
            debt.unpaid_fen,
            (today - debt.due_date).days,
        )
        for debt in debts
    ]


def _mark_reported(session: Session, debt_id: str, today: dt.date, now: dt.datetime) -> bool:
    """Record the report step once (False when it was recorded before)."""
    return insert_new(
        session,
        CollectionStep,
        {"debt_id": debt_id, "step": REPORTED, "credit_line_id": None,
         "business_date": today, "done_at": now},
    )  # fmt: skip


def report_overdue(ctx: HubContext, bureau: FirmOverdueReporter) -> dict[str, int]:
    """Report loan instalments' debts past the report age, each once; counts."""
    after = ctx.settings.report_after_days_past_due
    reported_on = business_date(clock.now(), ctx.settings.business_timezone)
    with unit_of_work(ctx.engine, write=False) as session:
        loans = sorted({r.loan_id for r in reports_due(session, after, reported_on)})
    if loans:
        with unit_of_work(ctx.engine) as session:
            settle_debts(session, loans, reported_on)
    with unit_of_work(ctx.engine, write=False) as session:
        due = reports_due(session, after, reported_on)
    counts = {"loans_reported": 0, "loans_retry_later": 0}
    for report in due:
        try:
            bureau.report_firm_overdue(
                report_id=report.report_id,
                uscc=report.uscc,
                amount_fen=report.amount_fen,
                days_past_due=report.days_past_due,
                reported_on=reported_on,
                idempotency_key=report.report_id,
            )
        except PartnerError:
            counts["loans_retry_later"] += 1
            continue
        with unit_of_work(ctx.engine) as session:
            _mark_reported(session, report.debt_id, reported_on, clock.now())
        counts["loans_reported"] += 1
    return counts
