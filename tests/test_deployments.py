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
from prefect.exceptions import ObjectNotFound

from credithub.supervisor import deployments_served
from flows.as_of import runs_as_of
from flows.serve import schedules, tidy_runs
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
        ids[name] = flow_.to_deployment(name=name, parameters=parameters).apply()
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
