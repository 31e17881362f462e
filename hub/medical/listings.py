"""What the API lists: a hospital's visits, a visit's refunds, settlement batches and
reconciliation mismatches, newest first, a page at a time (`limit`, and a cursor:
the last id of the page before)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.medical.reconciliation import open_mismatches
from hub.medical.settlement import visible_batches
from models.medical.tables import Mismatch, Refund, SettlementBatch, Visit


def _page(session: Session, query: Any, limit: int) -> tuple[list[Any], bool]:
    """The first `limit` rows, and whether more follow."""
    found = list(session.scalars(query.limit(limit + 1)))
    return found[:limit], len(found) > limit


def visits(
    session: Session, hospital_id: str, his_visit_id: str | None, cursor: str | None, limit: int
) -> tuple[list[Visit], bool]:
    """The hospital's visits (those with this HIS visit id, if given)."""
    query = select(Visit).where(Visit.hospital_id == hospital_id)
    if his_visit_id is not None:
        query = query.where(Visit.his_visit_id == his_visit_id)
    if cursor:
        query = query.where(Visit.id < cursor)
    return _page(session, query.order_by(Visit.id.desc()), limit)


def visit_refunds(session: Session, visit_id: str) -> list[Refund]:
    """Every refund of the visit, oldest first."""
    return list(
        session.scalars(select(Refund).where(Refund.visit_id == visit_id).order_by(Refund.id))
    )


def settlement_batches(
    session: Session, partner_id: str, kind: str, cursor: str | None, limit: int
) -> tuple[list[SettlementBatch], bool]:
    """The batches the partner is party to (every batch, for operators)."""
    query: Any = visible_batches(session, partner_id, kind)
    if cursor:
        query = query.where(SettlementBatch.id < cursor)
    return _page(session, query, limit)


def mismatches(
    session: Session, status: str, cursor: str | None, limit: int
) -> tuple[list[Mismatch], bool]:
    """The mismatches in this state (open or resolved)."""
    query: Any = open_mismatches(status)
    if cursor:
        query = query.where(Mismatch.id < cursor)
    return _page(session, query, limit)
