"""The loan-profiling flow: profile and match the applications being profiled,
in batches (polling; `profiling_interval_seconds`).

Tasks are coarse — one a batch — and inside a batch applications run
concurrently, since each waits on the credit database. Safe to rerun at any
point: an application is decided once, and once profiled the database is not
asked about it again. The artifact counts applications by outcome, with the
amounts asked for in yuan; it names no firm and shows nothing of its record.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.as_of import runs_as_of
from flows.partners import partner_systems
from hub.context import hub_context
from hub.core import clock
from hub.core.money import yuan
from hub.loans import profiling

CONCURRENCY = 16  # credit-database calls in flight at once


@task(name="applications-to-profile")
def due_applications(limit: int, after: str | None) -> list[str]:
    return profiling.due(hub_context(), limit, after)


@task(name="profile-and-match")
def profile_batch(application_ids: list[str]) -> list[tuple[str, int]]:
    """Take each application of the batch as far as it goes: (outcome, amount asked)."""
    ctx = hub_context()
    partners = partner_systems(ctx.settings)

    def one(application_id: str) -> tuple[str, int]:
        try:
            done = profiling.process(ctx, partners, application_id, clock.now)
            return str(done.outcome), done.amount_fen  # a plain str in logs
        except Exception as exc:  # one bad application must not stop the batch
            get_run_logger().error("application %s failed: %s", application_id, type(exc).__name__)
            return f"error:{type(exc).__name__}", 0

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return list(pool.map(one, application_ids))


def summary(counts: Counter[str], amounts: Counter[str]) -> str:
    """The artifact: applications by outcome, and what they asked for in yuan."""
    rows = "\n".join(
        f"| {outcome} | {count} | {yuan(amounts[outcome])} |"
        for outcome, count in sorted(counts.items())
    )
    return (
        "## Loan applications profiled and matched\n\n"
        "| outcome | applications | asked (yuan) |\n|---|---|---|\n"
        f"{rows or '| (none waiting) | 0 | 0.00 |'}\n"
    )


@flow(name="loan-profiling", log_prints=False)
@runs_as_of
def profile_applications(
    batch_size: int = 200, max_batches: int = 100, as_of: date | None = None
) -> dict[str, int]:
    """Profile and match every application waiting, a batch at a time."""
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    after: str | None = None
    for _ in range(max_batches):
        ids = due_applications(batch_size, after)
        if not ids:
            break
        for outcome, amount in profile_batch(ids):
            counts[outcome] += 1
            amounts[outcome] += amount
        after = ids[-1]
    get_run_logger().info("loan applications: %s", dict(counts))
    create_markdown_artifact(
        key="loan-profiling-summary",
        markdown=summary(counts, amounts),
        description="Applications by outcome, this run",
    )
    return dict(counts)
