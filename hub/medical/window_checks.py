"""How settlement and the books stand, read for an operator's check: what a night's
settlement paid, the state of the window it closed, the open reconciliation
mismatches, and any window left neither open nor settled. `credithub demo`
prints it a simulated night at a time and checks it at the end (with the
books, `hub.books`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select

from hub.context import HubContext
from hub.core.db import unit_of_work
from hub.medical import reconciliation, settlement
from models.medical.tables import MismatchStatus, SettlementWindow, WindowStatus


@dataclass(frozen=True)
class Night:
    """After a night's settlement."""

    settled_fen: int  # paid to hospitals, over the windows settled that night
    last_window_status: str  # of the window closed last ("none": never closed one)
    open_mismatches: int


def night(ctx: HubContext, settled_windows: Iterable[str]) -> Night:
    """What the night's settlement paid, the last closed window's state, open mismatches."""
    with unit_of_work(ctx.engine, write=False) as session:
        paid = 0
        for window_id in settled_windows:
            lines = settlement.window_report(session, window_id)
            paid += sum(line["net_fen"] for line in lines if line["status"] == "settled")
        last_closed = (
            select(SettlementWindow.status)
            .where(SettlementWindow.closed_at.is_not(None))
            .order_by(SettlementWindow.closed_at.desc(), SettlementWindow.id.desc())
            .limit(1)
        )
        found = reconciliation.open_mismatches(MismatchStatus.OPEN).subquery()
        return Night(
            settled_fen=paid,
            last_window_status=session.scalar(last_closed) or "none",
            open_mismatches=int(session.scalar(select(func.count()).select_from(found)) or 0),
        )


def unsettled_windows(ctx: HubContext) -> list[tuple[str, str]]:
    """(id, status) of every window closed but not settled."""
    with unit_of_work(ctx.engine, write=False) as session:
        rows = session.execute(
            select(SettlementWindow.id, SettlementWindow.status)
            .where(SettlementWindow.status.not_in((WindowStatus.OPEN, WindowStatus.SETTLED)))
            .order_by(SettlementWindow.id)
        )
        return [(window_id, status) for window_id, status in rows]
