"""The credit-easy loans programme in figures, as operators' dashboards read them:
applications by status and decline reason, loans by status. One aggregate
statement each, over the tables every process and flow worker writes. Every
status (and decline reason) is named, at 0 when no row has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.loans.tables import (
    ApplicationStatus,
    DeclineReason,
    Loan,
    LoanApplication,
    LoanStatus,
)


@dataclass(frozen=True)
class LoansFigures:
    applications: dict[tuple[str, str], int]  # (status, decline reason or "") → applications
    loans: dict[str, int]  # status → loans


def read(session: Session) -> LoansFigures:
    applications = session.execute(
        select(LoanApplication.status, LoanApplication.decline_reason, func.count()).group_by(
            LoanApplication.status, LoanApplication.decline_reason
        )
    )
    loans = session.execute(select(Loan.status, func.count()).group_by(Loan.status))
    by_outcome = {(s.value, ""): 0 for s in ApplicationStatus if s != ApplicationStatus.DECLINED}
    by_outcome |= {(ApplicationStatus.DECLINED.value, r.value): 0 for r in DeclineReason}
    by_outcome.update({(status, reason or ""): count for status, reason, count in applications})
    by_status = {status.value: 0 for status in LoanStatus}
    by_status.update({status: count for status, count in loans})
    return LoansFigures(by_outcome, by_status)
