"""The firm's profile ("usable but not visible", CONTRACT.md §4): what banks see.

Banks see a score, a grade and banded indicators, never the credit database's
record behind them. `build_profile` reads a `FirmRecord` and returns only the
contract's fields; `screen_firm` is the check before any of it: an unknown or
dishonest firm is declined before any bank sees the application.

Bands, as of the business date (each band includes its lower edge):

- years in business: completed years since `registered_on` (a firm registered
  on Feb 29 completes a year on Mar 1 in other years): "<1", "1-3" (1 or 2),
  "3-5" (3 or 4), "5+";
- employees insured: "0", "1-9", "10-49", "50+";
- months of utilities paid on time: "<6m" (0-5), "6-12m" (6-11), "12m+" (12 and more);
- the tax credit rating, court judgments and administrative penalties of the
  last three years are shown as they are.

The scorecard (`Scorecard`, configurable; the defaults below) adds points per
indicator; the score is the sum, held within 0..1000:

==============================  =========================================
years in business               <1: 40, 1-3: 100, 3-5: 160, 5+: 200
tax credit rating               A: 250, B: 200, M: 150, C: 60, D: 0
employees insured               0: 20, 1-9: 80, 10-49: 120, 50+: 150
utilities paid on time          <6m: 30, 6-12m: 90, 12m+: 150
court judgments, 3 years        150, less 75 each (not below 0)
administrative penalties, 3 y.  100, less 50 each (not below 0)
==============================  =========================================

The best firm scores 1000, the weakest 90. Grades are the contract's: A from
800, B from 650, C from 500, D below.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.core.partner_records import FirmRecord

Grade = Literal["A", "B", "C", "D"]
YearsBand = Literal["<1", "1-3", "3-5", "5+"]
TaxRating = Literal["A", "B", "M", "C", "D"]
EmployeesBand = Literal["0", "1-9", "10-49", "50+"]
UtilitiesBand = Literal["<6m", "6-12m", "12m+"]
DeclineReason = Literal["firm_unknown", "dishonest_entity"]

MAX_SCORE = 1000
GRADE_FLOORS: tuple[tuple[Grade, int], ...] = (("A", 800), ("B", 650), ("C", 500))


class Indicators(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    years_in_business_band: YearsBand
    tax_credit_rating: TaxRating
    employees_insured_band: EmployeesBand
    utilities_on_time_band: UtilitiesBand
    court_judgments_3y: int
    penalties_3y: int


class Profile(BaseModel):
    """Exactly the contract's profile; `model_dump()` is what a bank sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: int = Field(ge=0, le=MAX_SCORE)
    grade: Grade
    industry: str
    indicators: Indicators


_BANDS: dict[str, tuple[str, ...]] = {
    "years_points": get_args(YearsBand),
    "tax_points": get_args(TaxRating),
    "employees_points": get_args(EmployeesBand),
    "utilities_points": get_args(UtilitiesBand),
}


class Scorecard(BaseModel):
    """Points per indicator (the defaults are the documented scorecard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    years_points: dict[str, int] = {"<1": 40, "1-3": 100, "3-5": 160, "5+": 200}
    tax_points: dict[str, int] = {"A": 250, "B": 200, "M": 150, "C": 60, "D": 0}
    employees_points: dict[str, int] = {"0": 20, "1-9": 80, "10-49": 120, "50+": 150}
    utilities_points: dict[str, int] = {"<6m": 30, "6-12m": 90, "12m+": 150}
    no_judgment_points: int = Field(default=150, ge=0)
    points_per_judgment: int = Field(default=75, ge=0)
    no_penalty_points: int = Field(default=100, ge=0)
    points_per_penalty: int = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _every_band_scored(self) -> Scorecard:
        for name, bands in _BANDS.items():
            points: dict[str, int] = getattr(self, name)
            if set(points) != set(bands):
                raise ValueError(f"{name} needs points for exactly {', '.join(bands)}")
            if any(value < 0 for value in points.values()):
                raise ValueError(f"{name}: points are not negative")
        return self


DEFAULT_SCORECARD = Scorecard()


def screen_firm(record: FirmRecord | None) -> DeclineReason | None:
    """Why an application is declined before profiling, or None to go on."""
    if record is None:
        return "firm_unknown"
    if record.dishonest_entity:
        return "dishonest_entity"
    return None


def completed_years(since: date, as_of: date) -> int:
    """Whole years from `since` to `as_of` (negative when `since` is later)."""
    return as_of.year - since.year - ((as_of.month, as_of.day) < (since.month, since.day))


def years_band(registered_on: date, as_of: date) -> YearsBand:
    years = completed_years(registered_on, as_of)
    return "5+" if years >= 5 else "3-5" if years >= 3 else "1-3" if years >= 1 else "<1"


def employees_band(insured: int) -> EmployeesBand:
    return "50+" if insured >= 50 else "10-49" if insured >= 10 else "1-9" if insured else "0"


def utilities_band(months_on_time: int) -> UtilitiesBand:
    return "12m+" if months_on_time >= 12 else "6-12m" if months_on_time >= 6 else "<6m"


def grade_of(score: int) -> Grade:
    return next((grade for grade, floor in GRADE_FLOORS if score >= floor), "D")


def indicators_of(record: FirmRecord, as_of: date) -> Indicators:
    return Indicators(
        years_in_business_band=years_band(record.registered_on, as_of),
        tax_credit_rating=record.tax_credit_rating,
        employees_insured_band=employees_band(record.employees_insured),
        utilities_on_time_band=utilities_band(record.utilities_on_time_months),
        court_judgments_3y=record.court_judgments_3y,
        penalties_3y=record.penalties_3y,
    )


def score_of(indicators: Indicators, scorecard: Scorecard = DEFAULT_SCORECARD) -> int:
    judgments = scorecard.no_judgment_points - (
        scorecard.points_per_judgment * indicators.court_judgments_3y
    )
    penalties = scorecard.no_penalty_points - scorecard.points_per_penalty * indicators.penalties_3y
    total = (
        scorecard.years_points[indicators.years_in_business_band]
        + scorecard.tax_points[indicators.tax_credit_rating]
        + scorecard.employees_points[indicators.employees_insured_band]
        + scorecard.utilities_points[indicators.utilities_on_time_band]
        + max(0, judgments)
        + max(0, penalties)
    )
    return min(MAX_SCORE, max(0, total))


def build_profile(
    record: FirmRecord, as_of: date, scorecard: Scorecard = DEFAULT_SCORECARD
) -> Profile:
    """The profile banks see, from the database's record on business date `as_of`."""
    indicators = indicators_of(record, as_of)
    score = score_of(indicators, scorecard)
    return Profile(
        score=score, grade=grade_of(score), industry=record.industry, indicators=indicators
    )
