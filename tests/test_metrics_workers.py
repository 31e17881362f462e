"""`credithub api --workers 2`: two processes share one port, and whichever answers
/metrics answers for both (prometheus-client's multiprocess files), so a scrape
that lands on either counts every request and sums both pools."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
HEALTH = (
    "credithub_http_requests_total"
    '{method="GET",partner_kind="none",route="/v1/health",status="200"}'
)

pytestmark = pytest.mark.slow


def test_workers_sharing_a_port_answer_for_all(tmp_path: Path) -> None:
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "CREDITHUB_HOME": str(tmp_path),
        "CREDITHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}",
        "CREDITHUB_SECRET_KEY": "workers",
        "PREFECT_API_URL": "",  # no flow runs to read here
    }
    command = [sys.executable, "-m", "credithub.cli", "api", "--port", str(port), "--workers", "2"]
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=out, stderr=out, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert api.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/v1/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not come up in 60 s"
            time.sleep(0.2)
        for _ in range(40):  # a connection each: the kernel spreads them over the workers
            assert httpx.get(f"{base}/v1/health").status_code == 200
        scrapes = [httpx.get(f"{base}/metrics").text for _ in range(6)]
    finally:
        os.killpg(api.pid, signal.SIGTERM)  # the process group this test started
        api.wait(30)
    for text in scrapes:
        assert f"{HEALTH} 40.0" in text
        size = re.search(r"^credithub_db_pool_size (\S+)$", text, re.MULTILINE)
        assert size is not None and float(size[1]) == 10.0  # two pools of 5 (SQLite's)
    assert (tmp_path / "metrics" / f"api-{port}").is_dir()
    lines = log.read_text().splitlines()
    assert sum('"route":"/v1/health"' in line for line in lines) == 40  # JSON access lines
