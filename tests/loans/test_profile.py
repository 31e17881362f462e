"""The firm's profile ("usable but not visible"): bands at their edges, the scorecard,
grades, and nothing of the record beyond the contract's fields."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from hub.loans.profile import (
    DEFAULT_SCORECARD,
    Scorecard,
    build_profile,
    completed_years,
    employees_band,
    grade_of,
    screen_firm,
    utilities_band,
    years_band,
)
from models.core.partner_records import FirmRecord
from simulators.credit_bureau import derived_firm

TODAY = date(2026, 3, 2)
USCC = "91110000600037341L"


def firm(**changes: Any) -> FirmRecord:
    """A strong firm (every indicator at its best), changed as asked."""
    record: dict[str, Any] = {
        "uscc": USCC,
        "name": "厦门鹭岛贸易有限公司",
        "registered_on": date(2015, 6, 1),
        "industry": "wholesale",
        "tax_credit_rating": "A",
        "employees_insured": 60,
        "utilities_on_time_months": 24,
        "court_judgments_3y": 0,
        "penalties_3y": 0,
        "dishonest_entity": False,
    }
    return FirmRecord.model_validate(record | changes)


@pytest.mark.parametrize(
    ("registered_on", "band"),
    [
        (date(2026, 3, 2), "<1"),
        (date(2025, 3, 3), "<1"),  # a day short of a year
        (date(2025, 3, 2), "1-3"),  # exactly a year
        (date(2023, 3, 3), "1-3"),
        (date(2023, 3, 2), "3-5"),
        (date(2021, 3, 3), "3-5"),
        (date(2021, 3, 2), "5+"),
        (date(1990, 1, 1), "5+"),
        (date(2026, 3, 3), "<1"),  # a record dated after today
    ],
)
def test_years_in_business_band(registered_on: date, band: str) -> None:
    assert years_band(registered_on, TODAY) == band


def test_a_firm_registered_on_february_29_completes_its_year_on_march_1() -> None:
    assert completed_years(date(2024, 2, 29), date(2025, 2, 28)) == 0
    assert completed_years(date(2024, 2, 29), date(2025, 3, 1)) == 1
    assert completed_years(date(2024, 2, 29), date(2028, 2, 29)) == 4


@pytest.mark.parametrize(
    ("insured", "band"),
    [(0, "0"), (1, "1-9"), (9, "1-9"), (10, "10-49"), (49, "10-49"), (50, "50+")],
)
def test_employees_insured_band(insured: int, band: str) -> None:
    assert employees_band(insured) == band


@pytest.mark.parametrize(
    ("months", "band"),
    [(0, "<6m"), (5, "<6m"), (6, "6-12m"), (11, "6-12m"), (12, "12m+"), (99, "12m+")],
)
def test_utilities_on_time_band(months: int, band: str) -> None:
    assert utilities_band(months) == band


@pytest.mark.parametrize(
    ("score", "grade"),
    [(1000, "A"), (800, "A"), (799, "B"), (650, "B"), (649, "C"), (500, "C"), (499, "D"), (0, "D")],
)
def test_grades_at_their_edges(score: int, grade: str) -> None:
    assert grade_of(score) == grade


def test_the_best_and_the_weakest_firm() -> None:
    best = build_profile(firm(), TODAY)
    assert (best.score, best.grade) == (1000, "A")
    weakest = build_profile(
        firm(
            registered_on=TODAY,
            tax_credit_rating="D",
            employees_insured=0,
            utilities_on_time_months=0,
            court_judgments_3y=7,
            penalties_3y=9,
        ),
        TODAY,
    )
    assert (weakest.score, weakest.grade) == (90, "D")


def test_points_per_indicator_as_documented() -> None:
    # 3-5 years 160, B 200, 1-9 insured 80, 6-12m 90, 1 judgment 75, 1 penalty 50 = 655.
    profile = build_profile(
        firm(
            registered_on=date(2022, 1, 1),
            tax_credit_rating="B",
            employees_insured=5,
            utilities_on_time_months=8,
            court_judgments_3y=1,
            penalties_3y=1,
        ),
        TODAY,
    )
    assert (profile.score, profile.grade) == (655, "B")
    # 5+ 200, B 200, 50+ 150, 12m+ 150, 2 judgments 0, no penalty 100 = 800: grade A.
    edge = build_profile(firm(tax_credit_rating="B", court_judgments_3y=2), TODAY)
    assert (edge.score, edge.grade) == (800, "A")
    assert build_profile(firm(tax_credit_rating="B", court_judgments_3y=3), TODAY).score == 800
    below = build_profile(firm(tax_credit_rating="B", court_judgments_3y=2, penalties_3y=1), TODAY)
    assert (below.score, below.grade) == (750, "B")


def test_the_profile_is_exactly_the_contract_s_fields() -> None:
    profile = build_profile(firm(registered_on=date(2024, 1, 1), employees_insured=12), TODAY)
    shown = profile.model_dump()
    assert shown == {
        "score": 870,  # 1000 less 100 (1-3 years) and 30 (10-49 insured)
        "grade": "A",
        "industry": "wholesale",
        "indicators": {
            "years_in_business_band": "1-3",
            "tax_credit_rating": "A",
            "employees_insured_band": "10-49",
            "utilities_on_time_band": "12m+",
            "court_judgments_3y": 0,
            "penalties_3y": 0,
        },
    }
    text = json.dumps(shown, ensure_ascii=False)
    for hidden in (USCC, "厦门", "2024-01-01", "dishonest", "registered"):
        assert hidden not in text


def test_a_dishonest_entity_is_screened_out_not_scored_down() -> None:
    assert screen_firm(None) == "firm_unknown"
    assert screen_firm(firm(dishonest_entity=True)) == "dishonest_entity"
    assert screen_firm(firm()) is None
    assert build_profile(firm(dishonest_entity=True), TODAY) == build_profile(firm(), TODAY)


def test_the_scorecard_is_configurable() -> None:
    strict = Scorecard(tax_points={"A": 100, "B": 50, "M": 20, "C": 0, "D": 0})
    assert build_profile(firm(), TODAY, strict).score == 850
    generous = Scorecard(no_penalty_points=900)
    assert build_profile(firm(), TODAY, generous).score == 1000  # held at 1000
    from_settings = Scorecard.model_validate_json('{"points_per_judgment": 150}')
    assert build_profile(firm(court_judgments_3y=1), TODAY, from_settings).score == 850


@pytest.mark.parametrize(
    "bad",
    [
        {"tax_points": {"A": 250, "B": 200}},  # bands left out
        {"years_points": {"<1": 40, "1-3": 100, "3-5": 160, "5+": 200, "10+": 300}},
        {"utilities_points": {"<6m": -1, "6-12m": 90, "12m+": 150}},
        {"points_per_penalty": -5},
        {"surprise": 1},
    ],
)
def test_a_scorecard_must_score_every_band(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Scorecard.model_validate(bad)


def test_every_firm_of_the_database_stand_in_gets_a_profile() -> None:
    for n in range(200):
        record = FirmRecord.model_validate(derived_firm(7, f"uscc-{n}"))
        profile = build_profile(record, TODAY)
        assert 90 <= profile.score <= 1000
        assert profile.grade == grade_of(profile.score)
        assert profile.industry == record.industry
    assert Scorecard() == DEFAULT_SCORECARD
