"""The delinquency flow: once a day, each serviced loan's days past due; overdue at
1+, defaulted at 90+ (setting), back to active when paid up — each transition
announced once, so a second run on the same day changes nothing."""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.as_of import runs_as_of
from hub.context import hub_context
from hub.core.money import yuan
from hub.loans import delinquency


@task(name="delinquency-transitions", retries=2, retry_delay_seconds=10)
def move_loans() -> dict[str, int]:
    """Safe to retry: a batch already committed is found in its new status."""
    return delinquency.run_day(hub_context())


def _ratio(bps: int | None) -> str:
    return "— (nothing outstanding)" if bps is None else f"{bps // 100}.{bps % 100:02d}%"


@flow(name="loan-delinquency")
@runs_as_of
def check_delinquency(as_of: date | None = None) -> dict[str, int]:
    """Today's delinquency transitions (as of the hub clock's business date)."""
    ctx = hub_context()
    steps = move_loans()
    book = delinquency.portfolio(ctx)
    counts = "\n".join(f"| {k} | {v} |" for k, v in steps.items())
    statuses = "\n".join(
        f"| {line.status} | {line.loans} | {yuan(line.outstanding_principal_fen)} |"
        for line in book.by_status
    )
    create_markdown_artifact(
        key="loan-delinquency-summary",
        markdown=f"## Loan delinquency, {delinquency.today(ctx)}\n\n"
        f"| step | count |\n|---|---|\n{counts}\n\n"
        f"| status | loans | outstanding principal (yuan) |\n|---|---:|---:|\n{statuses}\n\n"
        f"Overdue ratio (overdue over outstanding principal): "
        f"**{_ratio(book.overdue_ratio_bps)}** — "
        f"{yuan(book.overdue_principal_fen)} of {yuan(book.outstanding_principal_fen)} yuan.\n",
    )
    return steps
