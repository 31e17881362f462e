"""Prefect's own parts, each runnable alone on any machine: its API servers, its
background services, the deployments of prefect.yaml, and workers on the
`credithub` work pool (README, "Running the parts apart").

Each part is Prefect's own command, started with the environment built here
from the hub's settings, so one set of CREDITHUB_* variables describes the
whole installation:

- Prefect's database: CREDITHUB_PREFECT_DATABASE_URL, or, when the hub is on
  PostgreSQL, a database of Prefect's own beside the hub's (`<name>_prefect`,
  created and migrated on first start: hub/core/prefect_database.py); SQLite
  under PREFECT_HOME otherwise (one server: `up`'s default).
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
from pathlib import Path

from hub.core.prefect_database import prefect_database_url
from hub.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORK_POOL = "credithub"


def server_environment(settings: Settings) -> dict[str, str]:
    """What a Prefect server or its background services need, beside PREFECT_HOME."""
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    database = prefect_database_url(settings)
    if database:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
    if database and database.startswith("postgresql"):
        # Migrated before a server starts, one at a time (hub/core/prefect_database.py);
        # a SQLite file named instead is the server's own to migrate.
        env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
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


def ensure_work_pool() -> None:
    """The `credithub` process work pool: made once, found again on every later call."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
