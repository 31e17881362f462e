"""`GET /v1/ready`: 200 when the database answers at this release's schema, 503
when it does not answer, is not yet migrated, or was migrated by a newer
release; and /metrics still answers, at once, when the database does not."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from starlette.testclient import TestClient

from hub.core import migrate
from hub.core.db import get_engine
from hub.settings import Settings
from integrations.endpoints.app import create_app
from integrations.endpoints.snapshot import Snapshot
from tests.conftest import World


def test_ready_when_the_database_answers_at_head(world: World) -> None:
    r = world.client.get("/v1/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "database": "ok", "schema": "current"}
    assert world.client.get("/v1/health").json() == {"status": "ok"}  # the contract's, as it was


def _sqlite(tmp_path: Path, revision: str | None) -> Settings:
    settings = Settings(
        home=tmp_path, database_url=f"sqlite:///{tmp_path / 'ready.db'}", secret_key="ready"
    )
    if revision is not None:
        migrate.upgrade(settings, revision)
    return settings


def _ready(settings: Settings) -> tuple[int, dict[str, str]]:
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/ready")
    return r.status_code, r.json()


def test_not_ready_when_the_schema_is_behind(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    (head,) = script.get_heads()
    before = script.get_revision(head).down_revision
    assert isinstance(before, str)
    assert _ready(_sqlite(tmp_path, before)) == (
        503,
        {"status": "unavailable", "database": "ok", "schema": "behind"},
    )


def test_not_ready_when_never_migrated(tmp_path: Path) -> None:
    assert _ready(_sqlite(tmp_path, None))[1]["schema"] == "behind"


def test_not_ready_when_a_newer_release_migrated_it(tmp_path: Path) -> None:
    settings = _sqlite(tmp_path, "head")
    with get_engine(settings).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    assert _ready(settings) == (
        503,
        {"status": "unavailable", "database": "ok", "schema": "ahead"},
    )


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a database that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_at(tmp_path: Path, port: int) -> Settings:
    return Settings(
        home=tmp_path,
        database_url=f"postgresql+psycopg://root@127.0.0.1:{port}/credithub",
        secret_key="ready",
        observe_timeout_seconds=0.5,
    )


def test_not_ready_and_metrics_answer_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = _postgres_at(tmp_path, _closed_port())
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/ready")
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "database": "unreachable", "schema": "unknown"}
        assert client.get("/v1/health").status_code == 503
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "credithub_figures_up 0.0" in metrics.text
    assert "credithub_holds{" not in metrics.text  # no figures rather than stale ones


def test_a_database_that_never_answers_holds_neither_the_scrape_nor_the_probe(
    tmp_path: Path,
) -> None:
    """Each waits its deadline (0.5 s here), not the database's connect timeout: the
    read goes on alone on its own thread, and a second scrape waits for that one
    rather than starting another."""
    with silent_server() as port:
        settings = _postgres_at(tmp_path, port)
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            first, second = client.get("/metrics"), client.get("/metrics")
            ready = client.get("/v1/ready")
            elapsed = time.monotonic() - started
    assert first.status_code == second.status_code == 200
    assert "credithub_figures_up 0.0" in second.text
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
    assert elapsed < 10  # not a timing target: it would take minutes if the reads hung it


def test_an_app_started_again_still_reads(tmp_path: Path) -> None:
    """An app's lifespan may run more than once (the conformance tests start one app
    per partner kind): its reading threads outlive a shutdown."""
    app = create_app(_sqlite(tmp_path, "head"))
    for _ in range(2):
        with TestClient(app) as client:
            assert client.get("/v1/ready").status_code == 200
            assert "credithub_figures_up 1.0" in client.get("/metrics").text


def test_a_late_read_leaves_no_stale_figures_behind() -> None:
    """Once the last good read is older than it may be shown and the next one is
    late, the scrape shows nothing (`*_up 0`) rather than the old figures; the late
    read, when it ends, is shown."""
    release, answers = threading.Event(), iter([1, 2])

    def read() -> int:
        value = next(answers)
        if value == 2:
            release.wait(5)
        return value

    snapshot = Snapshot("test", read, max_age=0.0, timeout=0.2)
    first = asyncio.run(snapshot.refresh())
    assert (first.ok, first.value) == (True, 1)
    late = asyncio.run(snapshot.refresh())
    assert not late.ok and not snapshot.latest.ok
    release.set()
    time.sleep(0.2)
    assert (snapshot.latest.ok, snapshot.latest.value) == (True, 2)
