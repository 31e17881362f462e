"""Visits: opened on a line by a hospital, closed once with the final bill.

Closing captures the patient's own share from the visit's live holds, oldest
first, releases the rest, records the insurance share, and leaves one debt
due `repayment_window_days` after the business date of the close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.clock import business_date
from hub.core.errors import not_found
from hub.core.ids import new_id
from hub.core.references import insert_or_replay, replay
from hub.medical import held_credit
from hub.medical.debts import new_debt
from hub.medical.holds import VisitNotOpen, release_expired
from hub.medical.lines import LineNotActive, grant_access, line_visible_to, lock_line
from hub.medical.windows import open_window_id
from models.medical.tables import (
    Authorization,
    AuthorizationStatus,
    CreditLine,
    DebtSource,
    LineStatus,
    Visit,
    VisitStatus,
)


@dataclass(frozen=True)
class Bill:
    his_bill_id: str
    total_fen: int
    insurance_fen: int
    self_pay_fen: int
    items: list[dict[str, Any]]


def open_visit(
    session: Session,
    *,
    hospital_id: str,
    credit_line_id: str,
    his_visit_id: str,
    kind: str,
    department: str | None,
    now: datetime,
) -> tuple[Visit, bool]:
    """Open a visit on a line the hospital may see; returns it and whether it is new."""
    line = line_visible_to(session, credit_line_id, hospital_id, "hospital")
    visit, new = insert_or_replay(
        session,
        Visit,
        {
            "id": new_id("vis"),
            "hospital_id": hospital_id,
            "credit_line_id": credit_line_id,
            "bank_id": line.bank_id,
            "his_visit_id": his_visit_id,
            "kind": kind,
            "department": department,
            "status": VisitStatus.OPEN,
            "opened_at": now,
        },
        reference=("hospital_id", "his_visit_id"),
        request=("credit_line_id", "kind", "department"),
    )
    if not new:
        return visit, False
    if line.status != LineStatus.ACTIVE:
        raise LineNotActive(f"credit line {credit_line_id} is {line.status}")
    grant_access(session, hospital_id, credit_line_id)
    return visit, True


def get_visit(session: Session, hospital_id: str, visit_id: str) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.hospital_id != hospital_id:
        raise not_found("visit", visit_id)
    return visit


def visit_authorizations(session: Session, visit_id: str) -> list[Authorization]:
    return list(
        session.scalars(
            select(Authorization)
            .where(Authorization.visit_id == visit_id)
            .order_by(Authorization.created_at, Authorization.id)
            .execution_options(populate_existing=True)
        )
    )


def close_visit(
    session: Session,
    *,
    hospital_id: str,
    visit_id: str,
    bill: Bill,
    repay_days: int,
    zone: str,
    now: datetime,
) -> tuple[Visit, bool]:
    """Capture the patient's share and release the rest; returns the visit, and if it is new."""
    visit = session.scalar(
        select(Visit).where(Visit.id == visit_id).with_for_update(key_share=True)
    )
    if visit is None or visit.hospital_id != hospital_id:
        raise not_found("visit", visit_id)
    repeated = replay(
        session,
        Visit,
        {"hospital_id": hospital_id, "his_bill_id": bill.his_bill_id},
        {
            "id": visit.id,
            "bill": {"items": bill.items},
            "total_fen": bill.total_fen,
            "insurance_fen": bill.insurance_fen,
            "self_pay_fen": bill.self_pay_fen,
        },
    )
    if repeated is not None:
        return repeated, False
    if visit.status != VisitStatus.OPEN:
        raise VisitNotOpen(f"visit {visit_id} is {visit.status}")

    line = lock_line(session, visit.credit_line_id)
    release_expired(session, line.id, now)
    holds = [
        a for a in visit_authorizations(session, visit_id) if a.status == AuthorizationStatus.HELD
    ]
    extra = bill.self_pay_fen - sum(a.amount_fen for a in holds)
    if extra > 0:  # the share beyond the holds is held first, as any hold is
        holds.append(_balance_hold(session, visit, bill.his_bill_id, extra, now))
    held = sum(a.amount_fen for a in holds)
    _capture_oldest_first(session, holds, bill.self_pay_fen)
    _record_close(session, visit, line, bill, held, repay_days, zone, now)
    return visit, True


def _capture_oldest_first(session: Session, holds: list[Authorization], capture: int) -> None:
    """Take `capture` from the holds in the order given; the rest of each is released."""
    changes = []
    for auth in holds:
        take = min(capture, auth.amount_fen)
        capture -= take
        status = AuthorizationStatus.CAPTURED if take else AuthorizationStatus.RELEASED
        changes.append({"id": auth.id, "status": status, "captured_fen": take})
    if changes:
        session.execute(update(Authorization), changes)


def _record_close(
    session: Session,
    visit: Visit,
    line: CreditLine,
    bill: Bill,
    held: int,
    repay_days: int,
    zone: str,
    now: datetime,
) -> None:
    """Move the line from held to owed, leave the debt, and book the bill."""
    capture, hospital_id = bill.self_pay_fen, visit.hospital_id
    held_credit.capture(
        session,
        line_id=line.id,
        bank_id=line.bank_id,
        hospital_id=hospital_id,
        held_fen=held,
        captured_fen=capture,
        kind="visit_closed",
        ref=visit.id,
        now=now,
        other_legs=[
            (ledger.insurance_due(hospital_id), bill.insurance_fen),
            (ledger.hospital_insured(hospital_id), -bill.insurance_fen),
        ],
    )
    due = business_date(now, zone) + timedelta(days=repay_days) if capture else None
    if due is not None:
        new_debt(session, line.id, DebtSource.VISIT, visit.id, due, capture)
    visit.status, visit.closed_at, visit.his_bill_id = VisitStatus.CLOSED, now, bill.his_bill_id
    visit.bill = {"items": bill.items}
    visit.total_fen, visit.insurance_fen = bill.total_fen, bill.insurance_fen
    visit.self_pay_fen, visit.captured_fen = capture, capture
    visit.released_fen, visit.due_date = held - min(held, capture), due
    visit.settlement_window_id = open_window_id(session, now) if capture else None
    session.flush()


def _balance_hold(
    session: Session, visit: Visit, his_bill_id: str, amount: int, now: datetime
) -> Authorization:
    """The part of the patient's share beyond the holds, held at the close itself.

    Reserved like any hold (LineNotActive, InsufficientCredit); the line's
    expired holds were released already.
    """
    auth_id = new_id("auth")
    held_credit.reserve(
        session,
        line_id=visit.credit_line_id,
        hospital_id=visit.hospital_id,
        amount_fen=amount,
        kind="hold_placed",
        ref=auth_id,
        now=now,
    )
    auth = Authorization(
        id=auth_id,
        visit_id=visit.id,
        credit_line_id=visit.credit_line_id,
        hospital_id=visit.hospital_id,
        his_order_id=f"bill:{his_bill_id}",
        description="balance of the final bill",
        status=AuthorizationStatus.HELD,
        amount_fen=amount,
        initial_fen=amount,
        captured_fen=0,
        created_at=now,
        expires_at=now,
    )
    session.add(auth)
    session.flush()
    return auth
