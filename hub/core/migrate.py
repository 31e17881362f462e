"""Schema migrations (Alembic), run from code so they work from any directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hub.core.db import empty_all_tables, get_engine
from hub.settings import PROJECT_ROOT, Settings, get_settings

MIGRATIONS = PROJECT_ROOT / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Bring the configured database's schema up to `revision`."""
    engine = get_engine(settings or get_settings())
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def revision(message: str) -> None:
    """Write a new migration from the difference between the tables and the database."""
    config = alembic_config()
    with get_engine().begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def fresh(settings: Settings) -> None:
    """An empty database at the newest schema, for a demo's own world: the default
    SQLite file is made anew; a named database is migrated and emptied."""
    engine = get_engine(settings)
    engine.dispose()
    if not settings.database_url:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{Path(settings.home) / 'credithub.db'}{suffix}").unlink(missing_ok=True)
    upgrade(settings)
    empty_all_tables(engine)
