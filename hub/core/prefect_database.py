"""Prefect's own database, when the hub runs on PostgreSQL: beside the hub's
(`<name>_prefect`) unless CREDITHUB_PREFECT_DATABASE_URL names another, created
and brought to head before a Prefect server starts (credithub/prefect_roles.py).
"""

from __future__ import annotations

import subprocess
import zlib

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from hub.settings import Settings


class Unavailable(RuntimeError):
    """Prefect's database could not be created or migrated; the message says what to do."""


def prefect_database_url(settings: Settings) -> str | None:
    """Prefect's own database (SQLAlchemy URL, asyncpg), or None for SQLite."""
    if settings.prefect_database_url:
        return settings.prefect_database_url
    hub = make_url(settings.sqlalchemy_url())
    if hub.get_backend_name() != "postgresql":
        return None
    own = hub.set(drivername="postgresql+asyncpg", database=f"{hub.database}_prefect")
    return own.render_as_string(hide_password=False)


def ensure_database(settings: Settings, upgrade: list[str], env: dict[str, str]) -> None:
    """Create Prefect's PostgreSQL database if missing, then run `upgrade` (Prefect's
    own migration command), holding an advisory lock, so that servers started at
    once create and migrate it one after the other. Nothing for SQLite (the server
    migrates it). Raises Unavailable, saying what to do."""
    database = prefect_database_url(settings)
    if database is None or make_url(database).get_backend_name() != "postgresql":
        return  # SQLite, named or by default: the server makes and migrates its file
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
                subprocess.run(upgrade, env=env, check=True, stdout=subprocess.DEVNULL)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    except DBAPIError as exc:
        raise Unavailable(
            f"could not create or reach Prefect's database "
            f"({url.render_as_string(hide_password=True)}): {type(exc.orig).__name__}. "
            "Create it (CREATE DATABASE, owned by this user), or name another with "
            "CREDITHUB_PREFECT_DATABASE_URL"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise Unavailable(
            f"migrating Prefect's database failed: run `{' '.join(upgrade)}` to see why"
        ) from exc
    finally:
        admin.dispose()
