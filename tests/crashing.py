"""Crash tests with real processes: a flow runs in a child process that is killed
with SIGKILL at a seeded point (tests/crash_child.py), then reruns; the tests
count the effects at the partners' stand-ins."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.core import clock
from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def kill_points(seed: int, trials: int, commits: int, calls: int = 0) -> list[str]:
    """Where to kill each trial, the same for the same seed: a random commit, a
    random request to a partner, a random point after a partner answered, in
    turn (commits only when the flow calls no partner). `commits` and `calls`
    are how many of each a clean run of one trial passes."""
    rng = random.Random(seed)
    kinds = ["commit", "request", "answer"] if calls else ["commit"]
    picked = []
    for trial in range(trials):
        kind = kinds[trial % len(kinds)]
        picked.append(f"{kind}:{rng.randint(1, commits if kind == 'commit' else calls)}")
    return picked


@dataclass(frozen=True)
class FlowProcess:
    killed: bool
    points: dict[str, int] | None  # how many points of each kind a run that ended passed
    result: Any
    output: str


def run_flow_process(
    settings: Settings,
    flow: str,
    kill_at: str,
    partner_urls: list[str],
    clock_file: Path,
    **params: Any,
) -> FlowProcess:
    """Run `flow` in a child process against these settings (and this process's
    Prefect API and clock); killed with SIGKILL at `kill_at` (tests/crash_child.py)."""
    from prefect.settings import PREFECT_API_URL

    clock.write_clock_file(clock_file, clock.now())  # the child reads the test's instant
    environment = {
        **os.environ,
        **settings.as_environment(),
        clock.CLOCK_FILE_VARIABLE: str(clock_file),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    command = [sys.executable, "-m", "tests.crash_child", flow, kill_at,
               json.dumps(params), ",".join(partner_urls)]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180
    )
    if done.returncode == -signal.SIGKILL:
        return FlowProcess(True, None, None, done.stderr)
    if done.returncode != 0:
        raise AssertionError(f"{flow} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return FlowProcess(False, report["points"], report["result"], done.stderr)
