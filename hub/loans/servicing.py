"""Loan servicing (CONTRACT.md §4 Loans): the bank's payout fixes the schedule, and
the firm's repayments are allocated over it.

Both are reported by the loan's bank under its own `bank_txn_id`: the same
reference with the same request replays, with another it is a 409
`duplicate_reference`. Each locks the loan row first, so two reports on one loan
(two payouts, two repayments) are applied one after the other, never both
against the same state.

Ledger (hub/loans/accounts.py):
    payout     Dr loan:{L}:principal / Cr bank:{B}:lent
    repayment  Dr bank:{B}:loan_receipts amount
               / Cr loan:{L}:principal (its principal parts)
               / Cr bank:{B}:interest_earned (its interest parts)
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.clock import as_utc, business_date
from hub.core.errors import Conflict, DuplicateReference, FieldError, Invalid, not_found
from hub.core.ids import new_id
from hub.core.references import insert_or_replay
from hub.loans import accounts, fund
from hub.loans.allocation import Allocation, allocate_repayment, days_past_due
from hub.loans.schedule import annuity_schedule
from hub.loans.views import instalments, states
from models.loans.tables import Loan, LoanInstalment, LoanRepayment, LoanStatus


def lock_loan(session: Session, loan_id: str, bank_id: str) -> Loan:
    """The bank's loan, locked for this transaction; `NotFound` for anyone else's."""
    loan = session.scalar(select(Loan).where(Loan.id == loan_id).with_for_update())
    if loan is None or loan.bank_id != bank_id:
        raise not_found("loan", loan_id)
    return loan


def disburse(
    session: Session,
    *,
    bank_id: str,
    loan_id: str,
    amount_fen: int,
    bank_txn_id: str,
    disbursed_at: datetime,
    zone: str,
    now: datetime,
) -> tuple[Loan, bool]:
    """The bank paid the loan out: once, for the offered amount. The loan becomes
    `active` with its annuity schedule fixed from the payout's business date.
    Returns the loan and whether this call paid it out (False: a replay)."""
    loan = lock_loan(session, loan_id, bank_id)
    if loan.disbursement_txn_id == bank_txn_id:
        paid_out_at = as_utc(loan.disbursed_at) if loan.disbursed_at else None
        if (loan.principal_fen, paid_out_at) != (amount_fen, disbursed_at):
            raise DuplicateReference("bank_txn_id", loan.id)
        return loan, False
    _reference_free(session, bank_id, bank_txn_id)
    if amount_fen != loan.principal_fen:
        raise Invalid(
            f"a loan is paid out once, for the offered amount of {loan.principal_fen} fen",
            code="amount_not_offered",
            errors=[FieldError("amount_fen", f"must be the offered {loan.principal_fen} fen")],
        )
    if disbursed_at < as_utc(loan.created_at):
        raise Invalid(
            "disbursed_at is before the firm accepted the offer",
            errors=[FieldError("disbursed_at", "before the loan was approved")],
        )
    if loan.status != LoanStatus.APPROVED:
        raise Conflict(
            f"loan {loan.id} was already paid out (bank_txn_id {loan.disbursement_txn_id})",
            code="already_disbursed",
        )
    try:  # the reference is unique per bank: a racing payout of another loan under it
        with session.begin_nested():  # commits first, and this one clashes here
            loan.disbursement_txn_id = bank_txn_id
            session.flush()
    except IntegrityError:
        _reference_free(session, bank_id, bank_txn_id)
        raise
    disbursed_on = business_date(disbursed_at, zone)
    for n, due, principal, interest in annuity_schedule(
        loan.principal_fen, loan.annual_rate_bps, loan.term_months, disbursed_on
    ):
        session.add(
            LoanInstalment(
                loan_id=loan.id,
                n=n,
                due_date=due,
                principal_fen=principal,
                interest_fen=interest,
                paid_fen=0,
            )
        )
    loan.status = LoanStatus.ACTIVE
    loan.outstanding_principal_fen = loan.principal_fen
    loan.days_past_due = 0
    loan.disbursed_on = disbursed_on
    loan.disbursed_at = disbursed_at
    ledger.transfer(
        session,
        "loan_disbursement",
        loan.id,
        accounts.loan_principal(loan.id),
        accounts.bank_lent(bank_id),
        loan.principal_fen,
        now,
    )
    session.flush()
    return loan, True


def _reference_free(session: Session, bank_id: str, bank_txn_id: str) -> None:
    """`DuplicateReference` when another of the bank's loans was paid out under it."""
    elsewhere = session.scalar(
        select(Loan.id).where(Loan.bank_id == bank_id, Loan.disbursement_txn_id == bank_txn_id)
    )
    if elsewhere is not None:
        raise DuplicateReference("bank_txn_id", elsewhere)


def repay(
    session: Session,
    *,
    bank_id: str,
    loan_id: str,
    amount_fen: int,
    bank_txn_id: str,
    paid_at: datetime,
    zone: str,
    now: datetime,
) -> tuple[LoanRepayment, bool]:
    """The firm repaid the bank: allocated overdue interest, overdue principal,
    current interest, current principal, then early principal, as of the business
    date it was paid (or of the latest repayment already applied, when reported
    late: repayments apply in date order). Returns the repayment and whether it is new."""
    loan = lock_loan(session, loan_id, bank_id)
    paid_on = business_date(paid_at, zone)
    repayment, new = insert_or_replay(
        session,
        LoanRepayment,
        {
            "id": new_id("lrp"),
            "loan_id": loan.id,
            "bank_id": bank_id,
            "bank_txn_id": bank_txn_id,
            "amount_fen": amount_fen,
            "overdue_interest_fen": 0,
            "overdue_principal_fen": 0,
            "current_interest_fen": 0,
            "current_principal_fen": 0,
            "early_principal_fen": 0,
            "fund_share_fen": 0,
            "outstanding_after_fen": 0,
            "paid_at": paid_at,
            "paid_on": paid_on,
            "created_at": now,
        },
        reference=("bank_id", "bank_txn_id"),
        request=("loan_id", "amount_fen", "paid_at"),
    )
    if not new:
        return repayment, False
    if loan.status == LoanStatus.APPROVED:
        raise Conflict(f"loan {loan.id} has not been paid out yet", code="loan_not_disbursed")
    if loan.status == LoanStatus.CLOSED:
        raise Conflict(f"loan {loan.id} is repaid and closed", code="loan_closed")
    assert loan.disbursed_on is not None  # every loan past approved was paid out
    if paid_on < loan.disbursed_on:
        raise Invalid(
            "paid_at is before the loan was paid out",
            errors=[FieldError("paid_at", f"before the payout on {loan.disbursed_on}")],
        )
    rows = instalments(session, loan.id)
    allocation = allocate_repayment(
        states(rows), amount_fen, _applied_as_of(session, loan.id, paid_on), loan.annual_rate_bps
    )
    _apply(rows, allocation)
    principal = (
        allocation.overdue_principal_fen
        + allocation.current_principal_fen
        + allocation.early_principal_fen
    )
    interest = allocation.overdue_interest_fen + allocation.current_interest_fen
    loan.outstanding_principal_fen -= principal
    _record(repayment, allocation, loan.outstanding_principal_fen)
    ledger.post(
        session,
        "loan_repayment",
        repayment.id,
        [
            (accounts.bank_loan_receipts(bank_id), amount_fen),
            (accounts.loan_principal(loan.id), -principal),
            (accounts.bank_interest_earned(bank_id), -interest),
        ],
        now,
    )
    # After a claim the fund paid part of the unpaid principal, so it shares in the
    # principal recovered (not in interest, which it never covered).
    repayment.fund_share_fen = fund.share_recovery(session, loan, principal, repayment.id, now)
    _settle_status(loan, allocation, business_date(now, zone), now)
    session.flush()
    return repayment, True


def _applied_as_of(session: Session, loan_id: str, paid_on: date) -> date:
    """The date to allocate on: the payment's, unless a later-dated repayment was
    already applied (a late report is applied as of that date; allocation.py)."""
    latest = session.scalar(
        select(func.max(LoanRepayment.paid_on)).where(
            LoanRepayment.loan_id == loan_id, LoanRepayment.paid_on > paid_on
        )
    )
    return latest or paid_on


def _apply(rows: list[LoanInstalment], allocation: Allocation) -> None:
    """Write the schedule after the repayment (paid amounts, and the re-amortised
    future instalments after an early repayment) onto the stored instalments."""
    after = {i.n: i for i in allocation.instalments}
    for row in rows:
        state = after[row.n]
        row.principal_fen, row.interest_fen, row.paid_fen = (
            state.principal_fen,
            state.interest_fen,
            state.paid_fen,
        )


def _record(repayment: LoanRepayment, allocation: Allocation, outstanding_fen: int) -> None:
    repayment.overdue_interest_fen = allocation.overdue_interest_fen
    repayment.overdue_principal_fen = allocation.overdue_principal_fen
    repayment.current_interest_fen = allocation.current_interest_fen
    repayment.current_principal_fen = allocation.current_principal_fen
    repayment.early_principal_fen = allocation.early_principal_fen
    repayment.outstanding_after_fen = outstanding_fen


def _settle_status(loan: Loan, allocation: Allocation, today: date, now: datetime) -> None:
    """Closed when nothing is owed; an overdue loan no longer past due is active
    again. `defaulted` ends only when the loan is closed (CONTRACT.md §4)."""
    owed = sum(i.principal_fen + i.interest_fen - i.paid_fen for i in allocation.instalments)
    late_days = days_past_due(allocation.instalments, today)
    if owed == 0:
        loan.status, loan.closed_at, loan.days_past_due = LoanStatus.CLOSED, now, 0
        return
    loan.days_past_due = late_days
    if loan.status == LoanStatus.OVERDUE and late_days == 0:
        loan.status = LoanStatus.ACTIVE


def get_repayment(session: Session, bank_id: str, repayment_id: str) -> LoanRepayment:
    repayment = session.get(LoanRepayment, repayment_id)
    if repayment is None or repayment.bank_id != bank_id:
        raise not_found("repayment", repayment_id)
    return repayment
