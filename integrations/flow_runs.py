"""Starting a deployment's flow run from the API (the Prefect server of `up`), and
reading how the flows' runs went (for operators' metrics)."""

from __future__ import annotations

import base64
import logging
import os
import time
from datetime import datetime
from typing import Any

import httpx

log = logging.getLogger("credithub.flow_runs")


def start_run(deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str | None:
    """Schedule a run now and return its id, or None when Prefect cannot be reached.

    The same idempotency key returns the same run. Without PREFECT_API_URL the
    hub does not start a temporary server of its own: the schedule will do the work.
    """
    if not os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.deployments import run_deployment

    try:
        run = run_deployment(
            deployment, parameters=parameters, timeout=0, idempotency_key=idempotency_key
        )
    except Exception as exc:  # Prefect down or the deployment not served: not the caller's problem
        log.warning("could not start %s: %s", deployment, type(exc).__name__)
        return None
    return str(run.id)  # type: ignore[union-attr]  # sync call: a FlowRun, not a coroutine


def prefect_api() -> tuple[str, dict[str, str]] | None:
    """Prefect's API address and the headers its clients send (PREFECT_API_AUTH_STRING
    as basic authentication, or PREFECT_API_KEY), or None when none is configured."""
    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if not url:
        return None
    headers = {}
    if auth := os.environ.get("PREFECT_API_AUTH_STRING", "").strip():
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    elif key := os.environ.get("PREFECT_API_KEY", "").strip():
        headers["Authorization"] = f"Bearer {key}"
    return url, headers


def runs_by_state(
    api: tuple[str, dict[str, str]], since: datetime, until: datetime, timeout: float
) -> dict[tuple[str, str], int]:
    """(flow name, state type) → flow runs expected to start between `since` and
    `until`, deployed or not (`credithub demo` runs flows without deployments): one
    read of the flows, then one of each flow's run history (Prefect's aggregate, in
    one interval). Raises httpx.HTTPError or TimeoutError when Prefect does not
    answer them all within `timeout`."""
    url, headers = api
    deadline = time.monotonic() + timeout
    counts: dict[tuple[str, str], int] = {}
    with httpx.Client(base_url=url, headers=headers) as client:

        def post(path: str, body: dict[str, Any]) -> Any:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Prefect did not answer in time")
            answer = client.post(path, json=body, timeout=left)
            answer.raise_for_status()
            return answer.json()

        for flow in post("/flows/filter", {}):
            history = post(
                "/flow_runs/history",
                {
                    "history_start": since.isoformat(),
                    "history_end": until.isoformat(),
                    "history_interval_seconds": max(1.0, (until - since).total_seconds()),
                    "flows": {"id": {"any_": [flow["id"]]}},
                },
            )
            for interval in history:
                for state in interval["states"]:
                    key = (str(flow["name"]), str(state["state_type"]).lower())
                    counts[key] = counts.get(key, 0) + int(state["count_runs"])
    return counts
