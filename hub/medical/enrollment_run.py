"""Deciding pending enrolments, as the enrolment flow runs it: the use cases the
flow calls, over `enrollment` (which already keeps every partner call outside
its transactions)."""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import TYPE_CHECKING

from hub.core import clock
from hub.core.db import unit_of_work
from hub.medical import enrollment
from models.core.partner_errors import CALL_DEADLINE_SECONDS

if TYPE_CHECKING:
    from hub.context import HubContext
    from hub.settings import Settings

log = logging.getLogger(__name__)


def backlog(ctx: HubContext) -> int:
    """How many pending enrolments are due now."""
    with unit_of_work(ctx.engine, write=False) as session:
        return enrollment.count_due(session, clock.now())


def claim(ctx: HubContext, limit: int) -> list[str]:
    """A batch of due enrolments, oldest first, claimed for this run alone."""
    with unit_of_work(ctx.engine) as session:
        return enrollment.claim(session, clock.now(), limit, claim_for(ctx.settings))


def claim_for(settings: Settings) -> timedelta:
    """How long a claimed batch is left to its run: the setting, else as long as deciding
    it can take when every partner call runs to its deadline (the credit database's
    round, then the bank's), and a minute more. Shorter, and a slow batch would be
    taken by a second run while the first still works on it."""
    if settings.enrollment_claim_seconds is not None:
        return timedelta(seconds=settings.enrollment_claim_seconds)
    rounds = math.ceil(settings.enrollment_batch_size / max(settings.enrollment_concurrency, 1))
    return timedelta(seconds=2 * rounds * CALL_DEADLINE_SECONDS + 60)


def decide(
    ctx: HubContext, partners: enrollment.PartnerSystems, enrollment_ids: list[str]
) -> dict[str, str]:
    """Take a batch of pending enrolments as far as they go now; what happened to each.
    If the batch fails as a whole (one applicant's row cannot be read, the database
    refuses), its enrolments are taken one at a time, so that one bad row costs only
    itself ("error:<kind>") and the rest are decided (the partners are asked again
    under the same keys)."""
    try:
        return _decide(ctx, partners, enrollment_ids)
    except Exception as exc:
        log.exception("a batch of %d enrolments failed", len(enrollment_ids))
        if len(enrollment_ids) == 1:
            return {enrollment_ids[0]: f"error:{type(exc).__name__}"}
    outcomes: dict[str, str] = {}
    for enrollment_id in enrollment_ids:
        outcomes |= decide(ctx, partners, [enrollment_id])
    return outcomes


def _decide(
    ctx: HubContext, partners: enrollment.PartnerSystems, enrollment_ids: list[str]
) -> dict[str, str]:
    return enrollment.decide_batch(
        ctx.engine,
        ctx.vault,
        partners,
        enrollment_ids,
        ctx.enrollment_rules,
        clock.now,
        concurrency=ctx.settings.enrollment_concurrency,
    )
