"""`credithub api --workers 2`: two processes share one port, and whichever answers
/metrics answers for both (prometheus-client's multiprocess files), so a scrape
that lands on either counts every request and sums both pools."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from hub.settings import Settings
from tests.live import api_process, free_port

HEALTH = (
    "credithub_http_requests_total"
    '{method="GET",partner_kind="none",route="/v1/health",status="200"}'
)

pytestmark = pytest.mark.slow


def test_workers_sharing_a_port_answer_for_all(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'workers.db'}",
        secret_key="workers",
    )
    log = tmp_path / "api.log"
    base = f"http://127.0.0.1:{port}"
    no_prefect = {"PREFECT_API_URL": ""}  # no flow runs to read here
    with api_process(settings, port, log, "--workers", "2", env=no_prefect, ready="/v1/ready"):
        for _ in range(40):  # a connection each: the kernel spreads them over the workers
            assert httpx.get(f"{base}/v1/health").status_code == 200
        scrapes = [httpx.get(f"{base}/metrics").text for _ in range(6)]
    for text in scrapes:
        assert f"{HEALTH} 40.0" in text
        size = re.search(r"^credithub_db_pool_size (\S+)$", text, re.MULTILINE)
        assert size is not None and float(size[1]) == 10.0  # two pools of 5 (SQLite's)
    assert (tmp_path / "metrics" / f"api-{port}").is_dir()
    lines = log.read_text().splitlines()
    assert sum('"route":"/v1/health"' in line for line in lines) == 40  # JSON access lines
