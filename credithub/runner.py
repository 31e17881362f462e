"""`credithub run FLOW [--as-of DATE]`: one run of a deployment now, on the Prefect
server `credithub up` started, so operators see it in the UI like any other run.

As of a business date means the hub's clock reads that date's last second in the
business zone for the whole run (the flows' `as_of` parameter): how operators
re-run a day. A date after today on live data is refused unless asked for
explicitly (`--allow-future`): collections as of next month would suspend lines
whose debts are not yet due.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import httpx

from credithub import prefect_access
from credithub.demo import read_up_file
from hub.settings import Settings, get_settings

FLOWS = (
    "enrollment",
    "webhooks",
    "settlement",
    "reconciliation",
    "collections",
    "hold-expiry",
    "loan-profiling",
    "loan-deadlines",
    "loan-delinquency",
    "loan-subsidies",
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
START_WITHIN_S = 90  # a run nobody picks up by then: the flows part is not serving
BUSY_MESSAGE = "Deployment concurrency limit reached."  # Prefect's, for a run it cancels


class NotUp(RuntimeError):
    """`credithub up` (or its flows part) is not running."""


@dataclass
class Outcome:
    """How one run ended, with where to see it."""

    deployment: str
    state: str
    ok: bool
    url: str
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # key, type, description, data


def parse_as_of(text: str | None, today: date, allow_future: bool) -> date | None:
    """The business date of `--as-of`; ValueError with a one-line reason if it is not
    a calendar date written YYYY-MM-DD, or is after `today` without `allow_future`."""
    if text is None:
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--as-of takes a calendar date written YYYY-MM-DD, and {text!r} is not one"
        ) from None
    if day > today and not allow_future:
        raise ValueError(
            f"--as-of {day} is after today ({today}): on live data that acts on debts "
            "and holds before their time; add --allow-future if that is what you mean"
        )
    return day


def prefect_address(settings: Settings) -> str:
    """The Prefect server (its UI address), checked to answer: PREFECT_API_URL's when
    set (the hub's parts run apart, README "Running the parts apart"), else the
    one `up` runs, from up.json."""
    explicit = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if explicit:
        address = explicit.removesuffix("/api")
        advice = "start it, or point PREFECT_API_URL at one that runs"
    else:
        up = read_up_file(Path(settings.home) / "up.json")
        address = str(up.get("addresses", {}).get("prefect") or "")
        advice = "start the hub with `credithub up`"
        if not address:
            raise NotUp(
                f"the hub is not up (no addresses in {Path(settings.home) / 'up.json'}, "
                "no PREFECT_API_URL): start it with `credithub up`"
            )
    try:
        httpx.get(f"{address}/api/health", timeout=2).raise_for_status()
    except httpx.HTTPError:
        raise NotUp(f"the Prefect server at {address} does not answer: {advice}") from None
    return address


def deployment_name(flow_name: str) -> str:
    """ "<flow>/<deployment>" of one of FLOWS, as flows/serve.py names them."""
    from flows.serve import schedules

    flow_ = schedules(get_settings())[flow_name][0]
    return f"{flow_.name}/{flow_name}"


def run_now(
    settings: Settings,
    flow_name: str,
    as_of: date | None,
    on_state: Callable[[str], None] = lambda _s: None,
) -> Outcome:
    """Start one run of the deployment, wait for its end; `on_state` hears each state."""
    address = prefect_address(settings)
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    # A server beyond loopback requires its auth string (credithub/prefect_access.py).
    auth = prefect_access.client_auth(os.environ)
    updates: dict[Any, Any] = {PREFECT_API_URL: f"{address}/api"}
    if auth:
        updates[PREFECT_API_AUTH_STRING] = auth
    with temporary_settings(updates=updates):
        return _run(address, deployment_name(flow_name), as_of, on_state)


def _run(address: str, name: str, as_of: date | None, on_state: Callable[[str], None]) -> Outcome:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    parameters = {"as_of": as_of.isoformat()} if as_of else {}
    started = time.monotonic()
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = cast(
                    FlowRun,
                    run_deployment(name, parameters=parameters, timeout=0, as_subflow=False),
                )
            except ObjectNotFound:
                raise NotUp(
                    f"the Prefect server at {address} has no deployment {name}: "
                    "is `credithub up` running (its flows part serves the deployments), "
                    "or, with the parts apart, has `credithub deploy` run?"
                ) from None
            url = f"{address}/runs/flow-run/{run.id}"
            on_state(f"started {run.name}: {url}")
            run = _wait_for_end(client, run, url, time.monotonic(), on_state)
            state = run.state
            # A polling deployment runs one at a time (flows/serve.py): asked while a
            # poll runs, this run was cancelled; the operator asked for one, so again.
            if not (state.is_cancelled() and state.message == BUSY_MESSAGE):
                break
            if time.monotonic() - started > START_WITHIN_S:
                raise NotUp(
                    f"another run of {name} kept running for {START_WITHIN_S} s; "
                    "see it in the Prefect UI, and try again when it has ended"
                )
            on_state("another run of this deployment is running: trying again when it ends")
            time.sleep(2)
        subflows = client.read_flow_runs(  # settlement's reconciliation, for one
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[run.id, *(r.id for r in subflows)])
            )
        )
    return Outcome(
        name,
        state.name or state.type.value,
        state.is_completed(),
        url,
        [
            {"key": a.key, "type": a.type, "description": a.description, "data": a.data}
            for a in sorted(artifacts, key=lambda a: (a.created is None, a.created))
        ],
    )


def _wait_for_end(
    client: Any, run: Any, url: str, started: float, on_state: Callable[[str], None]
) -> Any:
    """The run read again until its state is final (each new state to `on_state`);
    `started`: when it was asked for, for the wait for the flows part to pick it up."""
    seen: str | None = None
    while True:
        run = client.read_flow_run(run.id)
        state = run.state
        if state is not None and state.name != seen:
            seen = state.name
            on_state(state.name or state.type.value)
        if state is not None and state.is_final():
            return run
        if (state is None or state.is_scheduled()) and (
            time.monotonic() - started > START_WITHIN_S
        ):
            raise NotUp(
                f"nothing started the run in {START_WITHIN_S} s: is `credithub up` "
                f"still running its flows part (or, with the parts apart, a "
                f"`credithub worker`)? The run waits at {url}"
            )
        time.sleep(1)
