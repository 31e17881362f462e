"""The loan-deadlines flow (daily, `loan_deadlines_cron`): expire offers past their
validity, decline open applications whose firm's consent has expired
(`consent_expired`), and expire open applications that no bank offered by
`respond_by` or whose offers have all expired. Safe to rerun: each change is
conditional on the state it leaves. The artifact says what changed, amounts in
yuan.
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
def sweep(batch: int) -> deadlines.Swept:
    return deadlines.sweep(hub_context(), batch)


@flow(name="loan-deadlines")
@runs_as_of
def expire_deadlines(
    batch: int = 500, max_batches: int = 100, as_of: date | None = None
) -> dict[str, int]:
    """Sweep until no application is left to expire or decline (a batch per transaction)."""
    total = deadlines.Swept()
    for _ in range(max_batches):
        swept = sweep(batch)
        total.offers += swept.offers
        total.applications += swept.applications
        total.applications_fen += swept.applications_fen
        total.declined += swept.declined
        total.declined_fen += swept.declined_fen
        if swept.applications < batch and swept.declined < batch:
            break
    create_markdown_artifact(
        key="loan-deadlines-summary",
        markdown=(
            "## Loan deadlines\n\n| what | count | asked (yuan) |\n|---|---|---|\n"
            f"| applications expired | {total.applications} | {yuan(total.applications_fen)} |\n"
            f"| applications declined, consent expired | {total.declined} "
            f"| {yuan(total.declined_fen)} |\n"
            f"| offers expired | {total.offers} | — |\n"
        ),
        description="What this run expired or declined",
    )
    return {
        "offers_expired": total.offers,
        "applications_expired": total.applications,
        "asked_fen": total.applications_fen,
        "applications_declined": total.declined,
        "declined_fen": total.declined_fen,
    }
