"""Settlement windows (Mojaloop-style): open → closed → settled.

Captures and refunds fall into the one open window. Closing it opens the next
in the same transaction. A capture reads the open window FOR SHARE, so a close
waits for captures in flight and captures wait for a close: every capture lands
in exactly one window, and a closed window takes no more.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.core.ids import new_id
from hub.core.references import insert_new
from models.medical.tables import SettlementWindow, WindowStatus


def _open_new(session: Session, now: datetime, previous: str | None = None) -> None:
    # The partial unique index on status = 'open' lets only one racing opener win.
    insert_new(
        session,
        SettlementWindow,
        {
            "id": new_id("win"),
            "status": WindowStatus.OPEN,
            "opened_at": now,
            "closed_at": None,
            "previous_window_id": previous,
        },
    )


def open_window_id(session: Session, now: datetime) -> str:
    """The open window's id, held FOR SHARE until the transaction ends."""
    for _ in range(5):
        window_id = session.scalar(
            select(SettlementWindow.id)
            .where(SettlementWindow.status == WindowStatus.OPEN)
            .with_for_update(read=True)
        )
        if window_id is not None:
            return window_id
        _open_new(session, now)  # a new database, or a close just committed: look again
    raise RuntimeError("no open settlement window could be found or opened")


def close_window(session: Session, now: datetime) -> str:
    """Close the open window and open the next, atomically; returns the closed one's id.

    The UPDATE takes the window's lock outright (never a share lock first, which
    two closers would both hold and then deadlock upgrading).
    """
    for _ in range(10):  # racing closers: each lost race finds the next window open
        closed = session.execute(
            update(SettlementWindow)
            .where(SettlementWindow.status == WindowStatus.OPEN)
            .values(status=WindowStatus.CLOSED, closed_at=now)
            .returning(SettlementWindow.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if closed is not None:
            _open_new(session, now, previous=closed)
            return closed
        _open_new(session, now)  # a brand-new database has no window yet
    raise RuntimeError("the open settlement window kept closing under us; retry")


def current_id(session: Session) -> str | None:
    """The open window's id, without locking it (it may be closing right now)."""
    return session.scalar(
        select(SettlementWindow.id).where(SettlementWindow.status == WindowStatus.OPEN)
    )


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
