"""A short soak (bench/soak.py): both programmes under partner faults and `kill -9`s
of the API and the flow runner, every invariant checked at the end (PostgreSQL,
real processes: the Prefect server, the stand-ins, the API, the runner); then
the same with the parts apart on PostgreSQL and Redis (two API processes, two
Prefect servers with their services apart, two workers), killing an API
process and a worker with its flow runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import PG_URL_ENV, REDIS_URL_ENV
from tests.crashing import ROOT

pytestmark = pytest.mark.pg


def _soak(*extra: str) -> str:
    """bench/soak.py's report of a short soak; the test fails if it found anything wrong."""
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(f"PostgreSQL tests are off: set {PG_URL_ENV}")
    database = f"credithub_soak_{uuid.uuid4().hex[:8]}"
    # Each of the hub's processes keeps a pool; beside the other tests' pools the
    # default 40 came near PostgreSQL's 100 connections.
    environment = {
        **os.environ,
        "CREDITHUB_BENCH_ADMIN_URL": admin_url,
        "CREDITHUB_POOL_SIZE": "8",
    }
    command = [sys.executable, "bench/soak.py", "--minutes", "0.4", "--seed", "3",
               "--database", database, *extra]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing lost, nothing done twice" in done.stdout
    return done.stdout


def test_a_short_soak_loses_nothing_and_does_nothing_twice() -> None:
    report = _soak()
    assert "kill -9: {}" not in report  # the API or the runner was killed at least once


def test_the_parts_apart_lose_nothing_and_do_nothing_twice() -> None:
    redis_url = os.environ.get(REDIS_URL_ENV)
    if not redis_url:
        pytest.skip(f"Redis tests are off: set {REDIS_URL_ENV}")
    # A database of its own on that server (the soak empties it first).
    server = urlsplit(redis_url)
    report = _soak("--apart", f"{server.scheme}://{server.netloc}/15")
    kills = next(line for line in report.splitlines() if line.startswith("- kill -9:"))
    assert "'api-1': " in kills and "'worker-1': " in kills, kills  # each at least once
    assert "worker-1's flow runs" in kills, kills  # killed mid-run, with its runs
    assert "| collections ran on a worker | yes |" in report
