"""The one clock: aware UTC instants, and business dates in the business zone.

Use cases take ``now`` as an argument; callers get it from here. Tests set it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
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
