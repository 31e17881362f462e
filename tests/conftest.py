"""Test fixtures: real SQLite and real PostgreSQL, the real app, real partners.

PostgreSQL tests run when CREDITHUB_TEST_PG_URL is set (CI sets it); without
it they skip with a message saying how to turn them on. Each session gets its
own PostgreSQL database, dropped at the end; tables are emptied between tests.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from starlette.testclient import TestClient

from hub.core import clock, migrate
from hub.core.db import dispose_engines, empty_all_tables, get_engine, unit_of_work
from hub.settings import Settings

# Prefect runs offline in tests: one temporary server for the whole session.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

PG_URL_ENV = "CREDITHUB_TEST_PG_URL"
PG_SKIP = (
    f"PostgreSQL tests are off: set {PG_URL_ENV}=postgresql+psycopg://root@127.0.0.1:5432/test"
)
REDIS_URL_ENV = "CREDITHUB_TEST_REDIS_URL"
REDIS_SKIP = f"Redis tests are off: set {REDIS_URL_ENV}=redis://127.0.0.1:6379/0"


# Minutes each (tests/test_soak.py), and the property tests on PostgreSQL: run first, so
# that under xdist the other worker runs the rest beside them instead of after them.
LONGEST_FIRST = ("tests/test_soak.py::", "tests/test_stateful.py::")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable otherwise
    if os.environ.get("CI"):
        for name in (PG_URL_ENV, REDIS_URL_ENV):
            if not os.environ.get(name):
                raise pytest.UsageError(f"CI must run the PostgreSQL and Redis tests: set {name}")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(PG_SKIP)
    name = f"credithub_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """A Redis server for limits shared by several processes (the keys each test
    writes carry its own prefix, so tests do not meet)."""
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.skip(REDIS_SKIP)
    return url


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test server, started once per session (about 8 s), only when needed."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def sqlite_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("credithub-home")


def _settings(home: Path, url: str) -> Settings:
    return Settings(
        home=home,
        database_url=url,
        secret_key="test-secret-key",
        # Off, as in a test every request is a key lookup; tests/test_guards.py
        # switches each on.
        auth_cache_seconds=0,
        rate_limit_per_second=0,
        unknown_key_lookups_per_second=0,
        partner_concurrency=0,
        # Fewer than the API's 40: each test process keeps its pool open, and two
        # of them beside the soak's hub came within a few of PostgreSQL's default
        # 100 connections (the races need at most 16 at once).
        pool_size=16,
    )


_migrated: set[str] = set()


def _fresh(settings: Settings) -> Engine:
    engine = get_engine(settings)
    if settings.sqlalchemy_url() not in _migrated:
        migrate.upgrade(settings)
        _migrated.add(settings.sqlalchemy_url())
    empty_all_tables(engine)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def settings(request: pytest.FixtureRequest, sqlite_home: Path) -> Iterator[Settings]:
    """Settings on an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{sqlite_home / 'test.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
    settings = _settings(sqlite_home, url)
    _fresh(settings)
    clock.set_now(None)
    yield settings
    clock.set_now(None)


@pytest.fixture
def pg_settings(pg_database_url: str, sqlite_home: Path) -> Settings:
    settings = _settings(sqlite_home, pg_database_url)
    _fresh(settings)
    return settings


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return get_engine(settings)


@dataclass
class World:
    """A hub with partners: two hospitals, two banks, an operator, and a line."""

    settings: Settings
    client: TestClient
    keys: dict[str, str]
    ids: dict[str, str]

    def headers(self, who: str, key: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.keys[who]}"}
        if key is not None:
            h["Idempotency-Key"] = key
        return h

    def post(self, who: str, path: str, body: Any, key: str | None = None) -> Any:
        return self.client.post(path, json=body, headers=self.headers(who, key or uuid.uuid4().hex))

    def get(self, who: str, path: str) -> Any:
        return self.client.get(path, headers=self.headers(who))

    def closed_visit(self, ref: str, amount: int, hospital: str = "h1") -> str:
        """A visit on the world's line (after the hospital's eligibility check, which
        gives it the line), closed at once with a self-paid bill of `amount`."""
        self.post(hospital, "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
        visit = self.post(
            hospital,
            "/v1/visits",
            {"credit_line_id": self.ids["line"], "his_visit_id": ref, "kind": "outpatient"},
        ).json()["visit_id"]
        bill = {
            "his_bill_id": ref,
            "total_fen": amount,
            "insurance_fen": 0,
            "self_pay_fen": amount,
            "items": [{"code": "X", "name": "x", "amount_fen": amount}],
        }
        assert self.post(hospital, f"/v1/visits/{visit}/close", bill).status_code == 200
        return str(visit)


ID_NUMBERS = [
    "11010519491231002X",
    "110101199003070011",
    "350203198001011235",
    "440305199512312229",
]


def make_world(settings: Settings) -> World:
    from hub.core import partners
    from hub.core.personal_data import get_vault
    from hub.medical.lines import open_line
    from integrations.endpoints.app import create_app

    vault = get_vault(settings)
    keys, ids = {}, {}
    with unit_of_work(get_engine(settings)) as session:
        for who, kind in [
            ("h1", "hospital"),
            ("h2", "hospital"),
            ("b1", "bank"),
            ("b2", "bank"),
            ("op", "operator"),
            ("ch", "channel"),
        ]:
            new = partners.add_partner(
                session,
                vault,
                kind=kind,
                name=f"{who} name",
                code=who.upper(),
                webhook_url=None,
                now=clock.now(),
            )
            keys[who], ids[who] = new.api_key, new.partner_id
        line = open_line(
            session,
            vault,
            id_number=ID_NUMBERS[0],
            name="张三",
            phone="13800001234",
            bank_id=ids["b1"],
            limit_fen=100_000,
            source="test",
            now=clock.now(),
        )
        ids["line"] = line.id
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    return World(settings, client, keys, ids)


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    w = make_world(settings)
    with w.client:
        yield w


def latest_artifact(key: str) -> Any:
    """The latest Prefect artifact under `key`, as an operator reads it in the UI
    (a table artifact as its list of rows)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert len(found) == 1, key
    data = found[0].data
    return json.loads(data) if found[0].type == "table" and isinstance(data, str) else data
