"""Settling windows, step by step as the settlement flow runs it: each step a use
case with its own transaction over `settlement` and `windows`.

Paying a line is the money-safe sequence: record the intent (the line is
instructed) and commit, ask the bank under the key `payout:<line id>`, then
record the outcome. A rerun at any point asks again under the same key, so the
bank pays each line once, and no line is lost.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from hub.core import clock
from hub.core.db import unit_of_work
from hub.medical import settlement, windows
from models.core.partner_errors import PartnerError, PartnerRejected
from models.medical.partner_records import Payout
from models.medical.tables import SettlementWindow

if TYPE_CHECKING:
    from hub.context import HubContext


class PayoutBank(Protocol):
    """A bank that pays hospitals on the hub's instruction (one payout per key)."""

    def pay(
        self,
        *,
        payout_id: str,
        hospital_code: str,
        amount_fen: int,
        value_date: dt.date,
        idempotency_key: str,
    ) -> Payout: ...


def close_window(ctx: HubContext) -> str:
    """Close the open window (opening the next); the closed one's id."""
    with unit_of_work(ctx.engine) as session:
        return windows.close_window(session, clock.now())


def window_to_close(ctx: HubContext) -> str:
    """The open window's id (a new database gets its first window here)."""
    with unit_of_work(ctx.engine) as session:
        return windows.peek_open_window_id(session, clock.now())


def window_status(ctx: HubContext, window_id: str) -> str | None:
    with unit_of_work(ctx.engine, write=False) as session:
        return windows.status_of(session, window_id)


def compute_closed(ctx: HubContext) -> list[str]:
    """Compute every closed window's lines; the windows still to pay, oldest first."""
    with unit_of_work(ctx.engine) as session:
        for window_id in windows.to_settle(session):
            settlement.compute(session, window_id, ctx.settings.business_timezone, clock.now())
    with unit_of_work(ctx.engine, write=False) as session:
        return windows.to_settle(session)


def orders(ctx: HubContext, window_id: str) -> list[settlement.PayoutOrder]:
    """The window's lines still to pay (pending, or instructed by an earlier run)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return settlement.orders(session, window_id, ctx.settings.business_timezone)


def pay(ctx: HubContext, bank: PayoutBank, order: settlement.PayoutOrder) -> str:
    """Pay one line, once: settled, failed (the bank refused) or retry_later."""
    with unit_of_work(ctx.engine) as session:
        settlement.mark_instructed(session, order.line_id, clock.now())
    try:
        payout = bank.pay(
            payout_id=order.payout_id,
            hospital_code=order.hospital_code,
            amount_fen=order.amount_fen,
            value_date=order.value_date,
            idempotency_key=order.payout_id,
        )
    except PartnerRejected as exc:
        with unit_of_work(ctx.engine) as session:
            settlement.fail(session, order.line_id, f"refused: {exc}", clock.now())
        return "failed"
    except PartnerError as exc:
        with unit_of_work(ctx.engine) as session:
            settlement.note_retry(session, order.line_id, type(exc).__name__)
        return "retry_later"
    with unit_of_work(ctx.engine) as session:
        settlement.confirm(session, order.line_id, payout.bank_txn_id, clock.now())
    return "settled"


def roll_up(ctx: HubContext, window_id: str) -> dict[str, str]:
    """Batch and window states from their lines (announcing batches that changed)."""
    with unit_of_work(ctx.engine) as session:
        return settlement.roll_up(session, window_id, clock.now())


def window_report(ctx: HubContext, window_id: str) -> list[dict[str, Any]]:
    """Every line of the window with bank and hospital codes, for operators."""
    with unit_of_work(ctx.engine, write=False) as session:
        return settlement.window_report(session, window_id)


def last_closed_status(ctx: HubContext) -> str | None:
    """The state of the window closed last (None before any close)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return session.scalar(
            select(SettlementWindow.status)
            .where(SettlementWindow.closed_at.is_not(None))
            .order_by(SettlementWindow.closed_at.desc(), SettlementWindow.id.desc())
            .limit(1)
        )


def unsettled(ctx: HubContext) -> list[tuple[str, str]]:
    """(window id, state) of every closed window not settled yet."""
    with unit_of_work(ctx.engine, write=False) as session:
        return [
            (window_id, status)
            for window_id, status in session.execute(
                select(SettlementWindow.id, SettlementWindow.status).where(
                    SettlementWindow.status.not_in(("open", "settled"))
                )
            )
        ]
