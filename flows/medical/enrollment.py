"""The enrolment flow: decide pending enrolments in batches.

Tasks are coarse — one a batch — because a Prefect task costs milliseconds;
a batch is decided set-based: the partners are asked several at a time, and
the database is written a few times a batch, not a few times an enrolment.
Safe to rerun at any point: an enrolment is decided once, and the bank is
asked under a key derived from the enrolment's id.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.as_of import runs_as_of
from flows.partners import partner_systems
from hub.context import hub_context
from hub.medical import enrollment_run


@task(name="due-enrolments")
def due_enrollments(limit: int) -> list[str]:
    return enrollment_run.due(hub_context(), limit)


@task(name="decide-enrolments")
def decide_batch(enrollment_ids: list[str]) -> dict[str, int]:
    """Decide the batch, set-based (hub/medical/enrollment.py); counts by outcome."""
    ctx = hub_context()
    outcomes = enrollment_run.decide(ctx, partner_systems(ctx.settings), enrollment_ids)
    for enrollment_id, outcome in outcomes.items():
        if outcome.startswith("error:"):  # one bad enrolment must not stop the batch
            get_run_logger().error("enrolment %s failed: %s", enrollment_id, outcome[6:])
    return dict(Counter(outcomes.values()))


@flow(name="enrollment", log_prints=False)
@runs_as_of
def enroll_pending(max_batches: int = 50, as_of: date | None = None) -> dict[str, int]:
    """Decide the enrolments that are due, a batch at a time, until none is left."""
    logger = get_run_logger()
    batch_size = hub_context().settings.enrollment_batch_size
    totals: Counter[str] = Counter()
    for _ in range(max_batches):
        ids = due_enrollments(batch_size)
        if not ids:
            break
        outcome = decide_batch(ids)
        totals.update(outcome)
        logger.info("batch of %d: %s", len(ids), outcome)
        if all(k == "postponed" or k.startswith("error:") for k in outcome):
            break  # no progress (partners down, or a fault): the schedule tries again later
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(totals.items())) or "| (none due) | 0 |"
    create_markdown_artifact(
        key="enrollment-summary",
        markdown=f"## Enrolments decided\n\n| outcome | count |\n|---|---|\n{rows}\n",
        description="What this run decided",
    )
    return dict(totals)
