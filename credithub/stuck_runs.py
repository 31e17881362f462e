"""Runs a dead worker left behind, marked Crashed so that their deployment's slot
is free again (a polling deployment runs one at a time) and operators see what
happened; every flow is safe to rerun, and the next poll does.

Prefect 3.9.1 has no such watch of its own. Its automations could do it from
the runs' events, but its triggers hold an event back until they have seen the
one it follows, and the scheduler inserts its runs' Scheduled states without
announcing them: the events of a run scheduled less than five minutes before it
started are held for 15 minutes (measured: nothing fired in 3 minutes after a
worker was killed). So `credithub prefect-services` looks itself, every
`CREDITHUB_FLOW_HEARTBEAT_SECONDS`, at the runs' states and heartbeats:

- Pending (or Submitting) for longer than three heartbeats: the worker that
  took the run died before its process started;
- Running, started more than three heartbeats ago, with no heartbeat in the
  last three: its process (or its machine) died.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

log = logging.getLogger("credithub.stuck_runs")

HEARTBEAT = "prefect.flow-run.heartbeat"


@dataclass(frozen=True)
class RunState:
    """What the watch needs of a run."""

    id: UUID
    state: str  # PENDING or RUNNING
    since: datetime  # when it entered that state (Running: its start)


def stuck(
    runs: Iterable[RunState], beating: set[UUID], now: datetime, patience: timedelta
) -> list[UUID]:
    """The runs to mark Crashed: pending too long, or running without a recent heartbeat."""
    return [
        run.id
        for run in runs
        if now - run.since > patience and (run.state == "PENDING" or run.id not in beating)
    ]


def _unfinished(client: Any) -> list[RunState]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from flows.serve import read_all_runs

    states = [StateType.PENDING, StateType.RUNNING]
    where = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)))
    found = []
    for run in read_all_runs(client, where):
        if run.state is None or run.deployment_id is None:
            continue  # not a deployment's run (a test's, a subflow served in-process)
        since = run.start_time if run.state.type == StateType.RUNNING else run.state.timestamp
        found.append(RunState(run.id, run.state.type.value, since or run.state.timestamp))
    return found


def _beating(client: Any, since: datetime) -> set[UUID]:
    """The runs that sent a heartbeat since `since`."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    where = EventFilter(
        event=EventNameFilter(name=[HEARTBEAT]), occurred=EventOccurredFilter(since=since)
    )
    page = client.read_events(filter=where, limit=50)  # the most a page holds
    beating: set[UUID] = set()
    while True:
        for event in page.events:
            beating.add(UUID(event.resource.id.rsplit(".", 1)[1]))
        if not page.next_page:
            return beating
        page = client.read_events_page(page.next_page)


def reap(patience: timedelta, now: datetime | None = None) -> int:
    """Mark Crashed every stuck run of the Prefect server at PREFECT_API_URL; how many."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    now = now or datetime.now(UTC)
    with get_client(sync_client=True) as client:
        runs = _unfinished(client)
        if not runs:
            return 0
        doomed = stuck(runs, _beating(client, now - patience), now, patience)
        for run_id in doomed:
            message = (
                f"Marked Crashed by credithub: no start or heartbeat for {patience.seconds} s "
                "(its worker died); safe to run again"
            )
            client.set_flow_run_state(run_id, Crashed(message=message), force=True)
            log.warning("flow run %s marked Crashed: its worker is gone", run_id)
        return len(doomed)


def watch(heartbeat_seconds: int, stop: threading.Event) -> None:
    """Reap every heartbeat until `stop`; a failure is logged and tried again."""
    patience = timedelta(seconds=3 * heartbeat_seconds)
    while not stop.wait(heartbeat_seconds):
        try:
            reap(patience)
        except Exception as exc:  # the server restarting, say: the next round tries again
            log.warning("could not look for stuck runs: %s: %s", type(exc).__name__, exc)
