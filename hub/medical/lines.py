"""Residents and their credit lines: opening a line, and reading its balances.

For every line at every moment: available = limit - held - outstanding, with
held + outstanding <= limit and outstanding >= 0 (the table's CHECKs hold the
stored columns to it). Held amounts include holds that have expired but not
yet been swept; every read subtracts those, so expiry is a fact of time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.core import events
from hub.core.clock import business_date
from hub.core.errors import Conflict, NotFound
from hub.core.ids import new_id
from hub.core.personal_data import Vault
from models.core.tables import Partner
from models.medical.tables import (
    Authorization,
    AuthorizationStatus,
    CreditLine,
    Debt,
    LineAccess,
    LineStatus,
    Resident,
    Visit,
    VisitStatus,
)


class LineNotActive(Conflict):
    code = "line_not_active"
    title = "The credit line is suspended or closed"


class AlreadyEnrolled(Conflict):
    code = "already_enrolled"
    title = "The resident already has a credit line"

    def __init__(self, line_id: str):
        super().__init__(f"the resident already has credit line {line_id}")
        self.existing_id = line_id


@dataclass(frozen=True)
class LineView:
    """A credit line's balances as of an instant, as the contract shows them."""

    credit_line_id: str
    status: str
    limit_fen: int
    held_fen: int
    outstanding_fen: int
    overdue_fen: int
    bank_code: str
    next_due_date: date | None

    @property
    def available_fen(self) -> int:
        return self.limit_fen - self.held_fen - self.outstanding_fen

    def as_contract(self) -> dict[str, object]:
        """The line as `GET /v1/credit-lines/{id}` (and its events) show it."""
        return {
            "credit_line_id": self.credit_line_id,
            "status": self.status,
            "limit_fen": self.limit_fen,
            "available_fen": self.available_fen,
            "held_fen": self.held_fen,
            "outstanding_fen": self.outstanding_fen,
            "overdue_fen": self.overdue_fen,
            "bank_code": self.bank_code,
            "next_due_date": self.next_due_date,
        }


def find_resident(session: Session, vault: Vault, id_number: str) -> Resident | None:
    return session.scalar(
        select(Resident).where(Resident.id_number_hash == vault.lookup_hash(id_number))
    )


def current_line(session: Session, resident_id: str) -> CreditLine | None:
    """The resident's line that is not closed, if any."""
    return session.scalar(
        select(CreditLine).where(
            CreditLine.resident_id == resident_id, CreditLine.status != LineStatus.CLOSED
        )
    )


def open_line(
    session: Session,
    vault: Vault,
    *,
    id_number: str,
    name: str,
    phone: str | None,
    bank_id: str,
    limit_fen: int,
    source: str,
    now: datetime,
) -> CreditLine:
    """Open an active line for a resident (created on first sight).

    Raises AlreadyEnrolled when the resident holds a line that is not closed;
    the partial unique index makes that hold under races too.
    """
    resident = find_resident(session, vault, id_number)
    if resident is None:
        resident = Resident(
            id=new_id("res"),
            id_number_hash=vault.lookup_hash(id_number),
            id_number_enc=vault.encrypt(id_number),
            name_enc=vault.encrypt(name),
            phone_enc=vault.encrypt(phone) if phone else None,
            created_at=now,
        )
        session.add(resident)
        session.flush()  # the ORM orders inserts only along relationships; we declare none
    else:
        existing = current_line(session, resident.id)
        if existing is not None:
            raise AlreadyEnrolled(existing.id)
    line = CreditLine(
        id=new_id("cl"),
        resident_id=resident.id,
        bank_id=bank_id,
        status=LineStatus.ACTIVE,
        limit_fen=limit_fen,
        held_fen=0,
        outstanding_fen=0,
        source=source,
        opened_at=now,
    )
    session.add(line)
    session.flush()
    return line


def lock_line(session: Session, line_id: str) -> CreditLine:
    """The line, freshly read and locked for the rest of the transaction.

    Every transaction that changes a line takes its locks in one order —
    visit, then line, then holds and debts — so PostgreSQL never deadlocks.
    """
    line = session.scalar(
        select(CreditLine)
        .where(CreditLine.id == line_id)
        # NO KEY UPDATE: inserting a hold takes a KEY SHARE lock on its line
        # (the foreign key), which a plain FOR UPDATE would wait on.
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    assert line is not None, f"credit line {line_id} vanished"
    return line


def grant_access(session: Session, partner_id: str, line_id: str) -> None:
    """Let a hospital see a line it has checked or visited (idempotent)."""
    if session.get(LineAccess, (partner_id, line_id)) is None:
        session.add(LineAccess(partner_id=partner_id, credit_line_id=line_id))
        session.flush()


def expired_held_fen(session: Session, line_id: str, now: datetime) -> int:
    """What the line still counts as held for holds already past their expiry."""
    total = session.scalar(
        select(func.coalesce(func.sum(Authorization.amount_fen), 0)).where(
            Authorization.credit_line_id == line_id,
            Authorization.status == AuthorizationStatus.HELD,
            Authorization.expires_at <= now,
        )
    )
    return int(total or 0)


def overdue_fen(session: Session, line_id: str, today: date) -> int:
    """Unpaid debt at least one day past its due date."""
    total = session.scalar(
        select(func.coalesce(func.sum(Debt.unpaid_fen), 0)).where(
            Debt.credit_line_id == line_id, Debt.due_date <= today - timedelta(days=1)
        )
    )
    return int(total or 0)


def next_due_date(session: Session, line_id: str) -> date | None:
    return session.scalar(
        select(func.min(Debt.due_date)).where(Debt.credit_line_id == line_id, Debt.unpaid_fen > 0)
    )


def view_line(session: Session, line: CreditLine, now: datetime, zone: str) -> LineView:
    bank_code = session.scalar(select(Partner.code).where(Partner.id == line.bank_id))
    return LineView(
        credit_line_id=line.id,
        status=line.status,
        limit_fen=line.limit_fen,
        held_fen=line.held_fen - expired_held_fen(session, line.id, now),
        outstanding_fen=line.outstanding_fen,
        overdue_fen=overdue_fen(session, line.id, business_date(now, zone)),
        bank_code=bank_code or "",
        next_due_date=next_due_date(session, line.id),
    )


def line_visible_to(session: Session, line_id: str, partner_id: str, kind: str) -> CreditLine:
    """The line, if this partner may see it: its bank, or a hospital that checked or visited."""
    line = session.get(CreditLine, line_id)
    if line is not None:
        if kind == "bank" and line.bank_id == partner_id:
            return line
        if kind == "hospital" and session.get(LineAccess, (partner_id, line_id)) is not None:
            return line
    raise NotFound(f"no credit line {line_id}")


def line_recipients(session: Session, line: CreditLine) -> set[str]:
    """Credit-line events go to the line's bank and hospitals with open visits on it."""
    hospitals = session.scalars(
        select(Visit.hospital_id)
        .where(Visit.credit_line_id == line.id, Visit.status == VisitStatus.OPEN)
        .distinct()
    )
    return {line.bank_id, *hospitals}


def announce(session: Session, line: CreditLine, type_: str, zone: str, now: datetime) -> None:
    """Queue a credit-line event (suspended, reinstated) with the line as GET shows it."""
    data = view_line(session, line, now, zone).as_contract()
    events.emit(session, type_, data, line_recipients(session, line), now)
