"""`GET /v1/loan-statistics?month=YYYY-MM` (CONTRACT.md §4): per bank, the
applications offered to it in the month (business time), answered, answered by
respond_by, and the median hours to answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.core import clock
from tests.loans.application_stage import FIRM, FIRM2, FIRM3, Stage, later, stage

__all__ = ["stage"]


def rows(stage: Stage, who: str, month: str) -> list[dict[str, object]]:
    r = stage.world.get(who, f"/v1/loan-statistics?month={month}")
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_each_banks_answers_in_the_month(stage: Stage) -> None:
    first = stage.open_application(FIRM)  # Monday 2 March 10:00, Shanghai
    later(timedelta(hours=2))
    second = stage.open_application(FIRM2)  # 12:00
    later(timedelta(hours=4))  # 16:00
    assert stage.offer("b1", first).status_code == 201  # 6 h after it was offered
    assert stage.decline("b1", second).status_code == 201  # 4 h
    assert stage.decline("b2", first).status_code == 201  # 6 h
    later(timedelta(days=3, hours=8))  # Friday 00:00: past respond_by
    late = stage.decline("b2", second)
    assert late.status_code == 409  # too late to answer: offered, never answered
    assert rows(stage, "op", "2026-03") == [
        {
            "bank_code": "B1",
            "offered": 2,
            "answered": 2,
            "answered_in_time": 2,
            "median_hours_to_answer": 5.0,
        },
        {
            "bank_code": "B2",
            "offered": 2,
            "answered": 1,
            "answered_in_time": 1,
            "median_hours_to_answer": 6.0,
        },
    ]
    assert rows(stage, "b2", "2026-03") == [rows(stage, "op", "2026-03")[1]]
    assert rows(stage, "op", "2026-04") == [
        {
            "bank_code": code,
            "offered": 0,
            "answered": 0,
            "answered_in_time": 0,
            "median_hours_to_answer": None,
        }
        for code in ("B1", "B2")
    ]


def test_the_month_is_business_time(stage: Stage) -> None:
    # 31 March 17:00 UTC is 1 April 01:00 in Shanghai: an April offer.
    clock.set_now(datetime(2026, 3, 31, 17, 0, tzinfo=UTC))
    stage.open_application(FIRM3)
    assert [r["offered"] for r in rows(stage, "op", "2026-03")] == [0, 0]
    assert [r["offered"] for r in rows(stage, "op", "2026-04")] == [1, 1]


def test_a_bad_month_is_422_and_others_may_not_look(stage: Stage) -> None:
    w = stage.world
    for bad in ("", "month=2026-13", "month=2026-3", "month=March", "month=0000-01"):
        r = w.get("op", f"/v1/loan-statistics?{bad}")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "month", bad
    for who in ("ch", "h1"):
        assert w.get(who, "/v1/loan-statistics?month=2026-03").status_code == 403
