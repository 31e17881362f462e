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

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.clock import as_utc, business_date
from hub.core.errors import Conflict, DuplicateReference, FieldError, Invalid, not_found
from hub.core.ids import new_id
from hub.core.references import insert_new, replay
from hub.loans import accounts, fund
from hub.loans.allocation import Allocation, InstalmentState, allocate_repayment, days_past_due
from hub.loans.schedule import annuity_schedule
from models.core.tables import table_of
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
    late: repayments apply in date order). Returns the repayment and whether it is new.

    The hot path of loan servicing, so it does only what it must with the loan
    locked: the schedule read and written as plain rows, the allocation worked
    out first and the repayment inserted once with it (a clash on the bank's
    reference is a replay, answered as `references.insert_or_replay` does), the
    fund asked for its share only on a defaulted loan (the only kind with a
    claim: a loan stays defaulted until it is closed). The repayment returned is
    the row as inserted (not attached to the session).
    """
    loan = _lock_for_repayment(session, loan_id, bank_id)
    paid_on = business_date(paid_at, zone)
    values: dict[str, Any] = {
        "id": new_id("lrp"),
        "loan_id": loan.id,
        "bank_id": bank_id,
        "bank_txn_id": bank_txn_id,
        "amount_fen": amount_fen,
        "fund_share_fen": 0,
        "paid_at": paid_at,
        "paid_on": paid_on,
        "created_at": now,
    }
    try:
        before, allocation = _allocate(session, loan, amount_fen, paid_on)
    except (Conflict, Invalid):
        earlier = _replayed(session, values)  # a repeat is answered, not refused
        if earlier is not None:
            return earlier, False
        raise
    principal = (
        allocation.overdue_principal_fen
        + allocation.current_principal_fen
        + allocation.early_principal_fen
    )
    interest = allocation.overdue_interest_fen + allocation.current_interest_fen
    values.update(
        overdue_interest_fen=allocation.overdue_interest_fen,
        overdue_principal_fen=allocation.overdue_principal_fen,
        current_interest_fen=allocation.current_interest_fen,
        current_principal_fen=allocation.current_principal_fen,
        early_principal_fen=allocation.early_principal_fen,
        outstanding_after_fen=loan.outstanding_principal_fen - principal,
    )
    if not insert_new(session, LoanRepayment, values):
        earlier = _replayed(session, values)
        if earlier is None:  # the row clashed, but not on the reference: a programming error
            raise RuntimeError(f"repayment {values['id']} clashed, but not on bank_txn_id")
        return earlier, False
    repayment = LoanRepayment(**values)
    _write_schedule(session, loan.id, before, allocation)
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
    if loan.status == LoanStatus.DEFAULTED:
        share = fund.share_recovery(session, loan.id, loan.bank_id, principal, repayment.id, now)
        if share:
            session.execute(_SET_FUND_SHARE, {"repayment": repayment.id, "share": share})
            repayment.fund_share_fen = share
    _write_loan(session, loan, principal, allocation, business_date(now, zone), now)
    return repayment, True


@dataclass(frozen=True)
class _Held:
    """The loan as a repayment reads it, its row locked (plain columns, not the ORM's
    object: the repayment is the bank's hot path)."""

    id: str
    bank_id: str
    status: str
    disbursed_on: date | None
    annual_rate_bps: int
    outstanding_principal_fen: int
    days_past_due: int


def _lock_for_repayment(session: Session, loan_id: str, bank_id: str) -> _Held:
    """`lock_loan`, as plain columns."""
    row = session.connection().execute(_LOCK_LOAN, {"loan": loan_id}).first()
    if row is None or row.bank_id != bank_id:
        raise not_found("loan", loan_id)
    return _Held(*row)


def _write_loan(
    session: Session, loan: _Held, principal: int, allocation: Allocation, today: date,
    now: datetime,
) -> None:  # fmt: skip
    """The loan after the repayment, in one UPDATE of what changed: its outstanding
    principal, and its status (`_settled`). A copy of the loan the session may hold
    is expired, so that it is read afresh."""
    values = {
        name: value
        for name, value in _settled(loan, allocation, today, now).items()
        if value != getattr(loan, name, None)
    }
    if principal:
        values["outstanding_principal_fen"] = loan.outstanding_principal_fen - principal
    if not values:
        return
    session.connection().execute(update(_loans).where(_loans.c.id == loan.id).values(**values))
    cached = session.identity_map.get(inspect(Loan).identity_key_from_primary_key((loan.id,)))
    if cached is not None:
        session.expire(cached)


def _allocate(
    session: Session, loan: _Held, amount_fen: int, paid_on: date
) -> tuple[list[InstalmentState], Allocation]:
    """The schedule before, and the repayment's allocation over it; refuses a loan that
    cannot take it (Conflict) or a date or amount it cannot (Invalid, Overpayment)."""
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
    rows = session.connection().execute(_SCHEDULE, {"loan": loan.id, "paid_on": paid_on}).all()
    before = [InstalmentState(*row[:5]) for row in rows]
    # The date to allocate on: the payment's, unless a later-dated repayment was already
    # applied (a late report is applied as of that date; allocation.py).
    as_of = (rows[0][5] if rows else None) or paid_on
    return before, allocate_repayment(before, amount_fen, as_of, loan.annual_rate_bps)


def _replayed(session: Session, values: dict[str, Any]) -> LoanRepayment | None:
    """The repayment already reported under this reference, if this repeats it
    (`DuplicateReference` if the reference named another repayment)."""
    return replay(
        session,
        LoanRepayment,
        {"bank_id": values["bank_id"], "bank_txn_id": values["bank_txn_id"]},
        {name: values[name] for name in ("loan_id", "amount_fen", "paid_at")},
    )


def _write_schedule(
    session: Session, loan_id: str, before: list[InstalmentState], allocation: Allocation
) -> None:
    """The instalments the repayment changed (paid amounts, and the re-amortised
    future instalments after an early repayment), one UPDATE for them all."""
    was = {i.n: i for i in before}
    changed = [
        {"loan": loan_id, "k": i.n, "p": i.principal_fen, "i": i.interest_fen, "paid": i.paid_fen}
        for i in allocation.instalments
        if i != was[i.n]
    ]
    if changed:
        session.connection().execute(_WRITE_INSTALMENT, changed)


# Built once: the repayment is the bank's hot path (see hub/core/ledger.py).
_loans = table_of(Loan)
_instalments, _repayments = table_of(LoanInstalment), table_of(LoanRepayment)
_LOCK_LOAN = (
    select(
        _loans.c.id,
        _loans.c.bank_id,
        _loans.c.status,
        _loans.c.disbursed_on,
        _loans.c.annual_rate_bps,
        _loans.c.outstanding_principal_fen,
        _loans.c.days_past_due,
    )
    .where(_loans.c.id == bindparam("loan"))
    .with_for_update()
)
# The schedule, each row carrying the latest date of the loan's repayments dated after
# `paid_on` (one uncorrelated subquery, evaluated once): one round trip for both.
_SCHEDULE = (
    select(
        _instalments.c.n,
        _instalments.c.due_date,
        _instalments.c.principal_fen,
        _instalments.c.interest_fen,
        _instalments.c.paid_fen,
        select(func.max(_repayments.c.paid_on))
        .where(
            _repayments.c.loan_id == bindparam("loan"),
            _repayments.c.paid_on > bindparam("paid_on"),
        )
        .scalar_subquery(),
    )
    .where(_instalments.c.loan_id == bindparam("loan"))
    .order_by(_instalments.c.n)
)
_WRITE_INSTALMENT = (
    update(_instalments)
    .where(_instalments.c.loan_id == bindparam("loan"), _instalments.c.n == bindparam("k"))
    .values(principal_fen=bindparam("p"), interest_fen=bindparam("i"), paid_fen=bindparam("paid"))
)
_SET_FUND_SHARE = (
    update(_repayments)
    .where(_repayments.c.id == bindparam("repayment"))
    .values(fund_share_fen=bindparam("share"))
)


def _settled(loan: _Held, allocation: Allocation, today: date, now: datetime) -> dict[str, Any]:
    """The loan's status after the repayment: closed when nothing is owed; an overdue
    loan no longer past due is active again. `defaulted` ends only when the loan is
    closed (CONTRACT.md §4)."""
    owed = sum(i.principal_fen + i.interest_fen - i.paid_fen for i in allocation.instalments)
    if owed == 0:
        return {"status": LoanStatus.CLOSED, "closed_at": now, "days_past_due": 0}
    late_days = days_past_due(allocation.instalments, today)
    if loan.status == LoanStatus.OVERDUE and late_days == 0:
        return {"status": LoanStatus.ACTIVE, "days_past_due": 0}
    return {"days_past_due": late_days}


def get_repayment(session: Session, bank_id: str, repayment_id: str) -> LoanRepayment:
    repayment = session.get(LoanRepayment, repayment_id)
    if repayment is None or repayment.bank_id != bank_id:
        raise not_found("repayment", repayment_id)
    return repayment
