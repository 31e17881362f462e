"""The loan-profiling flow: profile and match the applications being profiled,
in batches (polling; `profiling_interval_seconds`).

Tasks are coarse — one a batch. Inside a batch the credit database is asked
about the applications concurrently, since each call waits on it, and the
decisions are then made a chunk per transaction. Safe to rerun at any
point: an application is decided once, and once profiled the database is not
asked about it again. The artifact counts applications by outcome, with the
amounts asked for in yuan; it names no firm and shows nothing of its record.
"""

from __future__ import annotations

from collections import Counter
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
CHUNK = 50  # applications decided in one transaction


@task(name="applications-to-profile")
def due_applications(limit: int, after: str | None) -> list[str]:
    return profiling.due(hub_context(), limit, after)


@task(name="profile-and-match")
def profile_batch(application_ids: list[str]) -> list[tuple[str, int]]:
    """Take each application of the batch as far as it goes: (outcome, amount asked).

    The waiting ones are read at once; the credit database is asked about them
    CONCURRENCY at a time (each call waits on it), the consents checked and the
    uses audited for the whole batch at once (hub.loans.profiling.look_up); then
    the decisions are made, CHUNK applications per transaction
    (hub.loans.profiling.decide).
    """
    ctx = hub_context()
    items = profiling.waiting(ctx, application_ids)
    answers = profiling.look_up(
        ctx, partner_systems(ctx.settings), items, clock.now, concurrency=CONCURRENCY
    )
    # One bad application must not stop the batch: its exception is its result.
    failed = {
        i.application_id: a for i, a in zip(items, answers, strict=True) if isinstance(a, Exception)
    }
    looked = [a for a in answers if isinstance(a, profiling.Looked)]
    decided = profiling.decide(ctx, looked, clock.now, chunk=CHUNK) | failed
    results = []
    for application_id in application_ids:
        done = decided.get(application_id, profiling.Done(profiling.Outcome.ALREADY_DECIDED, 0))
        if isinstance(done, Exception):
            get_run_logger().error("application %s failed: %s", application_id, type(done).__name__)
            results.append((f"error:{type(done).__name__}", 0))
        else:
            results.append((str(done.outcome), done.amount_fen))  # a plain str in logs
    return results


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
    batch_size: int = 500, max_batches: int = 100, as_of: date | None = None
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
