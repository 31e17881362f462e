"""A loan as partners see it (CONTRACT.md §4 Loans): what `GET /v1/loans/{id}`
returns, and the `data` of the loan's events.

The firm's full identity is shown here: the loan's bank is the one whose offer
the firm accepted, and the channel took the application. Who may see a loan at
all is `loan_visible_to`; anyone else gets a 404, as if the loan did not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.clock import business_date
from hub.core.errors import not_found
from hub.loans.allocation import InstalmentState, days_past_due
from models.core.tables import Partner
from models.loans.tables import Firm, Loan, LoanInstalment

BANK, CHANNEL = "bank", "channel"


def loan_visible_to(session: Session, loan_id: str, partner_id: str, kind: str) -> Loan:
    """The loan, when the caller is its bank or the channel its application came
    through; otherwise `NotFound`."""
    loan = session.get(Loan, loan_id)
    owner = None if loan is None else loan.bank_id if kind == BANK else loan.channel_id
    if loan is None or kind not in (BANK, CHANNEL) or owner != partner_id:
        raise not_found("loan", loan_id)
    return loan


def instalments(session: Session, loan_id: str) -> list[LoanInstalment]:
    query = select(LoanInstalment).where(LoanInstalment.loan_id == loan_id)
    return list(session.scalars(query.order_by(LoanInstalment.n)))


def states(rows: Sequence[LoanInstalment]) -> list[InstalmentState]:
    """The stored instalments as the allocation rules read them."""
    return [
        InstalmentState(r.n, r.due_date, r.principal_fen, r.interest_fen, r.paid_fen) for r in rows
    ]


def loan_view(session: Session, loan: Loan, now: datetime, zone: str) -> dict[str, Any]:
    """The contract's loan, exactly; `days_past_due` as of `now`'s business date."""
    return view_as_of(session, loan, business_date(now, zone))


def view_as_of(session: Session, loan: Loan, as_of: date) -> dict[str, Any]:
    """The contract's loan with `days_past_due` as of business date `as_of`."""
    firm = session.get(Firm, loan.firm_id)
    assert firm is not None  # a loan's firm is never deleted
    rows = instalments(session, loan.id)
    return {
        "loan_id": loan.id,
        "application_id": loan.application_id,
        "bank_code": _bank_code(session, loan.bank_id),
        "firm": {"uscc": firm.uscc, "name": firm.name},
        "status": loan.status,
        "principal_fen": loan.principal_fen,
        "annual_rate_bps": loan.annual_rate_bps,
        "term_months": loan.term_months,
        "schedule": [
            {
                "n": r.n,
                "due_date": r.due_date.isoformat(),
                "principal_fen": r.principal_fen,
                "interest_fen": r.interest_fen,
                "paid_fen": r.paid_fen,
            }
            for r in rows
        ],
        "outstanding_principal_fen": loan.outstanding_principal_fen,
        "days_past_due": days_past_due(states(rows), as_of),
    }


def _bank_code(session: Session, bank_id: str) -> str:
    code = session.scalar(select(Partner.code).where(Partner.id == bank_id))
    assert code is not None
    return code
