"""The webhook flow: deliver the outbox's due events, signed, at least once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from prefect import flow, task

from flows.as_of import runs_as_of
from flows.partners import partner_systems
from hub.context import hub_context
from hub.core import webhook_delivery
from hub.core.events import Delivery


@task(name="deliver-events")
def deliver_due(limit: int) -> dict[str, int]:
    """Send one batch of due events, several at once; counts by outcome."""
    ctx = hub_context()
    sender = partner_systems(ctx.settings).webhooks

    def deliver(job: Delivery) -> str:
        return webhook_delivery.deliver(ctx, sender, job)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(Counter(pool.map(deliver, webhook_delivery.due(ctx, limit))))


@flow(name="webhooks")
@runs_as_of
def deliver_events(
    max_batches: int = 10, batch_size: int = 500, as_of: date | None = None
) -> dict[str, int]:
    """Send every due event; failures are retried with backoff for three days."""
    totals: Counter[str] = Counter()
    for _ in range(max_batches):
        outcome = deliver_due(batch_size)
        totals.update(outcome)
        if outcome.get("delivered", 0) == 0:
            break
    return dict(totals)
