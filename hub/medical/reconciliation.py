"""Reconciliation (CONTRACT.md §2): after settlement, the hub's books, each
hospital's transaction list and each bank's statement are matched item by item.

Every difference is kept — missing on one side, an amount that differs, an item
listed twice — until an operator resolves it. Reruns find the same differences
and record them once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.clock import business_date
from hub.core.errors import Conflict, not_found
from hub.core.ids import new_id
from hub.core.references import insert_new
from hub.medical.settlement import payout_id, payout_line_id
from models.core.tables import Partner
from models.medical.tables import (
    Mismatch,
    MismatchStatus,
    Refund,
    SettlementLine,
    SettlementLineStatus,
    SettlementWindow,
    Visit,
)

Key = tuple[str, str]  # (kind, reference): ("capture", his_bill_id), ("payout", payout id)


@dataclass(frozen=True)
class Difference:
    kind: str  # missing_in_hub, missing_at_partner, amount_differs, duplicate
    ref: str
    hub_amount_fen: int | None
    partner_amount_fen: int | None


def window_dates(session: Session, window_id: str, zone: str) -> list[date]:
    """The business dates a window spans (a partner's lists are kept by date)."""
    window = session.get(SettlementWindow, window_id)
    if window is None or window.closed_at is None:
        raise not_found("closed settlement window", window_id)
    first, last = business_date(window.opened_at, zone), business_date(window.closed_at, zone)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def hospital_books(session: Session, window_id: str, hospital_id: str) -> dict[Key, int]:
    """The hub's captures and refunds of one hospital in one window."""
    captures = session.execute(
        select(Visit.his_bill_id, Visit.captured_fen).where(
            Visit.settlement_window_id == window_id, Visit.hospital_id == hospital_id
        )
    )
    refunds = session.execute(
        select(Refund.his_refund_id, Refund.amount_fen).where(
            Refund.settlement_window_id == window_id, Refund.hospital_id == hospital_id
        )
    )
    books = {("capture", str(ref)): int(amount) for ref, amount in captures}
    books.update({("refund", ref): int(amount) for ref, amount in refunds})
    return books


def hospital_refs_elsewhere(
    session: Session, window_id: str, hospital_id: str, keys: Iterable[Key]
) -> set[Key]:
    """Of these references, the ones the hub booked in another window."""
    bills = [ref for kind, ref in keys if kind == "capture"]
    refunds = [ref for kind, ref in keys if kind == "refund"]
    found = {
        ("capture", str(r))
        for r in session.scalars(
            select(Visit.his_bill_id).where(
                Visit.hospital_id == hospital_id,
                Visit.his_bill_id.in_(bills),
                Visit.settlement_window_id != window_id,
            )
        )
    }
    found |= {
        ("refund", r)
        for r in session.scalars(
            select(Refund.his_refund_id).where(
                Refund.hospital_id == hospital_id,
                Refund.his_refund_id.in_(refunds),
                Refund.settlement_window_id != window_id,
            )
        )
    }
    return found


def bank_books(session: Session, window_id: str, bank_id: str) -> dict[Key, int]:
    """The payouts the hub recorded as settled for one bank in one window."""
    rows = session.execute(
        select(SettlementLine.id, SettlementLine.net_fen).where(
            SettlementLine.window_id == window_id,
            SettlementLine.bank_id == bank_id,
            SettlementLine.status == SettlementLineStatus.SETTLED,
        )
    )
    return {("payout", payout_id(line_id)): int(net) for line_id, net in rows}


def bank_refs_elsewhere(session: Session, window_id: str, keys: Iterable[Key]) -> set[Key]:
    ids = [line_id for _, ref in keys if (line_id := payout_line_id(ref)) is not None]
    other = session.scalars(
        select(SettlementLine.id).where(
            SettlementLine.id.in_(ids), SettlementLine.window_id != window_id
        )
    )
    return {("payout", payout_id(line_id)) for line_id in other}


def compare(
    books: dict[Key, int], partner: Sequence[tuple[Key, int]], elsewhere: set[Key]
) -> list[Difference]:
    """Item by item: what is missing on either side, differs, or is listed twice."""
    seen = Counter(key for key, _ in partner)
    amounts = dict(partner)
    differences = [
        Difference("duplicate", f"{k[0]}:{k[1]}", books.get(k), amounts[k])
        for k, n in seen.items()
        if n > 1
    ]
    for key, amount in amounts.items():
        if key not in books and key not in elsewhere:
            differences.append(Difference("missing_in_hub", f"{key[0]}:{key[1]}", None, amount))
        elif key in books and books[key] != amount:
            differences.append(
                Difference("amount_differs", f"{key[0]}:{key[1]}", books[key], amount)
            )
    for key, amount in books.items():
        if key not in amounts:
            differences.append(Difference("missing_at_partner", f"{key[0]}:{key[1]}", amount, None))
    return differences


def record(
    session: Session, window_id: str, source: str, found: list[Difference], now: datetime
) -> int:
    """Keep each difference once (a rerun finds it again); returns how many are new."""
    new = 0
    for d in found:
        new += insert_new(
            session,
            Mismatch,
            {
                "id": new_id("mm"),
                "window_id": window_id,
                "source": source,
                "kind": d.kind,
                "ref": d.ref,
                "hub_amount_fen": d.hub_amount_fen,
                "partner_amount_fen": d.partner_amount_fen,
                "status": MismatchStatus.OPEN,
                "created_at": now,
            },
        )
    return new


def parties(session: Session, window_id: str) -> tuple[list[Partner], list[Partner]]:
    """The hospitals and banks with anything in the window."""
    hospital_ids = set(
        session.scalars(
            select(Visit.hospital_id).where(Visit.settlement_window_id == window_id).distinct()
        )
    )
    hospital_ids |= set(
        session.scalars(
            select(Refund.hospital_id).where(Refund.settlement_window_id == window_id).distinct()
        )
    )
    bank_ids = set(
        session.scalars(
            select(SettlementLine.bank_id).where(SettlementLine.window_id == window_id).distinct()
        )
    )
    every = {
        p.id: p
        for p in session.scalars(select(Partner).where(Partner.id.in_(hospital_ids | bank_ids)))
    }
    return (
        sorted((every[i] for i in hospital_ids), key=lambda p: p.code),
        sorted((every[i] for i in bank_ids), key=lambda p: p.code),
    )


def mismatch_view(m: Mismatch) -> dict[str, Any]:
    return {
        "mismatch_id": m.id,
        "window_id": m.window_id,
        "source": m.source,
        "kind": m.kind,
        "ref": m.ref,
        "hub_amount_fen": m.hub_amount_fen,
        "partner_amount_fen": m.partner_amount_fen,
        "status": m.status,
        "resolution": m.resolution,
        "created_at": m.created_at,
        "resolved_at": m.resolved_at,
    }


def open_mismatches(status: str = MismatchStatus.OPEN) -> Any:
    return select(Mismatch).where(Mismatch.status == status).order_by(Mismatch.id.desc())


class AlreadyResolved(Conflict):
    code = "mismatch_resolved"
    title = "The mismatch was resolved already"


def resolve(session: Session, mismatch_id: str, note: str, now: datetime) -> Mismatch:
    mismatch = session.get(Mismatch, mismatch_id, with_for_update=True)
    if mismatch is None:
        raise not_found("mismatch", mismatch_id)
    if mismatch.status != MismatchStatus.OPEN:
        raise AlreadyResolved(f"mismatch {mismatch_id} was resolved at {mismatch.resolved_at}")
    mismatch.status, mismatch.resolution, mismatch.resolved_at = (
        MismatchStatus.RESOLVED,
        note[:500],
        now,
    )
    return mismatch
