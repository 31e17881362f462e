"""Releasing expired holds in bulk, as the hourly hold-expiry flow runs it.

Expiry is a fact of time (reads already ignore expired holds); this use case
brings the stored balances and the books up to date, a batch of lines per
transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.core import clock
from hub.core.db import unit_of_work
from hub.medical import holds

if TYPE_CHECKING:
    from hub.context import HubContext


def sweep(ctx: HubContext, max_lines: int) -> tuple[int, int]:
    """Release the expired holds of up to `max_lines` lines: (lines, fen released)."""
    with unit_of_work(ctx.engine) as session:
        return holds.release_all_expired(session, clock.now(), max_lines)
