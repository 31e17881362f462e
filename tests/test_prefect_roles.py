"""Prefect's parts run apart (credithub/prefect_roles.py): what each is started with.
The parts themselves run in the soak with the parts apart (tests/test_soak.py)."""

from __future__ import annotations

from pathlib import Path

from credithub import prefect_roles
from hub.core import prefect_database
from hub.settings import Settings


def _settings(**changes: str) -> Settings:
    return Settings(home=Path("/tmp/h"), secret_key="k", **changes)


def test_prefect_keeps_its_state_beside_the_hub_on_postgresql() -> None:
    hub = _settings(database_url="postgresql+psycopg://hub:pw@db:5432/credithub")
    assert prefect_database.prefect_database_url(hub) == (
        "postgresql+asyncpg://hub:pw@db:5432/credithub_prefect"
    )
    env = prefect_roles.server_environment(hub)
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].endswith("/credithub_prefect")
    assert env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"  # migrated under a lock
    named = _settings(
        database_url="postgresql+psycopg://hub@db/credithub",
        prefect_database_url="postgresql+asyncpg://p@other/prefect",
    )
    assert prefect_database.prefect_database_url(named) == "postgresql+asyncpg://p@other/prefect"


def test_on_sqlite_prefect_keeps_its_own_sqlite() -> None:
    env = prefect_roles.server_environment(_settings())
    assert prefect_database.prefect_database_url(_settings()) is None
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in env
    assert "PREFECT_MESSAGING_BROKER" not in env  # one server: in-memory messaging


def test_a_sqlite_file_named_for_prefect_is_the_servers_to_make(tmp_path: Path) -> None:
    hub = _settings(
        database_url="postgresql+psycopg://hub@127.0.0.1:1/credithub",  # nobody listens
        prefect_database_url=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
    )
    env = prefect_roles.server_environment(hub)
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith("sqlite+aiosqlite:")
    assert "PREFECT_SERVER_DATABASE_MIGRATE_ON_START" not in env
    prefect_database.ensure_database(hub, ["false"], {})  # nothing to create, nothing to run


def test_with_redis_every_prefect_server_shares_its_messaging_there() -> None:
    env = prefect_roles.server_environment(_settings(redis_url="redis://r:6379/2"))
    assert env["PREFECT_MESSAGING_BROKER"] == "prefect_redis.messaging"
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == "prefect_redis.lease_storage"
    assert env["PREFECT_REDIS_MESSAGING_URL"] == env["PREFECT_SERVER_DOCKET_URL"]
    assert env["PREFECT_REDIS_MESSAGING_URL"] == "redis://r:6379/2"


def test_workers_send_heartbeats_and_find_the_project() -> None:
    env = prefect_roles.flow_environment(_settings())
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert (Path(env["CREDITHUB_PROJECT_DIR"]) / "prefect.yaml").is_file()


def test_runs_a_dead_worker_left_are_found_and_no_others() -> None:
    from datetime import UTC, datetime, timedelta
    from uuid import uuid4

    from credithub.stuck_runs import RunState, stuck

    now, patience = datetime(2026, 12, 4, 12, 0, tzinfo=UTC), timedelta(seconds=90)
    old, new = now - timedelta(seconds=91), now - timedelta(seconds=89)
    runs = {
        "never started": RunState(uuid4(), "PENDING", old),
        "just picked up": RunState(uuid4(), "PENDING", new),
        "running, beating": RunState(uuid4(), "RUNNING", old),
        "running, silent": RunState(uuid4(), "RUNNING", old),
        "just started, silent": RunState(uuid4(), "RUNNING", new),
    }
    beating = {runs["running, beating"].id}
    found = stuck(runs.values(), beating, now, patience)
    assert found == [runs["never started"].id, runs["running, silent"].id]
