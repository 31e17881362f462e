"""Debts, refunds and repayments: what residents owe banks for closed visits.

A debt has its own id and a source: each closed visit with a capture leaves
one (a loan instalment will too). Repayments pay a line's debts oldest due
date first; a refund first reduces its own visit's unpaid part and the rest
the bank returns to the patient. The line's `outstanding_fen` is the sum of
unpaid debt, kept in step in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.clock import business_date
from hub.core.errors import Conflict, Invalid, not_found
from hub.core.ids import new_id
from hub.core.references import insert_or_replay
from hub.medical.lines import announce, lock_line, overdue_fen
from hub.medical.windows import open_window_id
from models.medical.tables import (
    CreditLine,
    Debt,
    DebtSource,
    LineStatus,
    Refund,
    Repayment,
    Visit,
    VisitStatus,
)


class RefundExceedsCaptured(Invalid):
    code = "refund_exceeds_captured"
    title = "More than the visit's captured amount less earlier refunds"


class Overpayment(Invalid):
    code = "overpayment"
    title = "More than is outstanding"


class VisitNotClosed(Conflict):
    code = "visit_not_closed"
    title = "Only a closed visit can be refunded"


def new_debt(
    session: Session, line_id: str, source_kind: DebtSource, source_id: str, due: date, amount: int
) -> Debt:
    """What the resident of a line now owes its bank for one source, due on `due`."""
    debt = Debt(
        id=new_id("dbt"),
        source_kind=source_kind,
        source_id=source_id,
        credit_line_id=line_id,
        due_date=due,
        amount_fen=amount,
        paid_fen=0,
        reduced_fen=0,
    )
    session.add(debt)
    return debt


def debt_of(session: Session, source_kind: DebtSource, source_id: str) -> Debt | None:
    """The debt left by one source (a visit), locked for the rest of the transaction."""
    return session.scalar(
        select(Debt)
        .where(Debt.source_kind == source_kind, Debt.source_id == source_id)
        .with_for_update()
    )


def refund_visit(
    session: Session,
    *,
    hospital_id: str,
    visit_id: str,
    amount_fen: int,
    his_refund_id: str,
    reason: str | None,
    now: datetime,
) -> tuple[Refund, bool]:
    """Refund part of a closed visit; returns the refund and whether it is new."""
    visit = session.scalar(
        select(Visit).where(Visit.id == visit_id).with_for_update(key_share=True)
    )
    if visit is None or visit.hospital_id != hospital_id:
        raise not_found("visit", visit_id)
    window_id = open_window_id(session, now)
    line = lock_line(session, visit.credit_line_id)
    refund, new = insert_or_replay(
        session,
        Refund,
        {
            "id": new_id("ref"),
            "visit_id": visit_id,
            "hospital_id": hospital_id,
            "bank_id": line.bank_id,
            "his_refund_id": his_refund_id,
            "reason": reason,
            "amount_fen": amount_fen,
            "debt_reduced_fen": 0,
            "returned_to_patient_fen": 0,
            "settlement_window_id": window_id,
            "created_at": now,
        },
        reference=("hospital_id", "his_refund_id"),
        request=("visit_id", "amount_fen", "reason"),
    )
    if not new:
        return refund, False
    if visit.status != VisitStatus.CLOSED:
        raise VisitNotClosed(f"visit {visit_id} is {visit.status}")
    if amount_fen > visit.refundable_fen:
        raise RefundExceedsCaptured(
            f"at most {visit.refundable_fen} fen of visit {visit_id} can be refunded"
        )
    debt = debt_of(session, DebtSource.VISIT, visit_id)
    reduced = min(debt.unpaid_fen, amount_fen) if debt else 0
    returned = amount_fen - reduced
    if debt is not None and reduced:
        debt.reduced_fen += reduced
        line.outstanding_fen -= reduced
    visit.refunded_fen += amount_fen
    refund.debt_reduced_fen, refund.returned_to_patient_fen = reduced, returned
    ledger.post(
        session,
        "refund",
        refund.id,
        [
            (ledger.payable(line.bank_id, hospital_id), amount_fen),
            (ledger.line_debt(line.id), -reduced),
            (ledger.refund_due(line.id), -returned),
        ],
        now,
    )
    session.flush()
    return refund, True


def get_refund(session: Session, hospital_id: str, refund_id: str) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None or refund.hospital_id != hospital_id:
        raise not_found("refund", refund_id)
    return refund


def repay(
    session: Session,
    *,
    bank_id: str,
    credit_line_id: str,
    amount_fen: int,
    bank_txn_id: str,
    paid_at: datetime,
    zone: str,
    now: datetime,
) -> tuple[Repayment, bool]:
    """Record the resident's repayment to the bank; oldest due date paid first."""
    line = session.get(CreditLine, credit_line_id)
    if line is None or line.bank_id != bank_id:
        raise not_found("credit line", credit_line_id)
    repayment, new = insert_or_replay(
        session,
        Repayment,
        {
            "id": new_id("rpy"),
            "credit_line_id": credit_line_id,
            "bank_id": bank_id,
            "bank_txn_id": bank_txn_id,
            "amount_fen": amount_fen,
            "outstanding_after_fen": 0,
            "paid_at": paid_at,
            "created_at": now,
        },
        reference=("bank_id", "bank_txn_id"),
        request=("credit_line_id", "amount_fen", "paid_at"),
    )
    if not new:
        return repayment, False
    line = lock_line(session, credit_line_id)
    if amount_fen > line.outstanding_fen:
        raise Overpayment(
            f"{amount_fen} fen is more than the {line.outstanding_fen} fen outstanding"
        )
    _pay_oldest_first(session, credit_line_id, amount_fen)
    line.outstanding_fen -= amount_fen
    repayment.outstanding_after_fen = line.outstanding_fen
    ledger.transfer(
        session,
        "repayment",
        repayment.id,
        ledger.bank_repaid(bank_id),
        ledger.line_debt(line.id),
        amount_fen,
        now,
    )
    session.flush()
    overdue_suspended = line.status == LineStatus.SUSPENDED and line.suspension_reason == "overdue"
    if overdue_suspended and overdue_fen(session, line.id, business_date(now, zone)) == 0:
        line.status, line.suspension_reason = LineStatus.ACTIVE, None
        session.flush()
        announce(session, line, "credit_line.reinstated", zone, now)
    return repayment, True


def _pay_oldest_first(session: Session, line_id: str, amount: int) -> None:
    debts = session.scalars(
        select(Debt)
        .where(Debt.credit_line_id == line_id, Debt.unpaid_fen > 0)
        .order_by(Debt.due_date, Debt.id)
        .with_for_update()
    )
    for debt in debts:
        if amount == 0:
            break
        pay = min(amount, debt.unpaid_fen)
        debt.paid_fen += pay
        amount -= pay
    assert amount == 0, "outstanding_fen and the debts disagree"


def get_repayment(session: Session, bank_id: str, repayment_id: str) -> Repayment:
    repayment = session.get(Repayment, repayment_id)
    if repayment is None or repayment.bank_id != bank_id:
        raise not_found("repayment", repayment_id)
    return repayment
