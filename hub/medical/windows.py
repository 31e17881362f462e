"""Settlement windows (Mojaloop-style): open → closed → settled.

Captures and refunds fall into the one open window. Closing it opens the next
in the same transaction. One row, `open_settlement_window`, names the open
window: a capture reads it FOR SHARE, a close locks it FOR NO KEY UPDATE, so a
close waits for captures in flight and captures wait for a close. A capture
that waited reads the row the close left, naming the next window, so it never
comes back empty however many closes it waits on: every capture lands in
exactly one window, and a closed window takes no more.

The pointer's lock closes no deadlock cycle: captures and refunds only share
it (shares never wait on each other, nor on a close still waiting to lock),
and a close takes it holding no row lock and, once it has it, waits on none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.core.ids import new_id
from hub.core.references import insert_new
from models.core.tables import table_of
from models.medical.tables import OpenSettlementWindow, SettlementWindow, WindowStatus

_POINTER = OpenSettlementWindow.id == 1
_UNLOCKED = select(OpenSettlementWindow.window_id).where(_POINTER)
_SHARED = select(OpenSettlementWindow.window_id).where(_POINTER).with_for_update(read=True)
# NO KEY UPDATE, the lock the UPDATE of the row takes anyway: no upgrade, and the
# pointer's key is never changed.
_EXCLUSIVE = select(OpenSettlementWindow.window_id).where(_POINTER).with_for_update(key_share=True)


def _name_open_window(dialect: str) -> Any:
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    pointer = table_of(OpenSettlementWindow)
    open_one = select(literal(1), SettlementWindow.id).where(
        SettlementWindow.status == WindowStatus.OPEN
    )
    return (
        builder(pointer)
        .from_select(["id", "window_id"], open_one)
        .on_conflict_do_nothing(index_elements=["id"])
    )


def _open_first(session: Session, now: datetime) -> None:
    """A new database: open a window and name it, unless a racing request did.

    The partial unique index on status = 'open' lets one opener win; a loser's
    INSERT waits for it and does nothing, then names the winner's window (or
    finds it named already).
    """
    insert_new(
        session,
        SettlementWindow,
        {
            "id": new_id("win"),
            "status": WindowStatus.OPEN,
            "opened_at": now,
            "closed_at": None,
            "previous_window_id": None,
        },
    )
    connection = session.connection()
    connection.execute(_name_open_window(connection.dialect.name))


def _locked(session: Session, lock: Any, now: datetime) -> str:
    window_id = session.scalar(lock)
    if window_id is None:
        _open_first(session, now)
        window_id = session.scalar(lock)
    if window_id is None:  # only if the pointer row was deleted by hand meanwhile
        raise RuntimeError("no open settlement window is named in open_settlement_window")
    return window_id


def open_window_id(session: Session, now: datetime) -> str:
    """The open window's id; it stays open until this transaction ends."""
    return _locked(session, _SHARED, now)


def close_window(session: Session, now: datetime) -> str:
    """Close the open window and open the next, atomically; returns the closed one's id.

    Racing closers queue on the pointer's lock: each closes the window the one
    before it opened.
    """
    closed = _locked(session, _EXCLUSIVE, now)
    session.execute(
        update(SettlementWindow)
        .where(SettlementWindow.id == closed, SettlementWindow.status == WindowStatus.OPEN)
        .values(status=WindowStatus.CLOSED, closed_at=now)
        .returning(SettlementWindow.id)
        .execution_options(synchronize_session=False)
    ).scalar_one()  # the pointer names the open window, or the books are broken
    following = new_id("win")
    session.add(
        SettlementWindow(
            id=following,
            status=WindowStatus.OPEN,
            opened_at=now,
            closed_at=None,
            previous_window_id=closed,
        )
    )
    session.flush()
    session.execute(
        update(OpenSettlementWindow)
        .where(_POINTER)
        .values(window_id=following)
        .execution_options(synchronize_session=False)
    )
    return closed


def peek_open_window_id(session: Session, now: datetime) -> str:
    """The open window's id, without locking it (it may be closing right now);
    a new database's first window is opened."""
    return current_id(session) or _locked(session, _UNLOCKED, now)


def current_id(session: Session) -> str | None:
    """The open window's id, without locking it (it may be closing right now)."""
    return session.scalar(_UNLOCKED)


def to_settle(session: Session) -> list[str]:
    """Closed windows not yet settled (computed or not), oldest first."""
    return list(
        session.scalars(
            select(SettlementWindow.id)
            .where(SettlementWindow.status.in_((WindowStatus.CLOSED, WindowStatus.COMPUTED)))
            .order_by(SettlementWindow.closed_at, SettlementWindow.id)
        )
    )


def status_of(session: Session, window_id: str) -> str | None:
    return session.scalar(select(SettlementWindow.status).where(SettlementWindow.id == window_id))
