"""Holds: two-phase pre-authorisations of hospital charges against a line.

A hold is `held` until the visit closes (captured or released), the hospital
voids it, or it expires. Its credit is reserved and given back only through
`hub.medical.held_credit`, which keeps the line's `held_fen` and the ledger in
step.

Lock order, to keep PostgreSQL free of deadlocks: visit, then line, then holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.core import ledger
from hub.core.errors import Conflict, not_found
from hub.core.ids import new_id
from hub.core.references import replay
from hub.medical import held_credit
from hub.medical.held_credit import Released
from hub.medical.lines import lock_line
from models.core.tables import UTCDateTime, table_of
from models.medical.tables import Authorization, AuthorizationStatus, Visit, VisitStatus


class VisitNotOpen(Conflict):
    code = "visit_not_open"
    title = "The visit is closed"


class AuthorizationNotHeld(Conflict):
    code = "authorization_not_held"
    title = "The authorization is no longer held"


@dataclass(frozen=True)
class HoldPolicy:
    outpatient_ttl: timedelta
    inpatient_ttl: timedelta

    def expires_at(self, visit_kind: str, now: datetime) -> datetime:
        return now + (self.inpatient_ttl if visit_kind == "inpatient" else self.outpatient_ttl)


def effective_status(auth: Authorization, now: datetime) -> str:
    """`expired` from `expires_at` on, whether or not the sweep has run."""
    if auth.status == AuthorizationStatus.HELD and auth.expires_at <= now:
        return AuthorizationStatus.EXPIRED
    return auth.status


def release_expired(session: Session, line_id: str, now: datetime, keep: str | None = None) -> int:
    """Mark the line's expired holds `expired` and give their credit back.

    `keep` is a hold being placed in this transaction: born expired (a TTL of
    zero), its credit is not reserved yet, so there is none to give back.
    """
    query = update(Authorization).where(
        Authorization.credit_line_id == line_id,
        Authorization.status == AuthorizationStatus.HELD,
        Authorization.expires_at <= now,
    )
    if keep is not None:
        query = query.where(Authorization.id != keep)
    expired = session.execute(
        query.values(status=AuthorizationStatus.EXPIRED)
        .returning(Authorization.id, Authorization.amount_fen, Authorization.hospital_id)
        .execution_options(synchronize_session=False)
    ).all()
    return held_credit.release(
        session,
        line_id=line_id,
        holds=[Released(row.id, row.hospital_id, row.amount_fen) for row in expired],
        kind="hold_expired",
        now=now,
    )


_visits = table_of(Visit)
_auths = table_of(Authorization)
_HOLD_COLUMNS = [
    "id",
    "visit_id",
    "credit_line_id",
    "hospital_id",
    "his_order_id",
    "description",
    "status",
    "amount_fen",
    "initial_fen",
    "captured_fen",
    "created_at",
    "expires_at",
]


@cache
def _insert_hold(dialect: str) -> Any:
    """One statement that checks the visit and inserts the hold.

    It copies the line and picks the expiry from the visit, which it locks FOR
    SHARE (a close waits for us, and we for it); it inserts nothing when the
    visit is not this hospital's, is not open, or the order is known already.
    """
    instant = UTCDateTime()
    source = (
        select(
            bindparam("id", type_=String()),
            _visits.c.id,
            _visits.c.credit_line_id,
            _visits.c.hospital_id,
            bindparam("his_order_id", type_=String()),
            bindparam("description", type_=String()),
            literal(AuthorizationStatus.HELD, String()),
            bindparam("amount", type_=BigInteger()),
            bindparam("amount", type_=BigInteger()),
            literal(0, BigInteger()),
            bindparam("now", type_=instant),
            case(
                (_visits.c.kind == "inpatient", bindparam("expires_inpatient", type_=instant)),
                else_=bindparam("expires_outpatient", type_=instant),
            ),
        )
        .where(
            _visits.c.id == bindparam("visit"),
            _visits.c.hospital_id == bindparam("hospital"),
            _visits.c.status == VisitStatus.OPEN,
        )
        .with_for_update(read=True, of=_visits)
    )
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = builder(_auths).from_select(_HOLD_COLUMNS, source).on_conflict_do_nothing()
    return statement.returning(_auths.c.credit_line_id, _auths.c.expires_at)


def expiry_legs(session: Session, now: datetime) -> list[tuple[str, int]]:
    """The postings that releasing every expired, not yet swept hold will make.

    Expiry is a fact of time: a report of balances as of `now` counts these as
    posted, so the books agree with the lines whether or not the sweep has run.
    """
    rows = session.execute(
        select(
            Authorization.credit_line_id,
            Authorization.hospital_id,
            func.sum(Authorization.amount_fen),
        )
        .where(Authorization.status == AuthorizationStatus.HELD, Authorization.expires_at <= now)
        .group_by(Authorization.credit_line_id, Authorization.hospital_id)
    )
    legs: list[tuple[str, int]] = []
    for line_id, hospital_id, amount in rows:
        legs += [(ledger.hospital_holds(hospital_id), int(amount))]
        legs += [(ledger.line_held(line_id), -int(amount))]
    return legs


def release_all_expired(session: Session, now: datetime, max_lines: int) -> tuple[int, int]:
    """The sweep: release expired holds line by line (under each line's lock).

    Returns (lines swept, fen released). Reads never needed it — expiry is a
    fact of time — but the books and the stored balances catch up here.
    """
    line_ids = session.scalars(
        select(Authorization.credit_line_id)
        .where(Authorization.status == AuthorizationStatus.HELD, Authorization.expires_at <= now)
        .distinct()
        .limit(max_lines)
    ).all()
    released = 0
    for line_id in sorted(line_ids):  # one order for every sweeper: no deadlocks
        lock_line(session, line_id)
        released += release_expired(session, line_id, now)
    return len(line_ids), released


def place_hold(
    session: Session,
    *,
    hospital_id: str,
    visit_id: str,
    amount_fen: int,
    his_order_id: str,
    description: str | None,
    policy: HoldPolicy,
    now: datetime,
) -> tuple[Authorization, bool]:
    """Hold `amount_fen` for a charge; returns the hold and whether it is new."""
    connection, auth_id = session.connection(), new_id("auth")
    params = {
        "id": auth_id,
        "his_order_id": his_order_id,
        "description": description,
        "amount": amount_fen,
        "now": now,
        "visit": visit_id,
        "hospital": hospital_id,
        "expires_inpatient": policy.expires_at("inpatient", now),
        "expires_outpatient": policy.expires_at("outpatient", now),
    }
    inserted = connection.execute(_insert_hold(connection.dialect.name), params).first()
    if inserted is None:
        return _why_not_held(session, hospital_id, visit_id, his_order_id, amount_fen, description)
    line_id = inserted.credit_line_id
    held_credit.reserve(
        session,
        line_id=line_id,
        hospital_id=hospital_id,
        amount_fen=amount_fen,
        kind="hold_placed",
        ref=auth_id,
        now=now,
        make_room=lambda: release_expired(session, line_id, now, keep=auth_id),
    )
    return Authorization(
        id=auth_id,
        visit_id=visit_id,
        credit_line_id=line_id,
        hospital_id=hospital_id,
        his_order_id=his_order_id,
        description=description,
        status=AuthorizationStatus.HELD,
        amount_fen=amount_fen,
        initial_fen=amount_fen,
        captured_fen=0,
        created_at=now,
        expires_at=inserted.expires_at,
    ), True


def _why_not_held(
    session: Session,
    hospital_id: str,
    visit_id: str,
    his_order_id: str,
    amount_fen: int,
    description: str | None,
) -> tuple[Authorization, bool]:
    """No hold was inserted: the visit is unknown, the order is known, or the visit is closed."""
    visit = session.get(Visit, visit_id)
    if visit is None or visit.hospital_id != hospital_id:
        raise not_found("visit", visit_id)
    existing = replay(
        session,
        Authorization,
        {"hospital_id": hospital_id, "his_order_id": his_order_id},
        {"visit_id": visit_id, "initial_fen": amount_fen, "description": description},
    )
    if existing is not None:
        return existing, False
    raise VisitNotOpen(f"visit {visit_id} is {visit.status}")


def get_authorization(session: Session, hospital_id: str, auth_id: str) -> Authorization:
    auth = session.get(Authorization, auth_id)
    if auth is None or auth.hospital_id != hospital_id:
        raise not_found("authorization", auth_id)
    return auth


def _require_held(auth: Authorization, now: datetime) -> None:
    status = effective_status(auth, now)
    if status != AuthorizationStatus.HELD:
        raise AuthorizationNotHeld(f"authorization {auth.id} is {status}")


def increment_hold(
    session: Session, *, hospital_id: str, auth_id: str, amount_fen: int, now: datetime
) -> Authorization:
    """Raise a live hold by `amount_fen`; its expiry stays as it was."""
    auth = get_authorization(session, hospital_id, auth_id)
    _require_held(auth, now)
    line_id = auth.credit_line_id
    held_credit.reserve(
        session,
        line_id=line_id,
        hospital_id=hospital_id,
        amount_fen=amount_fen,
        kind="hold_incremented",
        ref=auth_id,
        now=now,
        make_room=lambda: release_expired(session, line_id, now),
    )
    raised = session.execute(
        update(Authorization)
        .where(
            Authorization.id == auth_id,
            Authorization.status == AuthorizationStatus.HELD,
            Authorization.expires_at > now,
        )
        .values(amount_fen=Authorization.amount_fen + amount_fen)
        .execution_options(synchronize_session=False)
    )
    if raised.rowcount != 1:  # type: ignore[attr-defined]
        raise AuthorizationNotHeld(f"authorization {auth_id} is no longer held")
    session.refresh(auth)
    return auth


def void_hold(session: Session, *, hospital_id: str, auth_id: str, now: datetime) -> Authorization:
    """Release a live hold: its amount is available again."""
    auth = get_authorization(session, hospital_id, auth_id)
    _require_held(auth, now)
    lock_line(session, auth.credit_line_id)
    voided = session.execute(
        update(Authorization)
        .where(
            Authorization.id == auth_id,
            Authorization.status == AuthorizationStatus.HELD,
            Authorization.expires_at > now,
        )
        .values(status=AuthorizationStatus.VOIDED)
        .returning(Authorization.amount_fen)
        .execution_options(synchronize_session=False)
    ).first()
    if voided is None:
        raise AuthorizationNotHeld(f"authorization {auth_id} is no longer held")
    held_credit.release(
        session,
        line_id=auth.credit_line_id,
        holds=[Released(auth_id, hospital_id, voided.amount_fen)],
        kind="hold_voided",
        now=now,
    )
    session.refresh(auth)
    return auth
