"""Prefect's own parts, each runnable alone on any machine: its API servers, its
background services, the deployments of prefect.yaml, and workers on the
`credithub` work pool (README, "Running the parts apart").

Each part is Prefect's own command, started with the environment built here
from the hub's settings, so one set of CREDITHUB_* variables describes the
whole installation:

- Prefect's database: CREDITHUB_PREFECT_DATABASE_URL, or, when the hub is on
  PostgreSQL, a database of Prefect's own beside the hub's (`<name>_prefect`,
  created on first start). The schema is brought to head by whichever server
  starts first, under an advisory lock, so servers started together do not
  race; SQLite under PREFECT_HOME otherwise (one server: `up`'s default).
- Messaging, the docket and concurrency leases in Redis (`prefect-redis`)
  when CREDITHUB_REDIS_URL is set: how several Prefect servers and one
  background-services process share events, automations and deployment slots.
- Crashed runs: a worker's machine can die mid-run. Every flow run sends a
  heartbeat every CREDITHUB_FLOW_HEARTBEAT_SECONDS, and `credithub
  prefect-services` marks Crashed a run that misses three, or that was left
  Pending as long (credithub/stuck_runs.py), which frees its deployment's
  slot; every flow is safe to rerun.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from hub.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORK_POOL = "credithub"


def prefect_database_url(settings: Settings) -> str | None:
    """Prefect's own database (SQLAlchemy URL, asyncpg), or None for SQLite."""
    if settings.prefect_database_url:
        return settings.prefect_database_url
    hub = make_url(settings.sqlalchemy_url())
    if hub.get_backend_name() != "postgresql":
        return None
    own = hub.set(drivername="postgresql+asyncpg", database=f"{hub.database}_prefect")
    return own.render_as_string(hide_password=False)


def server_environment(settings: Settings) -> dict[str, str]:
    """What a Prefect server or its background services need, beside PREFECT_HOME."""
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    database = prefect_database_url(settings)
    if database:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
        env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"  # ensure_database does it
    if settings.redis_url:
        env |= {
            "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
            "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
            "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE": "prefect_redis.cleanup_queue",
            "PREFECT_REDIS_MESSAGING_URL": settings.redis_url,
            # The default docket lives in one server's memory.
            "PREFECT_SERVER_DOCKET_URL": settings.redis_url,
        }
    return env


def flow_environment(settings: Settings) -> dict[str, str]:
    """What every process running flows needs: heartbeats, and the project on disk
    (prefect.yaml's pull step reads CREDITHUB_PROJECT_DIR from the worker)."""
    return {
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(settings.flow_heartbeat_seconds),
        "CREDITHUB_PROJECT_DIR": str(PROJECT_ROOT),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def ensure_database(settings: Settings, upgrade: list[str]) -> None:
    """Create Prefect's PostgreSQL database if missing, then run `upgrade` (Prefect's
    own migration command), holding an advisory lock, so that servers started at
    once create and migrate it one after the other. Nothing for SQLite (the server
    migrates it). Raises DBAPIError or CalledProcessError."""
    import subprocess

    database = prefect_database_url(settings)
    if database is None:
        return
    url = make_url(database).set(drivername="postgresql+psycopg")
    # The lock is taken in the server's `postgres` database: in Prefect's own, a
    # session waiting for it would hold up the migration's CREATE INDEX CONCURRENTLY.
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    key = zlib.crc32(f"credithub prefect upgrade {url.database}".encode())
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                exists = conn.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"),
                    {"name": url.database},
                )
                if not exists:
                    name = conn.dialect.identifier_preparer.quote(str(url.database))
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
                env = {**os.environ, **server_environment(settings)}
                subprocess.run(upgrade, env=env, check=True, stdout=subprocess.DEVNULL)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        admin.dispose()


def ensure_work_pool() -> None:
    """The `credithub` process work pool: made once, found again on every later call."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
