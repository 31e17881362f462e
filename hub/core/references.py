"""Partner references (`his_order_id`, `bank_txn_id`, ...): unique per partner.

The same reference with the same parameters returns the existing object, as a
replay would; with other parameters it is refused as `duplicate_reference`.
New rows are inserted with ON CONFLICT DO NOTHING, so the first writer wins
without an exception that would abort the surrounding transaction. The
statements are built once and run on the session's connection: this is the
authorization hot path.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.core.errors import DuplicateReference
from models.core.tables import table_of


@cache
def _insert_unless_exists(dialect: str, table: Table) -> Any:
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = next(iter(table.primary_key.columns))
    return builder(table).on_conflict_do_nothing().returning(key)


def insert_new(session: Session, model: type[Any], values: dict[str, Any]) -> bool:
    """Insert one row unless it clashes with a unique key; True when inserted."""
    connection = session.connection()
    statement = _insert_unless_exists(connection.dialect.name, table_of(model))
    return connection.execute(statement, values).first() is not None


def replay_or_refuse(existing: Any, field: str, same: bool) -> Any:
    """The existing object when the request repeats it; else duplicate_reference."""
    if not same:
        raise DuplicateReference(field, existing.id)
    return existing
