"""Loans: the loan an accepted offer becomes, and the programme's principal totals.

`approve` is how an accepted offer becomes a loan (called by acceptance, in its
transaction); the loan is `approved` until its bank reports the payout.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.core.ids import new_id
from models.loans.tables import Loan, LoanApplication, LoanOffer, LoanStatus


def approve(
    session: Session, application: LoanApplication, offer: LoanOffer, now: datetime
) -> Loan:
    """The loan of an accepted offer: the offered amount, rate and term."""
    loan = Loan(
        id=new_id("loan"),
        application_id=application.id,
        offer_id=offer.id,
        bank_id=offer.bank_id,
        channel_id=application.channel_id,
        firm_id=application.firm_id,
        grade=(application.profile or {}).get("grade", "D"),
        principal_fen=offer.amount_fen,
        annual_rate_bps=offer.annual_rate_bps,
        term_months=offer.term_months,
        status=LoanStatus.APPROVED,
        outstanding_principal_fen=0,  # owed from the payout on
        days_past_due=0,
        created_at=now,
    )
    session.add(loan)
    session.flush()
    return loan


def portfolio_principal(session: Session) -> tuple[int, int]:
    """(overdue principal, outstanding principal) over the programme's loans, in fen.

    The ratio of the two pauses new offers (hub/loans/policy.py `offers_paused`).

    "Overdue principal" is the WHOLE outstanding principal of the loans that are
    `overdue` or `defaulted`, not only the instalments' principal past due: the
    measure banks and regulators use for a loan book (逾期贷款余额, the balance of
    loans past due), and the prudent one — a firm that misses a payment puts all
    it owes at risk, so a single missed instalment on a large loan counts in
    full. It follows the loans' statuses, so it is as of the last delinquency
    run (daily), and a repayment that brings an overdue loan up to date takes
    it out at once. Outstanding principal is over every loan (approved ones
    owe nothing yet; closed ones nothing any more).
    """
    late = (LoanStatus.OVERDUE, LoanStatus.DEFAULTED)
    overdue, outstanding = session.execute(
        select(
            func.coalesce(
                func.sum(Loan.outstanding_principal_fen).filter(Loan.status.in_(late)), 0
            ),
            func.coalesce(func.sum(Loan.outstanding_principal_fen), 0),
        )
    ).one()
    return int(overdue), int(outstanding)
