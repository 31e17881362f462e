"""Lists partners page through: newest first, `limit` at a time, by cursor.

Ids sort by creation time (`hub.core.ids`), so the last id of a page is the
cursor of the next: a page holds up to `limit` rows with ids below the
cursor, and says whether more follow. Shown as the contract's
`{"data", "has_more", "next_cursor"}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from hub.core.errors import FieldError, Invalid

T = TypeVar("T")

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def limit_param(query: Mapping[str, str]) -> int:
    """A list's `limit`: a whole number from 1 to 100, 20 when absent."""
    raw = query.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Invalid(
            f"limit must be a whole number from 1 to {MAX_LIMIT}",
            errors=[FieldError("limit", f"must be 1-{MAX_LIMIT}")],
        )
    return int(raw)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None on the last page

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    def as_contract(self, present: Callable[[T], Any]) -> dict[str, Any]:
        """The page as the contract shows a list, each item shown by `present`."""
        data = [present(item) for item in self.items]
        return {"data": data, "has_more": self.has_more, "next_cursor": self.next_cursor}


def newest_first(
    session: Session,
    query: Select[T],
    key: InstrumentedAttribute[str],
    params: Mapping[str, str],
) -> Page[T]:
    """One page of `query`'s rows by `key` (a time-ordered id), newest first.

    `params` are the request's `limit` and `cursor` (the `next_cursor` of the
    page before); a bad limit is refused as `validation_failed`.
    """
    limit = limit_param(params)
    if cursor := params.get("cursor"):
        query = query.where(key < cursor)
    found = list(session.scalars(query.order_by(None).order_by(key.desc()).limit(limit + 1)))
    items = found[:limit]
    more = len(found) > limit
    return Page(items, getattr(items[-1], key.key) if more else None)
