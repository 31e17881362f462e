"""The collections flow: daily reminders, suspensions, reinstatements, and reports
of long-overdue debt to the credit database — each step once per debt; loan
instalments' debts are reported too (and only reported)."""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.as_of import runs_as_of
from flows.partners import partner_systems
from hub.context import hub_context
from hub.loans import collections as loan_collections
from hub.medical import collections_run


@task(name="collections-steps")
def take_steps() -> dict[str, int]:
    return collections_run.take_steps(hub_context())


@task(name="report-overdue")
def report_overdue() -> dict[str, int]:
    """Report debts 30+ days past due, each once (by a key derived from the debt)."""
    ctx = hub_context()
    return collections_run.report_overdue(ctx, partner_systems(ctx.settings).bureau)


@task(name="report-loans-overdue")
def report_loans_overdue() -> dict[str, int]:
    """Report loan instalments 30+ days past due, each once, by the firm's code."""
    ctx = hub_context()
    return loan_collections.report_overdue(ctx, partner_systems(ctx.settings).bureau)


@flow(name="collections")
@runs_as_of
def collect(as_of: date | None = None) -> dict[str, int]:
    """Today's collections steps (as of the hub clock's business date)."""
    steps = {**take_steps(), **report_overdue(), **report_loans_overdue()}
    rows = "\n".join(f"| {k} | {v} |" for k, v in steps.items())
    create_markdown_artifact(
        key="collections-summary",
        markdown=f"## Collections, {collections_run.today(hub_context())}\n\n"
        f"| step | count |\n|---|---|\n{rows}\n",
    )
    return steps
