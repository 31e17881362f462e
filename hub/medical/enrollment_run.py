"""Deciding pending enrolments, as the enrolment flow runs it: the use cases the
flow calls, over `enrollment` (which already keeps every partner call outside
its transactions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.core import clock
from hub.core.db import unit_of_work
from hub.medical import enrollment

if TYPE_CHECKING:
    from hub.context import HubContext


def due(ctx: HubContext, limit: int) -> list[str]:
    """Pending enrolments whose (next) attempt is due now, oldest first."""
    with unit_of_work(ctx.engine, write=False) as session:
        return enrollment.due(session, clock.now(), limit)


def decide(ctx: HubContext, partners: enrollment.PartnerSystems, enrollment_id: str) -> str:
    """Take one pending enrolment as far as it goes now; what happened."""
    return enrollment.process(
        ctx.engine, ctx.vault, partners, enrollment_id, ctx.enrollment_rules, clock.now
    )
