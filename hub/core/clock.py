"""The one clock: aware UTC instants, and business dates in the business zone.

Use cases take ``now`` as an argument; callers get it from here. Tests set it
in their own process with `set_now`.

A simulated business clock can also be shared by several processes: when
``CREDITHUB_CLOCK_FILE`` names a file, `now()` reads the instant written in it
(`write_clock_file`), on every call. `credithub demo` sets it for the parts it
starts (the API server, its flows) and moves its clock through the simulated
days; a missing or unreadable file is an error, never the wall clock. `up`
never runs with it set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

CLOCK_FILE_VARIABLE = "CREDITHUB_CLOCK_FILE"

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, aware UTC (or the instant a test or the clock file has set)."""
    if _frozen is not None:
        return _frozen
    clock_file = os.environ.get(CLOCK_FILE_VARIABLE)
    if clock_file:
        return read_clock_file(Path(clock_file))
    return datetime.now(UTC)


def set_now(instant: datetime | None) -> None:
    """Freeze the clock at `instant` (aware), or let it run again with None."""
    global _frozen
    if instant is not None and instant.tzinfo is None:
        raise ValueError("the clock takes aware datetimes only")
    _frozen = instant.astimezone(UTC) if instant is not None else None


def read_clock_file(path: Path) -> datetime:
    """The instant a clock file holds (one RFC 3339 line), aware UTC."""
    try:
        instant = datetime.fromisoformat(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"the clock file {path} holds no instant: {exc}") from exc
    if instant.tzinfo is None:
        raise RuntimeError(f"the clock file {path} holds an instant without a time zone")
    return instant.astimezone(UTC)


def write_clock_file(path: Path, instant: datetime) -> None:
    """Move a shared clock: written whole and renamed, so a reader never sees half of it."""
    if instant.tzinfo is None:
        raise ValueError("the clock takes aware datetimes only")
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(instant.astimezone(UTC).isoformat() + "\n")
    partial.replace(path)


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
