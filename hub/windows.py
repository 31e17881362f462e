"""Settlement windows: captures and refunds fall into the one open window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.ids import new_id
from hub.references import insert_new
from models.tables import SettlementWindow


def open_window_id(session: Session, now: datetime) -> str:
    """The open window's id; the first call on a new database opens one."""
    window_id = session.scalar(select(SettlementWindow.id).where(SettlementWindow.status == "open"))
    if window_id is None:
        # The partial unique index lets only one racing opener win.
        insert_new(
            session,
            SettlementWindow,
            {"id": new_id("win"), "status": "open", "opened_at": now, "closed_at": None},
        )
        window_id = session.scalar(
            select(SettlementWindow.id).where(SettlementWindow.status == "open")
        )
    assert window_id is not None
    return window_id
