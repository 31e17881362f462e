"""Starting a deployment's flow run from the API (the Prefect server of `up`)."""

from __future__ import annotations

import logging
import os
from typing import Any

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
