"""The one clock: aware UTC instants, and business dates in the business zone.

Use cases take ``now`` as an argument; callers get it from here. Tests set it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, aware UTC (or the instant a test has set)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def set_now(instant: datetime | None) -> None:
    """Freeze the clock at `instant` (aware), or let it run again with None."""
    global _frozen
    if instant is not None and instant.tzinfo is None:
        raise ValueError("the clock takes aware datetimes only")
    _frozen = instant.astimezone(UTC) if instant is not None else None


def business_date(instant: datetime, zone: str) -> date:
    """The calendar date of `instant` in the business zone."""
    return instant.astimezone(ZoneInfo(zone)).date()


def as_utc(instant: datetime) -> datetime:
    """Read back a stored instant as aware UTC (SQLite returns naive values)."""
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


@contextmanager
def frozen_at(instant: datetime) -> Iterator[None]:
    """The clock reads `instant` inside the block, then whatever it read before."""
    global _frozen
    previous = _frozen
    set_now(instant)
    try:
        yield
    finally:
        _frozen = previous


def end_of_business_day(day: date, zone: str) -> datetime:
    """The last second of `day` in the business zone: "as of" that day, aware UTC."""
    return datetime.combine(day, time(23, 59, 59), ZoneInfo(zone)).astimezone(UTC)
