"""The loan-profiling flow: profile and match the applications being profiled,
in batches (polling; `profiling_interval_seconds`).

Tasks are coarse — one a batch. Inside a batch the credit database is asked
about the applications concurrently, since each call waits on it, and the
decisions are then made a chunk per transaction. When many are waiting, the
scheduled run starts helper runs of `loan-profiling-lane` (flows/lanes.py),
each walking a range of the applications of its own. Safe to rerun at any
point: an application is decided once, and once profiled the database is not
asked about it again. The artifact counts applications by outcome, with the
amounts asked for in yuan; it names no firm and shows nothing of its record.
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
from hub.core import clock
from hub.core.money import yuan
from hub.loans import profiling

CONCURRENCY = 16  # credit-database calls in flight at once
CHUNK = 50  # applications decided in one transaction


LANE_DEPLOYMENT = "loan-profiling-lane/loan-profiling-lane"


@task(name="applications-to-profile")
def due_applications(limit: int, after: str | None, until: str | None = None) -> list[str]:
    return profiling.due(hub_context(), limit, after, until)


Range = tuple[str | None, str | None]  # (after, until): ids after one, up to the other
EVERY: list[Range] = [(None, None)]


def lane_ranges(ids: list[str], lanes: int) -> list[Range]:
    """The waiting applications (ids, in order) cut into `lanes` ranges of about the
    same size, each (after, until): the first from the start, the last open-ended."""
    cuts = [ids[len(ids) * n // lanes - 1] for n in range(1, lanes)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


@task(name="start-lanes")
def start_lanes(
    batch_size: int, max_batches: int, as_of: date | None
) -> tuple[list[Range], dict[str, Range]]:
    """Helper runs for many applications waiting, each walking a range of its own:
    the ranges left to this run (the first, and any whose helper did not start) and
    the helpers' ranges by run id."""
    settings = hub_context().settings
    waiting = profiling.due(hub_context(), batch_size * max_batches)
    batches = math.ceil(len(waiting) / batch_size)
    if settings.profiling_lanes < 2 or batches < settings.profiling_lanes_from:
        return EVERY, {}
    ranges = lane_ranges(waiting, min(settings.profiling_lanes, batches))
    common = {"batch_size": batch_size, "max_batches": max_batches, "as_of": as_of}
    helpers = [{**common, "after": after, "until": until} for after, until in ranges[1:]]
    started = lanes.start_helpers(LANE_DEPLOYMENT, helpers)
    get_run_logger().info("%d batches waiting: %d helper run(s) started", batches, len(started))
    if not started:
        return EVERY, {}
    return [ranges[0], *ranges[1 + len(started) :]], dict(zip(started, ranges[1:], strict=False))


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


def profile_range(
    batch_size: int, max_batches: int, after: str | None, until: str | None
) -> tuple[Counter[str], Counter[str]]:
    """Profile and match the waiting applications after `after` and up to `until`, a
    batch at a time: counts and amounts asked, by outcome."""
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    for _ in range(max_batches):
        ids = due_applications(batch_size, after, until)
        if not ids:
            break
        for outcome, amount in profile_batch(ids):
            counts[outcome] += 1
            amounts[outcome] += amount
        after = ids[-1]
    return counts, amounts


@flow(name="loan-profiling", log_prints=False)
@runs_as_of
def profile_applications(
    batch_size: int = 500, max_batches: int = 100, as_of: date | None = None
) -> dict[str, int]:
    """Profile and match every application waiting, a batch at a time; with helper
    runs beside this one, each on a range of its own, when many are waiting."""
    mine, helpers = start_lanes(batch_size, max_batches, as_of)
    runs = list(helpers)
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    try:
        for after, until in mine:
            more, asked = profile_range(batch_size, max_batches, after, until)
            counts, amounts = counts + more, amounts + asked
    except BaseException:
        # This run failed: none starts late, and those at work end before the next
        # poll (this deployment's slot held meanwhile) cuts ranges over theirs.
        lanes.beside_helpers(runs, lambda: False)
        raise
    undone: list[str] = []  # helpers no worker took, or that failed: their ranges
    ended = lanes.beside_helpers(runs, lambda: False, undone)
    for after, until in (helpers[run] for run in undone):
        more, asked = profile_range(batch_size, max_batches, after, until)
        counts, amounts = counts + more, amounts + asked
    get_run_logger().info("loan applications: %s; helper runs: %s", dict(counts), dict(ended))
    create_markdown_artifact(
        key="loan-profiling-summary",
        markdown=summary(counts, amounts),
        description="Applications by outcome, this run",
    )
    return dict(counts)


@flow(name="loan-profiling-lane", log_prints=False)
@runs_as_of
def profile_lane(
    batch_size: int = 500,
    max_batches: int = 100,
    as_of: date | None = None,
    after: str | None = None,
    until: str | None = None,
) -> dict[str, int]:
    """A helper of the loan-profiling flow: the waiting applications after `after` and
    up to `until`, beside it."""
    counts, amounts = profile_range(batch_size, max_batches, after, until)
    create_markdown_artifact(
        key="loan-profiling-summary",
        markdown=summary(counts, amounts),
        description="Applications by outcome, this helper run",
    )
    return dict(counts)
