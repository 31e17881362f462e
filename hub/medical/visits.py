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
from hub.core.errors import InsufficientCredit, not_found
from hub.core.ids import new_id
from hub.core.references import insert_new, replay_or_refuse
from hub.medical.holds import LineNotActive, VisitNotOpen, release_expired
from hub.medical.lines import grant_access, line_visible_to, lock_line
from hub.medical.windows import open_window_id
from models.medical.tables import Authorization, CreditLine, Debt, Visit


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
    visit_id = new_id("vis")
    inserted = insert_new(
        session,
        Visit,
        {
            "id": visit_id,
            "hospital_id": hospital_id,
            "credit_line_id": credit_line_id,
            "bank_id": line.bank_id,
            "his_visit_id": his_visit_id,
            "kind": kind,
            "department": department,
            "status": "open",
            "opened_at": now,
        },
    )
    if not inserted:
        existing = session.scalar(
            select(Visit).where(
                Visit.hospital_id == hospital_id, Visit.his_visit_id == his_visit_id
            )
        )
        same = existing is not None and (
            existing.credit_line_id,
            existing.kind,
            existing.department,
        ) == (credit_line_id, kind, department)
        return replay_or_refuse(existing, "his_visit_id", same), False
    if line.status != "active":
        raise LineNotActive(f"credit line {credit_line_id} is {line.status}")
    grant_access(session, hospital_id, credit_line_id)
    visit = session.get(Visit, visit_id)
    assert visit is not None
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


def _same_bill(visit: Visit, bill: Bill) -> bool:
    return visit.bill == {"items": bill.items} and (
        visit.total_fen,
        visit.insurance_fen,
        visit.self_pay_fen,
    ) == (bill.total_fen, bill.insurance_fen, bill.self_pay_fen)


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
    same_ref = session.scalar(
        select(Visit).where(Visit.hospital_id == hospital_id, Visit.his_bill_id == bill.his_bill_id)
    )
    if same_ref is not None:
        return replay_or_refuse(
            same_ref, "his_bill_id", same_ref.id == visit.id and _same_bill(visit, bill)
        ), False
    if visit.status != "open":
        raise VisitNotOpen(f"visit {visit_id} is {visit.status}")

    line = lock_line(session, visit.credit_line_id)
    if release_expired(session, line.id, now):
        session.refresh(line)
    holds = [a for a in visit_authorizations(session, visit_id) if a.status == "held"]
    extra = bill.self_pay_fen - sum(a.amount_fen for a in holds)
    if extra > 0:  # the share beyond the holds is held first: an active line, enough credit
        if line.status != "active":
            raise LineNotActive(f"credit line {line.id} is {line.status}")
        if line.limit_fen - line.held_fen - line.outstanding_fen < extra:
            raise InsufficientCredit(f"not enough available credit on {line.id} for {extra} fen")
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
        status = "captured" if take else "released"
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
    session.execute(
        update(CreditLine)
        .where(CreditLine.id == line.id)
        .values(
            held_fen=CreditLine.held_fen - held,
            outstanding_fen=CreditLine.outstanding_fen + capture,
        )
        .execution_options(synchronize_session=False)
    )
    due = business_date(now, zone) + timedelta(days=repay_days) if capture else None
    if capture:
        session.add(
            Debt(visit_id=visit.id, credit_line_id=line.id, due_date=due, amount_fen=capture)
        )
    visit.status, visit.closed_at, visit.his_bill_id = "closed", now, bill.his_bill_id
    visit.bill = {"items": bill.items}
    visit.total_fen, visit.insurance_fen = bill.total_fen, bill.insurance_fen
    visit.self_pay_fen, visit.captured_fen = capture, capture
    visit.released_fen, visit.due_date = held - min(held, capture), due
    visit.settlement_window_id = open_window_id(session, now) if capture else None
    ledger.post(
        session,
        "visit_closed",
        visit.id,
        [
            (ledger.hospital_holds(hospital_id), held),
            (ledger.line_held(line.id), -held),
            (ledger.line_debt(line.id), capture),
            (ledger.payable(line.bank_id, hospital_id), -capture),
            (ledger.insurance_due(hospital_id), bill.insurance_fen),
            (ledger.hospital_insured(hospital_id), -bill.insurance_fen),
        ],
        now,
    )
    session.flush()


def _balance_hold(
    session: Session, visit: Visit, his_bill_id: str, amount: int, now: datetime
) -> Authorization:
    """The part of the patient's share beyond the holds, held at the close itself."""
    auth = Authorization(
        id=new_id("auth"),
        visit_id=visit.id,
        credit_line_id=visit.credit_line_id,
        hospital_id=visit.hospital_id,
        his_order_id=f"bill:{his_bill_id}",
        description="balance of the final bill",
        status="held",
        amount_fen=amount,
        initial_fen=amount,
        captured_fen=0,
        created_at=now,
        expires_at=now,
    )
    session.add(auth)
    session.execute(
        update(CreditLine)
        .where(CreditLine.id == visit.credit_line_id)
        .values(held_fen=CreditLine.held_fen + amount)
        .execution_options(synchronize_session=False)
    )
    ledger.transfer(
        session,
        "hold_placed",
        auth.id,
        ledger.line_held(visit.credit_line_id),
        ledger.hospital_holds(visit.hospital_id),
        amount,
        now,
    )
    session.flush()
    return auth
