"""The webhook flow: deliver the outbox's due events, signed, at least once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx
from prefect import flow, task

from flows.context import hub_context, runs_as_of
from hub.core import clock, events
from hub.core.db import unit_of_work
from integrations.webhooks import WebhookSender


@task(name="deliver-events")
def deliver_due(limit: int) -> dict[str, int]:
    """Send one batch of due events, several at once; counts by outcome."""
    ctx = hub_context()
    with unit_of_work(ctx.engine, write=False) as session:
        due = events.due(session, ctx.vault, clock.now(), limit)
    give_up = timedelta(hours=ctx.settings.webhook_retry_hours)
    with httpx.Client() as http:
        sender = WebhookSender(http, ctx.settings.webhook_timeout_seconds)

        def deliver(job: events.Delivery) -> str:
            stamp = int(clock.now().timestamp())
            error = sender.send(
                job.url, job.raw_body, events.sign([job.secret], stamp, job.raw_body)
            )
            with unit_of_work(ctx.engine) as session:
                events.record_attempt(
                    session,
                    job.row_id,
                    delivered=error is None,
                    error=error,
                    now=clock.now(),
                    give_up_after=give_up,
                )
            return "delivered" if error is None else "retry_later"

        with ThreadPoolExecutor(max_workers=8) as pool:
            return dict(Counter(pool.map(deliver, due)))


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
