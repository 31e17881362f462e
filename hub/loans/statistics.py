"""Banks' answers in a month (CONTRACT.md §4, `GET /v1/loan-statistics`): how many
applications each bank was offered in the month (business time, by the time
it was offered), how many it answered, how many by `respond_by`, and the
median time it took to answer, in hours.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.errors import FieldError, Invalid
from models.core.tables import Partner
from models.loans.tables import ApplicationBank, LoanApplication

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class BankMonth:
    bank_code: str
    offered: int
    answered: int
    answered_in_time: int
    median_hours_to_answer: float | None

    def as_contract(self) -> dict[str, Any]:
        return {
            "bank_code": self.bank_code,
            "offered": self.offered,
            "answered": self.answered,
            "answered_in_time": self.answered_in_time,
            "median_hours_to_answer": self.median_hours_to_answer,
        }


def month_bounds(month: str | None, zone: str) -> tuple[datetime, datetime]:
    """The month `YYYY-MM` as [start, end) instants of the business zone; 422 if bad."""
    found = _MONTH.fullmatch(month or "")
    year, number = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if not (1 <= number <= 12 and 1 <= year <= 9998):
        raise Invalid(
            "month must be YYYY-MM, e.g. 2026-03",
            errors=[FieldError("month", "must be YYYY-MM")],
        )
    tz = ZoneInfo(zone)
    start = datetime.combine(date(year, number, 1), time(), tz)
    end = datetime.combine(date(year + number // 12, number % 12 + 1, 1), time(), tz)
    return start, end


def month_of_answers(
    session: Session, month: str | None, zone: str, bank_id: str | None
) -> list[BankMonth]:
    """Each bank's row for the month (only `bank_id`'s when given), by bank code."""
    start, end = month_bounds(month, zone)
    banks = select(Partner.id, Partner.code).where(Partner.kind == "bank")
    if bank_id is not None:
        banks = banks.where(Partner.id == bank_id)
    codes = {bank_id: code for bank_id, code in session.execute(banks)}
    rows = session.execute(
        select(
            ApplicationBank.bank_id,
            ApplicationBank.offered_at,
            ApplicationBank.answered_at,
            LoanApplication.respond_by,
        )
        .join(LoanApplication, LoanApplication.id == ApplicationBank.application_id)
        .where(
            ApplicationBank.bank_id.in_(codes),
            ApplicationBank.offered_at >= start,
            ApplicationBank.offered_at < end,
        )
    ).all()
    offered: dict[str, int] = defaultdict(int)
    in_time: dict[str, int] = defaultdict(int)
    hours: dict[str, list[float]] = defaultdict(list)
    for bank, offered_at, answered_at, respond_by in rows:
        offered[bank] += 1
        if answered_at is not None:
            hours[bank].append((answered_at - offered_at).total_seconds() / 3600)
            if respond_by is not None and answered_at <= respond_by:
                in_time[bank] += 1
    return sorted(
        (
            BankMonth(
                code,
                offered[bank],
                len(hours[bank]),
                in_time[bank],
                round(statistics.median(hours[bank]), 2) if hours[bank] else None,
            )
            for bank, code in codes.items()
        ),
        key=lambda row: row.bank_code,
    )
