"""Delivering the outbox's events (CONTRACT.md §3): the hub picks what is due, signs
it and records each attempt; a sender port (an HTTP client) only sends.

Each attempt is recorded in its own transaction after the send, none held open
across it: at least once, and receivers dedupe by `event_id`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from hub.core import clock, events
from hub.core.db import unit_of_work

if TYPE_CHECKING:
    from hub.context import HubContext


class EventSender(Protocol):
    """POSTs one signed event; None when delivered, else why not (no body)."""

    def send(self, url: str, raw_body: bytes, signature: str) -> str | None: ...


def due(ctx: HubContext, limit: int) -> list[events.Delivery]:
    """Deliveries whose time has come, oldest first."""
    with unit_of_work(ctx.engine, write=False) as session:
        return events.due(session, ctx.vault, clock.now(), limit)


def deliver(ctx: HubContext, sender: EventSender, job: events.Delivery) -> str:
    """Sign and send one delivery, then record how it went: delivered or retry_later."""
    stamp = int(clock.now().timestamp())
    error = sender.send(job.url, job.raw_body, events.sign(job.secrets, stamp, job.raw_body))
    with unit_of_work(ctx.engine) as session:
        events.record_attempt(
            session,
            job.row_id,
            delivered=error is None,
            error=error,
            now=clock.now(),
            give_up_after=timedelta(hours=ctx.settings.webhook_retry_hours),
        )
    return "delivered" if error is None else "retry_later"
