"""Partner references (`his_order_id`, `bank_txn_id`, ...): unique per partner.

The same reference with the same parameters returns the existing object, as a
replay would; with other parameters it is refused as `duplicate_reference`.
New rows are inserted with ON CONFLICT DO NOTHING, so the first writer wins
without an exception that would abort the surrounding transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.errors import DuplicateReference


def insert_new(session: Session, model: type[Any], values: dict[str, Any]) -> bool:
    """Insert one row unless it clashes with a unique key; True when inserted."""
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = next(iter(model.__table__.primary_key.columns))
    statement = builder(model).values(**values).on_conflict_do_nothing().returning(key)
    return session.execute(statement).first() is not None


def replay_or_refuse(existing: Any, field: str, same: bool) -> Any:
    """The existing object when the request repeats it; else duplicate_reference."""
    if not same:
        raise DuplicateReference(field, existing.id)
    return existing
