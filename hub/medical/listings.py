"""What the API lists: a hospital's visits, a visit's refunds, settlement batches and
reconciliation mismatches, newest first, a page at a time (`hub.core.pagination`)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.pagination import Page, newest_first
from hub.medical.reconciliation import open_mismatches
from hub.medical.settlement import visible_batches
from models.medical.tables import Mismatch, MismatchStatus, Refund, SettlementBatch, Visit


def visits(session: Session, hospital_id: str, params: Mapping[str, str]) -> Page[Visit]:
    """The hospital's visits (those with the `his_visit_id` in `params`, if given)."""
    query = select(Visit).where(Visit.hospital_id == hospital_id)
    if "his_visit_id" in params:
        query = query.where(Visit.his_visit_id == params["his_visit_id"])
    return newest_first(session, query, Visit.id, params)


def visit_refunds(session: Session, visit_id: str) -> list[Refund]:
    """Every refund of the visit, oldest first."""
    return list(
        session.scalars(select(Refund).where(Refund.visit_id == visit_id).order_by(Refund.id))
    )


def settlement_batches(
    session: Session, partner_id: str, kind: str, params: Mapping[str, str]
) -> Page[SettlementBatch]:
    """The batches the partner is party to (every batch, for operators)."""
    query = visible_batches(session, partner_id, kind)
    return newest_first(session, query, SettlementBatch.id, params)


def mismatches(
    session: Session, status: MismatchStatus, params: Mapping[str, str]
) -> Page[Mismatch]:
    """The mismatches in this state (open or resolved)."""
    return newest_first(session, open_mismatches(status), Mismatch.id, params)
