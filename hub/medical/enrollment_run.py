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


def decide(
    ctx: HubContext, partners: enrollment.PartnerSystems, enrollment_ids: list[str]
) -> dict[str, str]:
    """Take a batch of pending enrolments as far as they go now; what happened to each."""
    return enrollment.decide_batch(
        ctx.engine,
        ctx.vault,
        partners,
        enrollment_ids,
        ctx.enrollment_rules,
        clock.now,
        concurrency=ctx.settings.enrollment_concurrency,
    )
