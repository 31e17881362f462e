"""Settlement (CONTRACT.md §2): deferred net per bank and hospital, per window.

Closing a window freezes what it holds. Its settlement lines are computed in
one set-based statement (captured − refunded + the pair's negative net carried
from the window before); a line whose net is not positive is carried on. Each
positive line is paid by one bank transfer under a key derived from the line
(`payout_id`, `payout:<line id>`): the intent is recorded before the call and
the outcome after it, so a rerun at any point never pays a line twice and
never loses one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from hub.core import events, ledger
from hub.core.clock import business_date
from hub.core.errors import not_found
from hub.core.ids import new_id
from models.core.tables import Partner
from models.medical.tables import (
    BatchStatus,
    SettlementBatch,
    SettlementLine,
    SettlementLineStatus,
    SettlementWindow,
    WindowStatus,
)

_PAYOUT = "payout:"
_UNPAID = (SettlementLineStatus.PENDING, SettlementLineStatus.INSTRUCTED)  # positive, not paid

# Captures and refunds of the window, and the negative nets carried from the
# window before, summed per bank and hospital in the database. A plain SELECT
# (PostgreSQL runs no statement that writes in parallel), each source summed on
# its own so that only a few hundred rows reach the outer GROUP BY.
_SUM_LINES = text("""
SELECT bank_id, hospital_id, SUM(captured), SUM(refunded), SUM(carried)
FROM (
    SELECT bank_id, hospital_id, SUM(captured_fen) AS captured, 0 AS refunded, 0 AS carried
      FROM visits WHERE settlement_window_id = :window GROUP BY bank_id, hospital_id
    UNION ALL
    SELECT bank_id, hospital_id, 0, SUM(amount_fen), 0
      FROM refunds WHERE settlement_window_id = :window GROUP BY bank_id, hospital_id
    UNION ALL
    SELECT bank_id, hospital_id, 0, 0, net_fen
      FROM settlement_lines WHERE window_id = :previous AND status = :carried AND net_fen < 0
) AS movements
GROUP BY bank_id, hospital_id
""")


def payout_id(line_id: int) -> str:
    """A settlement line's payout: the bank transfer's key and the statement's reference."""
    return f"{_PAYOUT}{line_id}"


def payout_line_id(ref: str) -> int | None:
    """The settlement line a payout reference names, or None if it names none."""
    number = ref.removeprefix(_PAYOUT)
    if number == ref or not (number.isascii() and number.isdigit()):
        return None
    return int(number)


@dataclass(frozen=True)
class PayoutOrder:
    """One positive line to pay: everything the bank call needs."""

    line_id: int
    payout_id: str
    bank_code: str
    hospital_code: str
    amount_fen: int
    value_date: date


def compute(session: Session, window_id: str, zone: str, now: datetime) -> bool:
    """Compute a closed window's lines and batches (and any earlier window's first).

    Returns False when there was nothing to do: the window is open, or already computed.
    """
    window = session.get(SettlementWindow, window_id, with_for_update=True)
    if window is None:
        raise not_found("settlement window", window_id)
    if window.status != WindowStatus.CLOSED:
        return False
    previous = window.previous_window_id
    if previous is not None:
        compute(session, previous, zone, now)  # carried nets come from the window before
    sums = session.execute(
        _SUM_LINES,
        {"window": window_id, "previous": previous or "", "carried": SettlementLineStatus.CARRIED},
    ).all()
    lines = [
        {
            "window_id": window_id,
            "bank_id": bank_id,
            "hospital_id": hospital_id,
            "captured_fen": int(captured),
            "refunded_fen": int(refunded),
            "carried_in_fen": int(carried),
            "net_fen": int(captured - refunded + carried),
        }
        for bank_id, hospital_id, captured, refunded, carried in sums
    ]
    paying_banks = sorted({line["bank_id"] for line in lines if line["net_fen"] > 0})
    batches = {bank_id: new_id("stl") for bank_id in paying_banks}  # none for a bank not paying
    if batches:
        session.execute(
            insert(SettlementBatch),
            [
                {
                    "id": batch_id,
                    "window_id": window_id,
                    "bank_id": bank_id,
                    "status": BatchStatus.PENDING,
                    "created_at": now,
                }
                for bank_id, batch_id in batches.items()
            ],
        )
    if lines:
        session.execute(
            insert(SettlementLine),
            [
                {
                    **line,
                    "batch_id": batches.get(line["bank_id"]),
                    "status": (
                        SettlementLineStatus.PENDING
                        if line["net_fen"] > 0
                        else SettlementLineStatus.CARRIED
                    ),
                }
                for line in lines
            ],
        )
    window.status = WindowStatus.COMPUTED if paying_banks else WindowStatus.SETTLED
    window.settled_at = None if paying_banks else now
    return True


def orders(session: Session, window_id: str, zone: str) -> list[PayoutOrder]:
    """The window's positive lines not yet confirmed paid (pending or instructed)."""
    window = session.get(SettlementWindow, window_id)
    assert window is not None and window.closed_at is not None
    value_date = business_date(window.closed_at, zone)
    bank, hospital = Partner.__table__.alias("bank"), Partner.__table__.alias("hospital")
    rows = session.execute(
        select(SettlementLine.id, SettlementLine.net_fen, bank.c.code, hospital.c.code)
        .join(bank, bank.c.id == SettlementLine.bank_id)
        .join(hospital, hospital.c.id == SettlementLine.hospital_id)
        .where(
            SettlementLine.window_id == window_id,
            SettlementLine.status.in_(_UNPAID),
        )
        .order_by(SettlementLine.id)
    )
    return [
        PayoutOrder(line_id, payout_id(line_id), bank_code, hospital_code, net, value_date)
        for line_id, net, bank_code, hospital_code in rows
    ]


def mark_instructed(session: Session, line_id: int, now: datetime) -> None:
    """Record the intent to pay before asking the bank (a rerun asks again, same key)."""
    session.execute(
        update(SettlementLine)
        .where(SettlementLine.id == line_id, SettlementLine.status == SettlementLineStatus.PENDING)
        .values(status=SettlementLineStatus.INSTRUCTED, instructed_at=now)
        .execution_options(synchronize_session=False)
    )


def confirm(session: Session, line_id: int, transfer_ref: str, now: datetime) -> bool:
    """The bank paid: settle the line and book it, once. False if it was settled already."""
    line = session.get(SettlementLine, line_id, with_for_update=True)
    assert line is not None
    if line.status not in _UNPAID:
        return False
    line.status, line.transfer_ref, line.settled_at, line.last_error = (
        SettlementLineStatus.SETTLED,
        transfer_ref,
        now,
        None,
    )
    ledger.transfer(
        session,
        "settlement_paid",
        payout_id(line_id),
        ledger.payable(line.bank_id, line.hospital_id),
        ledger.bank_paid_out(line.bank_id),
        line.net_fen,
        now,
    )
    return True


def fail(session: Session, line_id: int, error: str, now: datetime) -> None:
    """The bank refused the transfer: the line (and its batch) failed, for an operator."""
    session.execute(
        update(SettlementLine)
        .where(SettlementLine.id == line_id, SettlementLine.status.in_(_UNPAID))
        .values(status=SettlementLineStatus.FAILED, last_error=error[:200])
        .execution_options(synchronize_session=False)
    )


def note_retry(session: Session, line_id: int, error: str) -> None:
    """The bank could not be reached: the line stays instructed for the next run."""
    session.execute(
        update(SettlementLine)
        .where(SettlementLine.id == line_id)
        .values(last_error=error[:200])
        .execution_options(synchronize_session=False)
    )


def roll_up(session: Session, window_id: str, now: datetime) -> dict[str, str]:
    """Batch and window states from their lines; announces batches that changed."""
    window = session.get(SettlementWindow, window_id, with_for_update=True)
    assert window is not None
    states: dict[str, str] = {}
    for batch in session.scalars(
        select(SettlementBatch).where(SettlementBatch.window_id == window_id)
    ):
        statuses = set(
            session.scalars(
                select(SettlementLine.status).where(SettlementLine.batch_id == batch.id)
            )
        )
        new = _batch_status(statuses - {SettlementLineStatus.CARRIED})
        if new != batch.status:
            batch.status = new
            if new in (BatchStatus.INSTRUCTED, BatchStatus.SETTLED):
                session.flush()
                _announce(session, batch, f"settlement.{new}", now)
        states[batch.id] = new
    settled = states and all(s == BatchStatus.SETTLED for s in states.values())
    if window.status == WindowStatus.COMPUTED and settled:
        window.status, window.settled_at = WindowStatus.SETTLED, now
    return states


def _batch_status(paying: set[str]) -> BatchStatus:
    """A batch's status from its paying (not carried) lines' statuses."""
    if SettlementLineStatus.FAILED in paying:
        return BatchStatus.FAILED
    if paying <= {SettlementLineStatus.SETTLED}:
        return BatchStatus.SETTLED
    if SettlementLineStatus.INSTRUCTED in paying or SettlementLineStatus.SETTLED in paying:
        return BatchStatus.INSTRUCTED
    return BatchStatus.PENDING


def _announce(session: Session, batch: SettlementBatch, type_: str, now: datetime) -> None:
    hospitals = set(
        session.scalars(
            select(SettlementLine.hospital_id).where(SettlementLine.batch_id == batch.id)
        )
    )
    events.emit(session, type_, batch_view(session, batch, None), {batch.bank_id, *hospitals}, now)


def batch_view(session: Session, batch: SettlementBatch, hospital_id: str | None) -> dict[str, Any]:
    """The batch as `GET /v1/settlements/{id}` shows it; a hospital sees only its lines."""
    window = session.get(SettlementWindow, batch.window_id)
    assert window is not None
    query = (
        select(SettlementLine, Partner.code)
        .join(Partner, Partner.id == SettlementLine.hospital_id)
        .where(SettlementLine.batch_id == batch.id)
        .order_by(Partner.code)
    )
    if hospital_id is not None:
        query = query.where(SettlementLine.hospital_id == hospital_id)
    lines: list[dict[str, Any]] = [
        {
            "hospital_code": code,
            "captured_fen": line.captured_fen,
            "refunded_fen": line.refunded_fen,
            "carried_in_fen": line.carried_in_fen,
            "net_fen": line.net_fen,
            "status": line.status,
            "transfer_ref": line.transfer_ref,
        }
        for line, code in session.execute(query)
    ]
    bank_code = session.scalar(select(Partner.code).where(Partner.id == batch.bank_id))
    return {
        "settlement_id": batch.id,
        "window": {
            "window_id": window.id,
            "opened_at": window.opened_at,
            "closed_at": window.closed_at,
        },
        "bank_code": bank_code,
        "status": batch.status,
        "lines": lines,
        "total_fen": sum(line["net_fen"] for line in lines if line["net_fen"] > 0),
    }


def visible_batches(session: Session, partner_id: str, kind: str) -> Any:
    """The batches a partner is party to (as a query)."""
    query = select(SettlementBatch)
    if kind == "bank":
        return query.where(SettlementBatch.bank_id == partner_id)
    if kind == "hospital":
        mine = select(SettlementLine.batch_id).where(SettlementLine.hospital_id == partner_id)
        return query.where(SettlementBatch.id.in_(mine))
    return query  # operators see every batch


def get_batch(session: Session, partner_id: str, kind: str, batch_id: str) -> SettlementBatch:
    batch = session.scalar(
        visible_batches(session, partner_id, kind).where(SettlementBatch.id == batch_id)
    )
    if batch is None:
        raise not_found("settlement", batch_id)
    return batch


def window_report(session: Session, window_id: str) -> list[dict[str, Any]]:
    """Every line of a window with bank and hospital codes, for operators."""
    bank, hospital = Partner.__table__.alias("bank"), Partner.__table__.alias("hospital")
    rows = session.execute(
        select(SettlementLine, bank.c.code, hospital.c.code)
        .join(bank, bank.c.id == SettlementLine.bank_id)
        .join(hospital, hospital.c.id == SettlementLine.hospital_id)
        .where(SettlementLine.window_id == window_id)
        .order_by(bank.c.code, hospital.c.code)
    )
    return [
        {
            "bank_code": bank_code,
            "hospital_code": hospital_code,
            "captured_fen": line.captured_fen,
            "refunded_fen": line.refunded_fen,
            "carried_in_fen": line.carried_in_fen,
            "net_fen": line.net_fen,
            "status": line.status,
            "transfer_ref": line.transfer_ref,
            "last_error": line.last_error,
        }
        for line, bank_code, hospital_code in rows
    ]
