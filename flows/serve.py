"""Every flow's deployment with its schedule: what operators see and trigger in the
Prefect UI. `credithub up` serves them (`python -m flows.serve`); prefect.yaml
declares the same for `prefect deploy` (a test keeps the two in step).

Before serving, the runs a previous `up` left behind are put right: a run it left
Pending or Running can never finish (its process is gone), so it is marked
Crashed where operators see it (every flow is safe to rerun); and the runs the
server scheduled ahead for the polling deployments while nothing served them are
deleted — replaying them at once would only delay real work (an operator's
settlement waited 76 s behind sixty of them), and the next run does the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import serve
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
    StateType,
)
from prefect.schedules import Cron, Interval
from prefect.states import Crashed

from flows.loans.deadlines import expire_deadlines
from flows.loans.delinquency import check_delinquency
from flows.loans.profiling import profile_applications, profile_lane
from flows.loans.subsidies import grant_subsidies
from flows.medical.collections import collect
from flows.medical.enrollment import enroll_lane, enroll_pending
from flows.medical.hold_expiry import expire_holds
from flows.medical.reconciliation import reconcile
from flows.medical.settlement import settle
from flows.webhooks import deliver_events
from hub.settings import Settings, get_settings


def schedules(s: Settings) -> dict[str, Any]:
    """Deployment name → (flow, schedule or None, parameters, description)."""
    zone = s.business_timezone
    return {
        "enrollment": (
            enroll_pending,
            Interval(timedelta(seconds=s.enrollment_interval_seconds)),
            {},
            "Decide pending enrolments: credit database, rules, bank.",
        ),
        "enrollment-lane": (
            enroll_lane,
            None,
            {},
            "A helper the enrolment flow starts for a large backlog: decides batches beside it.",
        ),
        "webhooks": (
            deliver_events,
            Interval(timedelta(seconds=s.webhook_interval_seconds)),
            {},
            "Deliver due events to partners' webhooks, signed.",
        ),
        "settlement": (
            settle,
            Cron(s.settlement_cron, timezone=zone),
            {"close": True},
            "Close the day's window, pay each hospital's net, reconcile.",
        ),
        "reconciliation": (
            reconcile,
            None,
            {},
            "Match the books with hospitals' lists and banks' statements.",
        ),
        "collections": (
            collect,
            Cron(s.collections_cron, timezone=zone),
            {},
            "Reminders, suspensions, reinstatements, reports at 30 days.",
        ),
        "hold-expiry": (
            expire_holds,
            Cron(s.hold_expiry_cron, timezone=zone),
            {},
            "Release expired holds in bulk.",
        ),
        "loan-profiling": (
            profile_applications,
            Interval(timedelta(seconds=s.profiling_interval_seconds)),
            {},
            "Profile loan applications from the credit database and offer them to banks.",
        ),
        "loan-profiling-lane": (
            profile_lane,
            None,
            {},
            "A helper the profiling flow starts when many applications wait: a range of them.",
        ),
        "loan-deadlines": (
            expire_deadlines,
            Cron(s.loan_deadlines_cron, timezone=zone),
            {},
            "Expire unanswered loan applications and lapsed offers.",
        ),
        "loan-subsidies": (
            grant_subsidies,
            Cron(s.subsidies_cron, timezone=zone),
            {},
            "Grant last month's interest subsidies and instruct the banks to pay them.",
        ),
        "loan-delinquency": (
            check_delinquency,
            Cron(s.delinquency_cron, timezone=zone),
            {},
            "Loans' days past due: overdue at 1+, defaulted at 90+, events once.",
        ),
    }


# Polling deployments: a missed run is not worth replaying, the next one does its work.
POLLING = frozenset({"enrollment", "webhooks", "hold-expiry", "loan-profiling"})
# One run of each at a time; a run due while one is running is cancelled (Prefect's
# deployment concurrency limit), since the running one does its work. Without it, on
# a loaded machine the polls fell behind and queued up, and an operator's settlement
# waited behind minutes of them.
ONE_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)
UNFINISHED = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
_BATCH = 200


def deployment_names(s: Settings) -> dict[str, str]:
    """Deployment name → its full name in Prefect, "<flow>/<deployment>"."""
    return {name: f"{flow_.name}/{name}" for name, (flow_, *_rest) in schedules(s).items()}


def tidy_runs(client: SyncPrefectClient, s: Settings, now: datetime) -> dict[str, int]:
    """Crash the runs of our deployments left unfinished (and their subflows); delete
    the polling deployments' scheduled runs that are due before `now`. Counts of each.
    Only for a start with nothing serving yet: a run in flight would be marked too."""
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=list(schedules(s))))
    )
    ours = {d.id: d.name for d in found}
    done = {"crashed": 0, "missed_deleted": 0}
    if not ours:
        return done  # a fresh Prefect server: nothing left behind
    stale = FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED))
    by_deployment = FlowRunFilterDeploymentId(any_=list(ours))
    runs = read_all_runs(client, FlowRunFilter(deployment_id=by_deployment, state=stale))
    if runs:
        parents = FlowRunFilterParentFlowRunId(any_=[r.id for r in runs])
        runs += read_all_runs(client, FlowRunFilter(parent_flow_run_id=parents, state=stale))
    for run in runs:
        client.set_flow_run_state(
            run.id,
            Crashed(message="left unfinished when `credithub up` stopped; safe to run again"),
            force=True,
        )
        done["crashed"] += 1
    polling = [i for i, name in ours.items() if name in POLLING]
    missed = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=polling),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        expected_start_time=FlowRunFilterExpectedStartTime(before_=now),
    )
    for run in read_all_runs(client, missed) if polling else []:
        client.delete_flow_run(run.id)
        done["missed_deleted"] += 1
    return done


def read_all_runs(client: SyncPrefectClient, where: FlowRunFilter) -> list[Any]:
    """Every flow run the filter matches, read a page at a time."""
    runs: list[Any] = []
    while batch := client.read_flow_runs(flow_run_filter=where, limit=_BATCH, offset=len(runs)):
        runs += batch
    return runs


def deployments() -> list[Any]:
    made = []
    for name, (flow_, schedule, parameters, description) in schedules(get_settings()).items():
        made.append(
            flow_.to_deployment(
                name=name,
                schedule=schedule,
                parameters=parameters,
                description=description,
                concurrency_limit=ONE_AT_A_TIME if name in POLLING else None,
            )
        )
    return made


def main() -> None:
    with get_client(sync_client=True) as client:
        done = tidy_runs(client, get_settings(), datetime.now(UTC))
    print(
        f"left by the last start: {done['crashed']} unfinished runs marked Crashed, "
        f"{done['missed_deleted']} missed polling runs deleted",
        flush=True,
    )
    # At most this many runs at once, each a process of its own: when runs take
    # longer than their polling interval (a loaded machine), the next ones wait
    # for a slot instead of piling up processes until the machine stalls.
    serve(*deployments(), print_starting_message=True, limit=get_settings().flow_runs_at_once)


if __name__ == "__main__":
    main()
