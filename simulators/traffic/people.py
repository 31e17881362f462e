"""The residents the desks make up: valid identity numbers, phones, repayment habits.

Personal fields never appear in a repr, so no log line carries them.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

_AREAS = ("350203", "350205", "350206", "350211", "350212", "350213", "350102", "350502")
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
HABITS = ("prompt", "on_due", "late")  # how a resident repays the bank
HABIT_WEIGHTS = (0.4, 0.35, 0.25)
LATE_BY_DAYS = 4  # a late payer pays this long after the due date: past suspension


def adult_id_number(rng: random.Random, today: dt.date) -> str:
    """A valid GB 11643 number of a resident aged 20 to 80, from a Fujian area."""
    born = today - dt.timedelta(days=rng.randint(20 * 366, 80 * 365))
    first17 = f"{rng.choice(_AREAS)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def phone_number(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randint(0, 999_999_999):09d}"


def pays_today(habit: str, today: dt.date, next_due: dt.date) -> bool:
    """Prompt payers pay at once, on-time payers the day before the due date, late ones late."""
    if habit == "prompt":
        return True
    if habit == "on_due":
        return today >= next_due - dt.timedelta(days=1)
    return today >= next_due + dt.timedelta(days=LATE_BY_DAYS)


@dataclass(eq=False)  # a resident is themself, whatever their fields
class Resident:
    """A resident the desks know, from sign-up on."""

    id_number: str = field(repr=False)
    name: str = field(repr=False)
    phone: str = field(repr=False)
    hospital: str  # the hospital that enrolled the resident
    habit: str = "prompt"
    enrollment_id: str | None = None
    status: str = "new"  # new, pending, enrolled (declined ones are forgotten)
    line_id: str | None = None
    bank_code: str | None = None
    available_fen: int | None = None
    polled_at: float = 0.0  # monotonic: when the desk last asked about the enrolment
    in_visit: bool = False
    owes: bool = False  # something was captured since the bank last saw nothing outstanding
    blocked: bool = False  # overdue or suspended: no new visit until repaid
