"""The hold-expiry flow: hourly, release expired holds in bulk.

Expiry is a fact of time (reads already ignore expired holds); this sweep
brings the stored balances and the books up to date.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, task

from flows.as_of import runs_as_of
from hub.context import hub_context
from hub.medical import hold_expiry


@task(name="sweep-expired-holds")
def sweep(max_lines: int) -> tuple[int, int]:
    return hold_expiry.sweep(hub_context(), max_lines)


@flow(name="hold-expiry")
@runs_as_of
def expire_holds(
    batch_lines: int = 500, max_batches: int = 40, as_of: date | None = None
) -> dict[str, int]:
    """Sweep until no line has expired holds left (a batch of lines per transaction)."""
    lines = released = 0
    for _ in range(max_batches):
        swept, fen = sweep(batch_lines)
        lines, released = lines + swept, released + fen
        if swept < batch_lines:
            break
    return {"lines": lines, "released_fen": released}
