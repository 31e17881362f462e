"""Schema migrations (Alembic), run from code so they work from any directory."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

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


@lru_cache(maxsize=1)
def heads() -> frozenset[str]:
    """The newest revisions this code knows (read once: they change with the code)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_state(connection: Connection) -> str:
    """`current` when the database is at this code's newest revision; `behind` when
    it is at an older one (or none: never migrated); `ahead` when it names a
    revision this code does not know (a newer release migrated it)."""
    found = frozenset(MigrationContext.configure(connection).get_current_heads())
    if found == heads():
        return "current"
    script = ScriptDirectory.from_config(alembic_config())
    known = {revision.revision for revision in script.walk_revisions()}
    return "behind" if found <= known else "ahead"


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
