"""Working days in China and the banks' answer deadline (respond_by).

The holiday dates are the State Council's, as the chinese-calendar package
carries them: 2025 Spring Festival Jan 28-Feb 4 (worked Sun Jan 26, Sat Feb 8),
National Day Oct 1-8 (worked Sun Sep 28, Sat Oct 11); 2026 Spring Festival
Feb 15-23 (worked Sat Feb 14, Sat Feb 28), Mid-Autumn Sep 25-27, National Day
Oct 1-7 (worked Sun Sep 20, Sat Oct 10).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from hub.core.workdays import (
    DEFAULT_CALENDAR,
    OFFICIAL_YEARS,
    WorkingCalendar,
    add_working_days,
    respond_by,
)

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)


def opened(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


def deadline(day: date) -> datetime:
    """23:59:59 in Shanghai on `day`, as UTC."""
    return datetime(day.year, day.month, day.day, 15, 59, 59, tzinfo=UTC)


def test_the_package_knows_2025_and_2026() -> None:
    assert 2025 in OFFICIAL_YEARS and 2026 in OFFICIAL_YEARS


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 1, 26), True),  # Sunday worked before the Spring Festival
        (date(2025, 1, 27), True),
        (date(2025, 1, 28), False),
        (date(2025, 2, 4), False),  # Tuesday, still the festival
        (date(2025, 2, 5), True),
        (date(2025, 2, 8), True),  # Saturday worked after it
        (date(2025, 9, 28), True),  # Sunday worked before National Day
        (date(2025, 10, 1), False),
        (date(2025, 10, 8), False),  # Wednesday, still the holiday
        (date(2025, 10, 9), True),
        (date(2025, 10, 11), True),  # Saturday worked after it
        (date(2025, 10, 12), False),
        (date(2026, 2, 14), True),  # Saturday worked before the Spring Festival
        (date(2026, 2, 16), False),
        (date(2026, 2, 23), False),  # Monday, still the festival
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday worked after it
        (date(2026, 9, 20), True),  # Sunday worked before National Day
        (date(2026, 9, 25), False),  # Friday, Mid-Autumn
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # Saturday worked after it
    ],
)
def test_holidays_and_make_up_days(day: date, working: bool) -> None:
    assert DEFAULT_CALENDAR.is_working_day(day) is working


def test_agrees_with_the_package_on_every_day_of_2025_and_2026() -> None:
    day = date(2025, 1, 1)
    while day.year < 2027:
        assert DEFAULT_CALENDAR.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("opened_on", "due_on"),
    [
        (date(2025, 3, 3), date(2025, 3, 6)),  # Monday → Thursday, an ordinary week
        (date(2025, 3, 7), date(2025, 3, 12)),  # Friday → Wednesday
        (date(2025, 3, 8), date(2025, 3, 12)),  # Saturday → Wednesday
        # 2025 Spring Festival
        (date(2025, 1, 24), date(2025, 2, 5)),  # Fri → Sun 26 (worked), Mon 27, Wed Feb 5
        (date(2025, 1, 27), date(2025, 2, 7)),  # Mon → Feb 5, 6, 7
        (date(2025, 1, 30), date(2025, 2, 7)),  # opened during the festival
        (date(2025, 2, 6), date(2025, 2, 10)),  # Thu → Fri 7, Sat 8 (worked), Mon 10
        # 2025 National Day
        (date(2025, 9, 26), date(2025, 9, 30)),  # Fri → Sun 28 (worked), Mon 29, Tue 30
        (date(2025, 9, 27), date(2025, 9, 30)),  # Sat → the same
        (date(2025, 9, 30), date(2025, 10, 11)),  # Tue → Oct 9, 10, Sat 11 (worked)
        # 2026 Spring Festival
        (date(2026, 2, 12), date(2026, 2, 24)),  # Thu → Fri 13, Sat 14 (worked), Tue 24
        (date(2026, 2, 25), date(2026, 2, 28)),  # Wed → Thu 26, Fri 27, Sat 28 (worked)
        # 2026 Mid-Autumn and National Day
        (date(2026, 9, 17), date(2026, 9, 21)),  # Thu → Fri 18, Sun 20 (worked), Mon 21
        (date(2026, 9, 24), date(2026, 9, 30)),  # Thu → Mon 28, Tue 29, Wed 30
        (date(2026, 9, 29), date(2026, 10, 9)),  # Tue → Wed 30, Oct 8, Oct 9
        (date(2026, 10, 8), date(2026, 10, 12)),  # Thu → Fri 9, Sat 10 (worked), Mon 12
    ],
)
def test_respond_by_is_the_end_of_the_third_working_day_after(
    opened_on: date, due_on: date
) -> None:
    assert add_working_days(opened_on, 3) == due_on
    assert respond_by(opened(opened_on), ZONE) == deadline(due_on)


def test_respond_by_counts_from_the_business_date() -> None:
    # 16:30 UTC on Monday Sep 29 is 00:30 on Tuesday Sep 30 in Shanghai.
    late = datetime(2025, 9, 29, 16, 30, tzinfo=UTC)
    assert respond_by(late, ZONE) == deadline(date(2025, 10, 11))
    just_before = datetime(2025, 9, 29, 15, 59, 59, tzinfo=UTC)  # 23:59:59 Monday
    assert respond_by(just_before, ZONE) == deadline(date(2025, 10, 10))  # Tue 30, Oct 9, 10
    assert respond_by(late, ZONE).tzinfo == UTC


def test_add_working_days_counts_strictly_after_the_start() -> None:
    assert add_working_days(date(2025, 10, 4), 0) == date(2025, 10, 4)
    assert add_working_days(date(2025, 10, 4), 1) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 9), 1) == date(2025, 10, 10)
    with pytest.raises(ValueError):
        add_working_days(date(2025, 10, 4), -1)


def test_settings_add_holidays_and_working_days() -> None:
    # A local holiday on Monday Mar 3 2025 and a Saturday worked on Mar 8.
    local = WorkingCalendar.of([date(2025, 3, 3)], [date(2025, 3, 8)])
    assert not local.is_working_day(date(2025, 3, 3))
    assert local.is_working_day(date(2025, 3, 8))
    # Opened Friday Feb 28: Tue 4, Wed 5, Thu 6 (instead of Mon 3, Tue 4, Wed 5).
    assert add_working_days(date(2025, 2, 28), 3, local) == date(2025, 3, 6)
    # Opened Thu Mar 6: Fri 7, Sat 8 (worked), Mon 10.
    assert respond_by(opened(date(2025, 3, 6)), ZONE, local) == deadline(date(2025, 3, 10))
    # The settings also overrule the official data.
    overruled = WorkingCalendar.of([date(2025, 9, 28)], [date(2025, 10, 8)])
    assert not overruled.is_working_day(date(2025, 9, 28))
    assert overruled.is_working_day(date(2025, 10, 8))


def test_a_year_the_package_does_not_know_is_monday_to_friday_and_the_settings() -> None:
    year = OFFICIAL_YEARS.stop  # the first year without data
    first_monday = next(date(year, 3, d) for d in range(1, 8) if date(year, 3, d).weekday() == 0)
    assert DEFAULT_CALENDAR.is_working_day(first_monday)
    assert not DEFAULT_CALENDAR.is_working_day(first_monday + timedelta(days=5))
    announced = WorkingCalendar.of([first_monday])  # a holiday put in by the settings
    assert not announced.is_working_day(first_monday)
    assert add_working_days(first_monday - timedelta(days=3), 1, announced) == (
        first_monday + timedelta(days=1)
    )


def test_without_the_official_data_only_monday_to_friday_and_the_settings() -> None:
    plain = WorkingCalendar(official=False)
    assert plain.is_working_day(date(2025, 10, 1))  # National Day, a Wednesday
    assert not plain.is_working_day(date(2025, 10, 11))  # the make-up Saturday
    assert respond_by(opened(date(2025, 9, 30)), ZONE, plain) == deadline(date(2025, 10, 3))


def test_a_date_cannot_be_both_a_holiday_and_a_working_day() -> None:
    with pytest.raises(ValueError, match="2025-03-03"):
        WorkingCalendar.of([date(2025, 3, 3)], [date(2025, 3, 3)])
