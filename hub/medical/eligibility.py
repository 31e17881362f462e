"""Eligibility checks: may this person pay by credit at this hospital now?

Advice to the hospital, not a gate: only a suspended or closed line refuses
visits and holds. A check lets the hospital see the person's line afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hub.core.personal_data import Vault
from hub.medical.lines import current_line, find_resident, grant_access, view_line
from models.medical.tables import LineStatus


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    credit_line_id: str | None = None
    available_fen: int | None = None
    reason: str | None = None


def check_eligibility(
    session: Session, vault: Vault, *, hospital_id: str, id_number: str, zone: str, now: datetime
) -> Eligibility:
    resident = find_resident(session, vault, id_number)
    line = current_line(session, resident.id) if resident is not None else None
    if line is None:
        return Eligibility(eligible=False, reason="not_enrolled")
    grant_access(session, hospital_id, line.id)
    view = view_line(session, line, now, zone)
    if view.status == LineStatus.SUSPENDED:
        return Eligibility(eligible=False, credit_line_id=line.id, reason="suspended")
    if view.overdue_fen > 0:
        return Eligibility(eligible=False, credit_line_id=line.id, reason="overdue")
    return Eligibility(eligible=True, credit_line_id=line.id, available_fen=view.available_fen)
