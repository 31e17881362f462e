"""Partner references (`his_order_id`, `bank_txn_id`, ...): unique per partner.

The same reference with the same parameters returns the existing object, as a
replay would; with other parameters it is refused as `duplicate_reference`.
`insert_or_replay` is that rule for every object a partner names: the row is
inserted with ON CONFLICT DO NOTHING, so the first writer wins without an
exception that would abort the surrounding transaction, and a clash is
answered by `replay`. The statements are built once and run on the session's
connection: this is the authorization hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Table, select
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


def replay(
    session: Session, model: type[Any], reference: Mapping[str, Any], request: Mapping[str, Any]
) -> Any | None:
    """The object already named by this partner reference, if the request repeats it.

    `reference` is the unique key (the partner, then its reference); `request`
    the attributes a repeat must match. None when no object has the reference;
    `DuplicateReference` when one has it for a different request.
    """
    existing = session.scalar(select(model).filter_by(**reference))
    if existing is None:
        return None
    if any(getattr(existing, name) != value for name, value in request.items()):
        raise DuplicateReference(list(reference)[-1], existing.id)
    return existing


def insert_or_replay(
    session: Session,
    model: type[Any],
    values: dict[str, Any],
    reference: tuple[str, ...],
    request: tuple[str, ...],
) -> tuple[Any, bool]:
    """Insert the object a partner names, or replay the one it named before.

    Returns the object and True when it is new, the earlier object and False
    when the request repeats it; raises `DuplicateReference` otherwise. The
    names in `reference` and `request` are columns given in `values`.
    """
    if insert_new(session, model, values):
        return session.get(model, values["id"]), True
    existing = replay(
        session,
        model,
        {name: values[name] for name in reference},
        {name: values[name] for name in request},
    )
    if existing is None:  # the row clashed on another key: a programming error
        raise RuntimeError(f"{model.__name__} {values['id']} clashed, but not on {reference}")
    return existing, False
