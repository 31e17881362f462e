"""Helper runs: how a flow spreads a large backlog over the work pool.

A flow that finds several batches due starts helper runs of its `-lane`
deployment (any worker with a free slot takes one), works beside them, and
ends only after them, so that the schedule's next poll (its deployment runs
one at a time) starts no more. The flow and its helpers never take the same
row: the enrolment flow's runs claim their batches; loan profiling gives each
helper a range of applications of its own.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from prefect.states import Cancelled

AT_MOST_SECONDS = 3600.0  # a helper still running after this is left to itself
NOT_NEEDED = "the backlog was done without this helper"


def start_helpers(deployment: str, parameters: list[dict[str, Any]]) -> list[str]:
    """A run of `deployment` for each set of parameters; their ids. Keyed by this run's
    id, so that a retry of this run starts no more. None are started when the
    deployment is not there (an older `up`): this run then does it all."""
    started = []
    for lane, given in enumerate(parameters, start=1):
        try:
            run: Any = run_deployment(
                deployment,
                parameters=given,
                timeout=0,
                idempotency_key=f"{flow_run.get_id()}:lane-{lane}",
            )
        except Exception as exc:
            get_run_logger().warning("no helper run: %s: %s", type(exc).__name__, exc)
            break
        started.append(str(run.id))
    return started


def helpers_at_work(
    run_ids: list[str], ended: Counter[str], undone: list[str] | None = None
) -> list[str]:
    """The helpers still at work. One not started yet is cancelled: the calling run is
    out of work, so it would find none, or will do the helper's part itself (a
    cancelled run can no longer start: Prefect refuses it Running). Those that ended
    are counted by their final state; those that did not complete, cancelled here
    included, are added to `undone`."""
    at_work = []
    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            state = client.read_flow_run(UUID(run_id)).state
            if state is None or state.type == StateType.SCHEDULED:  # Late ones too
                cancel: State[Any] = Cancelled(message=NOT_NEEDED)
                if client.set_flow_run_state(UUID(run_id), cancel).status != SetStateStatus.ACCEPT:
                    at_work.append(run_id)  # read it again
                    continue
                state = cancel
            if not state.is_final():
                at_work.append(run_id)
                continue
            ended[state.type.value.lower()] += 1
            if state.type != StateType.COMPLETED and undone is not None:
                undone.append(run_id)
    return at_work


def beside_helpers(
    helpers: list[str], work: Callable[[], bool], undone: list[str] | None = None
) -> Counter[str]:
    """Until every helper has ended: `work` (a batch, True if there was one), or a
    second's wait; any helper not started by then is cancelled, also if this run
    fails. The helpers' final states, counted; those that did not complete in `undone`."""
    ended: Counter[str] = Counter()
    deadline = time.monotonic() + AT_MOST_SECONDS
    try:
        while helpers and time.monotonic() < deadline:
            helpers = helpers_at_work(helpers, ended, undone)
            if helpers and not work():
                time.sleep(1.0)
    finally:
        if helpers:
            helpers_at_work(helpers, ended, undone)
    return ended
