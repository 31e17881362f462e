"""The treat-first-pay-later programme in figures, as operators' dashboards read them.

Counts and sums over the tables, one aggregate statement each, so that every API
process reports the whole hub's truth however many processes and flow workers
wrote it: holds by state (a hold past its expiry counts as expired whether or
not the sweep has run — expiry is a fact of time), enrolments by outcome and
decline reason, settlement lines by state with their nets in fen. Every state
is named, at 0 when no row has it, so that an alert can tell none from unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.medical.tables import (
    Authorization,
    AuthorizationStatus,
    Enrollment,
    EnrollmentStatus,
    SettlementLine,
    SettlementLineStatus,
)


@dataclass(frozen=True)
class MedicalFigures:
    holds: dict[str, int]  # state → holds; `held` only those still live
    enrollments: dict[tuple[str, str], int]  # (status, decline reason or "") → enrolments
    settlement_lines: dict[str, tuple[int, int]]  # status → (lines, sum of their nets in fen)


def holds_by_state(session: Session, now: datetime) -> dict[str, int]:
    """Every hold by its state at `now`: one pass over the table."""
    lapsed = (Authorization.status == AuthorizationStatus.HELD) & (Authorization.expires_at <= now)
    rows = session.execute(
        select(Authorization.status, func.count(), func.count().filter(lapsed)).group_by(
            Authorization.status
        )
    )
    states = {status.value: 0 for status in AuthorizationStatus}
    for status, count, past_expiry in rows:
        states[status] = states.get(status, 0) + count - past_expiry
        states[AuthorizationStatus.EXPIRED] += past_expiry
    return states


def enrollments_by_outcome(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(Enrollment.status, Enrollment.decline_reason, func.count()).group_by(
            Enrollment.status, Enrollment.decline_reason
        )
    )
    found = {(s.value, ""): 0 for s in EnrollmentStatus if s != EnrollmentStatus.DECLINED}
    found.update({(status, reason or ""): count for status, reason, count in rows})
    return found


def settlement_lines_by_status(session: Session) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(
            SettlementLine.status, func.count(), func.coalesce(func.sum(SettlementLine.net_fen), 0)
        ).group_by(SettlementLine.status)
    )
    found = {status.value: (0, 0) for status in SettlementLineStatus}
    found.update({status: (count, int(net_fen)) for status, count, net_fen in rows})
    return found


def read(session: Session, now: datetime) -> MedicalFigures:
    return MedicalFigures(
        holds_by_state(session, now),
        enrollments_by_outcome(session),
        settlement_lines_by_status(session),
    )
