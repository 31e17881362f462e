"""A short soak (bench/soak.py): both programmes under partner faults and `kill -9`s
of the API and the flow runner, every invariant checked at the end (PostgreSQL,
real processes: the Prefect server, the stand-ins, the API, the runner)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import PG_URL_ENV
from tests.crashing import ROOT

pytestmark = pytest.mark.pg


def test_a_short_soak_loses_nothing_and_does_nothing_twice() -> None:
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
               "--database", database]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing lost, nothing done twice" in done.stdout
    assert "kill -9: {}" not in done.stdout  # the API or the runner was killed at least once
