"""Alembic environment: the URL and the metadata come from the hub itself."""

from __future__ import annotations

from alembic import context

from hub.core.db import get_engine
from models.metadata import metadata

config = context.config


def run() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        with get_engine().connect() as connection:
            _migrate(connection)
    else:
        _migrate(connectable)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
