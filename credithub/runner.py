"""`credithub run FLOW [--as-of DATE]`: one flow run now, on the Prefect server of `up`.

As of a business date means the hub's clock reads that date's end (23:59:59 in
the business zone) for the whole run: how operators re-run a day, and how tests
exercise rules of time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from credithub.demo import read_up_file
from credithub.supervisor import prefect_env
from hub import context
from hub.core import clock
from hub.settings import get_settings

FLOWS = ("enrollment", "webhooks", "settlement", "reconciliation", "collections", "hold-expiry")


def _flow(name: str) -> Callable[..., Any]:
    from flows.serve import schedules

    flow_, _schedule, parameters, _description = schedules(get_settings())[name]
    return lambda: flow_(**parameters)


def run_now(name: str, as_of: str | None) -> Any:
    settings = get_settings()
    up = read_up_file(Path(settings.home) / "up.json")
    prefect = up.get("addresses", {}).get("prefect")
    if not prefect:
        raise RuntimeError("no Prefect server: start the hub with `credithub up` first")
    try:
        httpx.get(f"{prefect}/api/health", timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"the Prefect server at {prefect} does not answer; is `up` running?"
        ) from exc
    os.environ.update(prefect_env(settings, int(prefect.rsplit(":", 1)[1])))
    for systems in ("bank_systems", "hospital_systems"):
        if not getattr(settings, systems) and up.get(systems):
            settings = settings.model_copy(update={systems: up[systems]})
    context.use(settings)
    if as_of:
        day = date.fromisoformat(as_of)
        clock.set_now(datetime.combine(day, time(23, 59, 59), ZoneInfo(settings.business_timezone)))
    return _flow(name)()
