"""Credit-easy loans: the scorecard, working days for deadlines, the fund's share,
subsidies, the overdue ratio that pauses offers, and the flows' schedules.

A mixin of `hub.settings.Settings`: every field keeps its flat
``CREDITHUB_<NAME>`` environment variable (lists and objects as JSON).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from hub.core.workdays import WorkingCalendar
from hub.loans import policy
from hub.loans.profile import DEFAULT_SCORECARD, Scorecard


class LoansSettings(BaseModel):
    # The profile banks see (hub/loans/profile.py documents the default scorecard).
    scorecard: Scorecard = DEFAULT_SCORECARD

    # Banks answer by 23:59:59 on the 3rd working day: China's public holidays and
    # make-up working days (chinese-calendar), amended by these two lists.
    extra_holidays: list[date] = []
    extra_working_days: list[date] = []
    answer_working_days: int = Field(default=3, ge=1)
    offer_valid_days: int = Field(default=7, ge=1)  # an offer lapses this long after respond_by

    # The programme's money rules (hub/loans/policy.py).
    risk_share_bps: int = Field(default=policy.DEFAULT_SHARE_BPS, ge=0, le=10_000)
    subsidy_points_bps: int = Field(default=policy.DEFAULT_SUBSIDY_POINTS_BPS, ge=0)
    subsidy_grades: list[str] = sorted(policy.DEFAULT_SUBSIDY_GRADES)
    overdue_stop_bps: int = Field(default=policy.DEFAULT_OVERDUE_STOP_BPS, ge=0, le=10_000)
    default_after_days_past_due: int = Field(default=90, ge=1)

    # The flows' schedules (business time).
    profiling_interval_seconds: int = 10  # how often the served flow looks for applications
    # Many applications waiting are profiled by this many runs at once (the scheduled
    # one and helpers on the work pool), each walking a range of its own.
    profiling_lanes: int = Field(default=2, ge=1)
    profiling_lanes_from: int = Field(default=4, ge=1)  # batches waiting: helpers worth it
    loan_deadlines_cron: str = "5 0 * * *"  # expire unanswered applications and offers
    delinquency_cron: str = "15 0 * * *"
    subsidies_cron: str = "0 6 1 * *"  # the 1st of each month

    def working_calendar(self) -> WorkingCalendar:
        return WorkingCalendar.of(self.extra_holidays, self.extra_working_days)
