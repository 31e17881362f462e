"""Working days in China: the deadlines partners must answer by.

A working day is Monday to Friday, less the public holidays, plus the make-up
working days (调休: a Saturday or Sunday worked to bridge a holiday). The State
Council announces each year's holidays in the autumn before; the maintained
`chinese-calendar` package carries them. Settings add to it: extra holidays and
extra working days (for a year the package does not know yet, or a local
decision), and a calendar can leave the package out (Monday to Friday and the
settings alone). A date that is both an extra holiday and an extra working day
is refused. Outside the years the package knows, the calendar is Monday to
Friday plus the settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import chinese_calendar

from hub.core.clock import business_date, end_of_business_day

# The official data: days off that would be working days, and days worked that would be off.
_OFFICIAL_HOLIDAYS: frozenset[date] = frozenset(chinese_calendar.holidays)
_OFFICIAL_WORKDAYS: frozenset[date] = frozenset(chinese_calendar.workdays)
OFFICIAL_YEARS = range(
    min(day.year for day in _OFFICIAL_HOLIDAYS), max(day.year for day in _OFFICIAL_HOLIDAYS) + 1
)

# How many working days respond_by leaves a bank (CONTRACT.md §4).
RESPONSE_WORKING_DAYS = 3


@dataclass(frozen=True)
class WorkingCalendar:
    """Which dates are working days. The default: the official calendar, no overrides."""

    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    official: bool = True  # use the chinese-calendar package's holidays and make-up days

    def __post_init__(self) -> None:
        both = self.extra_holidays & self.extra_working_days
        if both:
            days = ", ".join(str(day) for day in sorted(both))
            raise ValueError(f"both an extra holiday and an extra working day: {days}")

    @classmethod
    def of(
        cls,
        extra_holidays: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
        *,
        official: bool = True,
    ) -> WorkingCalendar:
        """A calendar from the settings' date lists."""
        return cls(frozenset(extra_holidays), frozenset(extra_working_days), official)

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.extra_holidays:
            return False
        if self.official and day.year in OFFICIAL_YEARS:
            if day in _OFFICIAL_WORKDAYS:
                return True
            if day in _OFFICIAL_HOLIDAYS:
                return False
        return day.weekday() < 5


DEFAULT_CALENDAR = WorkingCalendar()


def add_working_days(start: date, n: int, calendar: WorkingCalendar = DEFAULT_CALENDAR) -> date:
    """The `n`th working day after `start` (`start` itself never counts; n = 0 is `start`)."""
    if n < 0:
        raise ValueError("n counts working days forward, from 0")
    day = start
    while n:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            n -= 1
    return day


def respond_by(
    opened_at: datetime, zone: str, calendar: WorkingCalendar = DEFAULT_CALENDAR
) -> datetime:
    """23:59:59 business time on the 3rd working day after the business date of `opened_at`.

    "After" is strict: an application opened on a Monday is due on Thursday, one
    opened on a Friday evening, a Saturday or a Sunday on the Wednesday after
    (weeks without holidays). Aware UTC.
    """
    opened_on = business_date(opened_at, zone)
    return end_of_business_day(add_working_days(opened_on, RESPONSE_WORKING_DAYS, calendar), zone)
