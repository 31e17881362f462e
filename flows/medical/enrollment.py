"""The enrolment flow: decide pending enrolments in batches.

Tasks are coarse — one a batch — because a Prefect task costs milliseconds;
a batch is decided set-based: the partners are asked several at a time, and
the database is written a few times a batch, not a few times an enrolment.

A launch day's backlog is spread over the work pool: when several batches are
due, the scheduled run starts helper runs of the `enrollment-lane` deployment
(any worker picks them up) and works beside them. Each run claims its batches
(`hub.medical.enrollment.claim`), so no enrolment is taken by two runs; a run
that dies leaves its claimed batch to be taken again when the claim runs out.
Safe to rerun at any point: an enrolment is decided once, and the bank is
asked under a key derived from the enrolment's id.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows import lanes
from flows.as_of import runs_as_of
from flows.partners import partner_systems
from hub.context import hub_context
from hub.medical import enrollment_run

LANE_DEPLOYMENT = "enrollment-lane/enrollment-lane"


@task(name="claim-enrolments")
def claim_enrollments(limit: int) -> list[str]:
    return enrollment_run.claim(hub_context(), limit)


@task(name="decide-enrolments")
def decide_batch(enrollment_ids: list[str]) -> dict[str, int]:
    """Decide the batch, set-based (hub/medical/enrollment.py); counts by outcome."""
    ctx = hub_context()
    outcomes = enrollment_run.decide(ctx, partner_systems(ctx.settings), enrollment_ids)
    for enrollment_id, outcome in outcomes.items():
        if outcome.startswith("error:"):  # one bad enrolment must not stop the batch
            get_run_logger().error("enrolment %s failed: %s", enrollment_id, outcome[6:])
    return dict(Counter(outcomes.values()))


@task(name="start-lanes")
def start_lanes(max_batches: int, as_of: date | None) -> list[str]:
    """Helper runs for a backlog of several batches: as many as the setting allows
    beyond this one, none for a small backlog."""
    settings = hub_context().settings
    batches = math.ceil(enrollment_run.backlog(hub_context()) / settings.enrollment_batch_size)
    if settings.enrollment_lanes < 2 or batches < settings.enrollment_lanes_from:
        return []
    helpers = min(settings.enrollment_lanes, batches) - 1
    parameters = {"max_batches": max_batches, "as_of": as_of}
    started = lanes.start_helpers(LANE_DEPLOYMENT, [parameters] * helpers)
    get_run_logger().info("%d batches due: %d helper run(s) started", batches, len(started))
    return started


def decide_due(max_batches: int) -> Counter[str]:
    """Claim and decide batches until none is due or `max_batches` are done."""
    logger = get_run_logger()
    batch_size = hub_context().settings.enrollment_batch_size
    totals: Counter[str] = Counter()
    for _ in range(max_batches):
        ids = claim_enrollments(batch_size)
        if not ids:
            break
        outcome = decide_batch(ids)
        totals.update(outcome)
        logger.info("batch of %d: %s", len(ids), outcome)
        if all(k == "postponed" or k.startswith("error:") for k in outcome):
            break  # no progress (partners down, or a fault): the schedule tries again later
    return totals


def summary(title: str, totals: Counter[str], note: str = "") -> None:
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(totals.items())) or "| (none due) | 0 |"
    create_markdown_artifact(
        key="enrollment-summary",
        markdown=f"## {title}\n\n| outcome | count |\n|---|---|\n{rows}\n{note}",
        description="What this run decided",
    )


@flow(name="enrollment", log_prints=False)
@runs_as_of
def enroll_pending(max_batches: int = 50, as_of: date | None = None) -> dict[str, int]:
    """Decide the enrolments that are due, a batch at a time, until none is left;
    with helper runs beside this one when a backlog of several batches is due, this
    one working on while they do (and ending only after them, so the schedule's next
    poll starts no more)."""
    helpers = start_lanes(max_batches, as_of)
    totals = Counter[str]()

    def one_more_batch() -> bool:
        more = decide_due(1)
        totals.update(more)
        return bool(more)

    try:
        totals.update(decide_due(max_batches))
    except BaseException:
        lanes.helpers_at_work(helpers, Counter())  # this run failed: none starts late
        raise
    ended = lanes.beside_helpers(helpers, one_more_batch)
    note = f"\nHelper runs (`enrollment-lane`, each with its own summary): {dict(ended)}\n"
    summary("Enrolments decided", totals, note if ended else "")
    return dict(totals)


@flow(name="enrollment-lane", log_prints=False)
@runs_as_of
def enroll_lane(max_batches: int = 50, as_of: date | None = None) -> dict[str, int]:
    """A helper of the enrolment flow: decide due batches beside it until none is left."""
    totals = decide_due(max_batches)
    summary("Enrolments decided by a helper run", totals)
    return dict(totals)
