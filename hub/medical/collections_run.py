"""The day's collections, as the collections flow runs them: use cases over
`collections`, with the reports to the credit database made through a port.

Each report is made under a key derived from the debt (`overdue:<visit id>`)
outside any transaction, and recorded after the database took it: a rerun
reports only what was not recorded, and a repeat is recorded once there. (Loan
instalments' debts are reported by `hub.loans.collections`.)
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol

from hub.core import clock
from hub.core.clock import business_date
from hub.core.db import unit_of_work
from hub.medical import collections
from models.core.partner_errors import PartnerError
from models.core.partner_records import OverdueReceipt

if TYPE_CHECKING:
    from hub.context import HubContext


class OverdueReporter(Protocol):
    """The credit database, as far as it takes reports of overdue debt."""

    def report_overdue(
        self,
        *,
        report_id: str,
        id_number: str,
        amount_fen: int,
        days_past_due: int,
        reported_on: dt.date,
        idempotency_key: str,
    ) -> OverdueReceipt: ...


def policy(ctx: HubContext) -> collections.Policy:
    s = ctx.settings
    return collections.Policy(
        suspend_after_days=s.suspend_after_days_past_due,
        report_after_days=s.report_after_days_past_due,
        zone=s.business_timezone,
    )


def today(ctx: HubContext) -> dt.date:
    """The business date collections work on (the hub clock's)."""
    return business_date(clock.now(), ctx.settings.business_timezone)


def take_steps(ctx: HubContext) -> dict[str, int]:
    """Today's reminders, suspensions and reinstatements, in one transaction; counts."""
    now = clock.now()
    rules = policy(ctx)
    with unit_of_work(ctx.engine) as session:
        return collections.run_day(session, rules, business_date(now, rules.zone), now)


def report_overdue(ctx: HubContext, bureau: OverdueReporter) -> dict[str, int]:
    """Report debts past the report age to the credit database, each once; counts."""
    rules, reported_on = policy(ctx), today(ctx)
    with unit_of_work(ctx.engine, write=False) as session:
        due = collections.reports_due(session, ctx.vault, rules, reported_on)
    counts = {"reported": 0, "retry_later": 0}
    for report in due:
        key = report.report_id
        try:
            bureau.report_overdue(
                report_id=key,
                id_number=report.id_number,
                amount_fen=report.amount_fen,
                days_past_due=report.days_past_due,
                reported_on=reported_on,
                idempotency_key=key,
            )
        except PartnerError:
            counts["retry_later"] += 1
            continue
        with unit_of_work(ctx.engine) as session:
            collections.mark_reported(session, report, reported_on, clock.now())
        counts["reported"] += 1
    return counts
