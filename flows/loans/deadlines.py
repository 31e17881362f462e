"""The loan-deadlines flow (daily, `loan_deadlines_cron`): expire offers past their
validity, and open applications that no bank offered by `respond_by` or whose
offers have all expired. Safe to rerun: each change is conditional on the state
it leaves. The artifact says what expired, amounts in yuan.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.as_of import runs_as_of
from hub.context import hub_context
from hub.core.money import yuan
from hub.loans import deadlines


@task(name="expire-loan-deadlines")
def sweep(batch: int) -> tuple[int, int, int]:
    swept = deadlines.sweep(hub_context(), batch)
    return swept.offers, swept.applications, swept.applications_fen


@flow(name="loan-deadlines")
@runs_as_of
def expire_deadlines(
    batch: int = 500, max_batches: int = 100, as_of: date | None = None
) -> dict[str, int]:
    """Sweep until no application is left to expire (a batch per transaction)."""
    offers = applications = asked = 0
    for _ in range(max_batches):
        o, a, fen = sweep(batch)
        offers, applications, asked = offers + o, applications + a, asked + fen
        if a < batch:
            break
    create_markdown_artifact(
        key="loan-deadlines-summary",
        markdown=(
            "## Loan deadlines\n\n| what | count | asked (yuan) |\n|---|---|---|\n"
            f"| applications expired | {applications} | {yuan(asked)} |\n"
            f"| offers expired | {offers} | — |\n"
        ),
        description="What this run expired",
    )
    return {"offers_expired": offers, "applications_expired": applications, "asked_fen": asked}
