"""The collections flow: daily reminders, suspensions, reinstatements, and reports
of long-overdue debt to the credit database — each step once per debt."""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.context import hub_context, runs_as_of
from flows.partners import partner_systems
from hub.core import clock
from hub.core.clock import business_date
from hub.core.db import unit_of_work
from hub.medical import collections
from models.core.partner_errors import PartnerError


def _policy() -> collections.Policy:
    s = hub_context().settings
    return collections.Policy(
        suspend_after_days=s.suspend_after_days_past_due,
        report_after_days=s.report_after_days_past_due,
        zone=s.business_timezone,
    )


@task(name="collections-steps")
def take_steps() -> dict[str, int]:
    ctx, now = hub_context(), clock.now()
    with unit_of_work(ctx.engine) as session:
        return collections.run_day(session, _policy(), business_date(now, _policy().zone), now)


@task(name="report-overdue")
def report_overdue() -> dict[str, int]:
    """Report debts 30+ days past due, each once (by a key derived from the debt)."""
    ctx, now = hub_context(), clock.now()
    today = business_date(now, _policy().zone)
    with unit_of_work(ctx.engine, write=False) as session:
        due = collections.reports_due(session, ctx.vault, _policy(), today)
    bureau = partner_systems(ctx.settings).bureau
    counts = {"reported": 0, "retry_later": 0}
    for report in due:
        key = f"overdue:{report.visit_id}"
        try:
            bureau.report_overdue(
                report_id=key,
                id_number=report.id_number,
                amount_fen=report.amount_fen,
                days_past_due=report.days_past_due,
                reported_on=today,
                idempotency_key=key,
            )
        except PartnerError:
            counts["retry_later"] += 1
            continue
        with unit_of_work(ctx.engine) as session:
            collections.mark_reported(session, report, today, clock.now())
        counts["reported"] += 1
    return counts


@flow(name="collections")
@runs_as_of
def collect(as_of: date | None = None) -> dict[str, int]:
    """Today's collections steps (as of the hub clock's business date)."""
    steps = {**take_steps(), **report_overdue()}
    rows = "\n".join(f"| {k} | {v} |" for k, v in steps.items())
    create_markdown_artifact(
        key="collections-summary",
        markdown=f"## Collections, {business_date(clock.now(), _policy().zone)}\n\n"
        f"| step | count |\n|---|---|\n{rows}\n",
    )
    return steps
