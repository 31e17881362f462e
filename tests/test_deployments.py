"""The deployments: prefect.yaml and what `up` serves declare the same flows and
schedules; each takes `as_of`; a restart leaves no run stuck and replays no missed
poll; `credithub run` goes through the served deployment."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.exceptions import ObjectNotFound

from credithub import runner as runner_module
from credithub.runner import BUSY_MESSAGE
from credithub.supervisor import deployments_served
from flows.as_of import runs_as_of
from flows.serve import ONE_AT_A_TIME, POLLING, deployments, schedules, tidy_runs
from hub import context
from hub.core import clock, migrate
from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_prefect_yaml_matches_the_served_deployments() -> None:
    declared = {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    served = schedules(Settings())
    assert set(declared) == set(served)
    for name, (flow_, schedule, parameters, description) in served.items():
        d = declared[name]
        path, function = d["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        assert getattr(importlib.import_module(module), function) is flow_
        assert d.get("parameters", {}) == parameters and d["description"] == description
        yaml_schedules = d.get("schedules", [])
        if schedule is None:
            assert yaml_schedules == []
        elif schedule.cron:
            assert yaml_schedules == [{"cron": schedule.cron, "timezone": schedule.timezone}]
        else:
            assert yaml_schedules == [{"interval": int(schedule.interval.total_seconds())}]
        one_at_a_time = {"limit": 1, "collision_strategy": "CANCEL_NEW"}  # the polls
        assert d.get("concurrency_limit") == (one_at_a_time if name in POLLING else None), name
    for deployment in deployments():
        limit = (deployment.concurrency_limit, deployment.concurrency_options)
        polls = (ONE_AT_A_TIME.limit, ConcurrencyOptions(collision_strategy="CANCEL_NEW"))
        assert limit == (polls if deployment.name in POLLING else (None, None)), deployment.name


# --------------------------------------------------------------------------
# as of a business date


def test_every_deployment_takes_as_of_and_runs_on_that_day() -> None:
    """`as_of` is a parameter of every deployment (shown in the UI, passed by
    `credithub run --as-of`); inside the run the clock reads that day's last second."""
    for name, (flow_, _schedule, _parameters, _description) in schedules(Settings()).items():
        assert "as_of" in flow_.parameters.properties, name
        assert flow_.validate_parameters({"as_of": "2026-03-01"})["as_of"] == date(2026, 3, 1)

    seen: list[datetime] = []

    @runs_as_of
    def probe(as_of: date | None = None) -> None:
        seen.append(clock.now())

    zone = ZoneInfo(context.hub_context().settings.business_timezone)
    before = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    clock.set_now(before)
    try:
        probe(as_of=date(2026, 2, 28))
        probe("2026-03-01")  # as Prefect may pass it
        probe()  # no day: the clock as it was (a subflow runs on its parent's day)
        assert clock.now() == before  # put back after each run
    finally:
        clock.set_now(None)
    assert [s.astimezone(zone).replace(tzinfo=None) for s in seen[:2]] == [
        datetime(2026, 2, 28, 23, 59, 59),
        datetime(2026, 3, 1, 23, 59, 59),
    ]
    assert seen[2] == before
    with pytest.raises(TypeError):
        runs_as_of(lambda: None)


# --------------------------------------------------------------------------
# On the Prefect server: what `up` tidies before serving, and `credithub run`


def _apply(names: list[str]) -> dict[str, Any]:
    """Register the named deployments as `serve` does (without their schedules)."""
    served = schedules(Settings())
    ids = {}
    for name in names:
        flow_, _schedule, parameters, _description = served[name]
        one_at_a_time = ONE_AT_A_TIME if name in POLLING else None
        deployment = flow_.to_deployment(
            name=name, parameters=parameters, concurrency_limit=one_at_a_time
        )
        ids[name] = deployment.apply()
    return ids


def test_a_restart_crashes_unfinished_runs_and_drops_missed_polling_runs(
    prefect_harness: None,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Pending, Running, Scheduled

    ids = _apply(["enrollment", "settlement", "hold-expiry"])
    now = datetime.now(UTC)
    past, future = now - timedelta(minutes=5), now + timedelta(hours=1)
    with get_client(sync_client=True) as client:

        def run(name: str, state: Any) -> Any:
            return client.create_flow_run_from_deployment(ids[name], state=state).id

        left_running = run("settlement", Running())
        left_submitting = run("enrollment", Pending(name="Submitting"))
        missed = [run("enrollment", Scheduled(scheduled_time=past)) for _ in range(3)]
        missed.append(run("hold-expiry", Scheduled(scheduled_time=past)))
        due_settlement = run("settlement", Scheduled(scheduled_time=past))  # an operator's
        next_poll = run("enrollment", Scheduled(scheduled_time=future))

        done = tidy_runs(client, Settings(), now)
        assert done == {"crashed": 2, "missed_deleted": 4}

        def state_of(run_id: Any) -> str | None:
            state = client.read_flow_run(run_id).state
            return state.name if state else None

        assert state_of(left_running) == "Crashed" and state_of(left_submitting) == "Crashed"
        for run_id in missed:
            with pytest.raises(ObjectNotFound):
                client.read_flow_run(run_id)
        assert state_of(due_settlement) == "Scheduled"  # settlement runs are not dropped
        assert state_of(next_poll) == "Scheduled"  # nor polls still to come
        assert tidy_runs(client, Settings(), now) == {"crashed": 0, "missed_deleted": 0}


def test_a_poll_due_while_one_runs_is_cancelled_and_a_restart_frees_the_slot(
    prefect_harness: None,
) -> None:
    """A polling deployment runs one at a time: the runner's proposal to start a second
    is refused, so late polls never queue up. A runner killed mid-poll does not block
    the polls for good: the restart's tidy marks the run Crashed, freeing its slot."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.states import Pending, Running

    ids = _apply(["webhooks", "settlement"])
    with get_client(sync_client=True) as client:

        def start(name: str) -> tuple[Any, Any]:
            """A run of the deployment, as the runner starts it: Pending then Running."""
            run_id = client.create_flow_run_from_deployment(ids[name]).id
            result = client.set_flow_run_state(run_id, Pending())
            if result.status == SetStateStatus.ACCEPT:
                client.set_flow_run_state(run_id, Running())
            return run_id, client.read_flow_run(run_id).state

        first, running = start("webhooks")
        assert running.is_running()
        _, refused = start("webhooks")
        assert refused.is_cancelled() and refused.message == BUSY_MESSAGE
        assert start("settlement")[1].is_running() and start("settlement")[1].is_running()

        assert tidy_runs(client, Settings(), datetime.now(UTC))["crashed"] == 3  # a restart
        assert client.read_flow_run(first).state.is_crashed()
        assert start("webhooks")[1].is_running()  # the slot is free again


def test_credithub_run_of_a_poll_starts_again_when_the_running_one_ends(
    prefect_harness: None,
) -> None:
    """`credithub run webhooks` while a poll runs: Prefect cancels the new run, so the
    command starts another once the poll has ended, and reports that one."""
    import threading

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.states import Completed, Pending, Running

    ids = _apply(["webhooks"])
    stop = threading.Event()
    refused = []

    def runner() -> None:
        """What the runner does with a due run: propose Pending, run it."""
        due = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[ids["webhooks"]]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        )
        with get_client(sync_client=True) as client:
            while not stop.wait(0.2):
                for run in client.read_flow_runs(flow_run_filter=due):
                    if client.set_flow_run_state(run.id, Pending()).status != SetStateStatus.ACCEPT:
                        refused.append(run.id)
                        client.set_flow_run_state(polling, Completed())  # the poll ends
                        continue
                    client.set_flow_run_state(run.id, Running())
                    client.set_flow_run_state(run.id, Completed())

    with get_client(sync_client=True) as client:
        polling = client.create_flow_run_from_deployment(ids["webhooks"]).id
        client.set_flow_run_state(polling, Pending())
        client.set_flow_run_state(polling, Running())
    said: list[str] = []
    serving = threading.Thread(target=runner)
    serving.start()
    try:
        outcome = runner_module._run(
            "http://prefect", runner_module.deployment_name("webhooks"), None, said.append
        )
    finally:
        stop.set()
        serving.join()
    assert len(refused) == 1 and outcome.ok and outcome.state == "Completed"
    assert "another run of this deployment is running: trying again when it ends" in said
    assert outcome.url.rsplit("/", 1)[1] not in {str(polling), str(refused[0])}


def test_credithub_run_goes_through_the_served_deployment(
    prefect_harness: None, tmp_path: Path
) -> None:
    """`up`'s flows part serves every deployment; `credithub run collections --as-of`
    starts a run of the deployment with that parameter, waits, and shows its artifact."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value())
    address = api.removesuffix("/api")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITHUB_")}
    env.update(
        CREDITHUB_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        COLUMNS="120",
    )
    migrate.upgrade(Settings(home=home))
    (home / "up.json").write_text(json.dumps({"addresses": {"prefect": address}}))
    names = list(schedules(Settings()))
    since = datetime.now(UTC)
    with (tmp_path / "flows.log").open("wb") as log:
        served = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        for _ in range(600):  # what `up` waits for (a guard, not a measure: 5 min at most)
            if deployments_served(address, names, since):
                break
            assert served.poll() is None, (tmp_path / "flows.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            raise AssertionError("the deployments were never served")
        r = subprocess.run(
            [sys.executable, "-m", "credithub.cli", "run", "collections", "--as-of", "2026-01-15"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, (r.stdout, r.stderr, (tmp_path / "flows.log").read_text()[-3000:])
        link = next(w for w in r.stderr.split() if w.startswith(f"{address}/runs/flow-run/"))
        # Read while the runner still serves: stopped at once after a run, it may not
        # have reaped the run's process yet, and marks the run cancelled (noted).
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(link.rsplit("/", 1)[1]))
            deployment = client.read_deployment_by_name("collections/collections")
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        served.wait(timeout=60)
    assert "Traceback" not in r.stderr
    assert "Collections, 2026-01-15" in r.stdout  # the run's artifact: it ran on that day
    assert "collections/collections: Completed" in r.stderr
    assert run.deployment_id == deployment.id  # the deployment's run, seen in the UI
    assert run.parameters == {"as_of": "2026-01-15"}
    assert run.state is not None and run.state.is_completed()
