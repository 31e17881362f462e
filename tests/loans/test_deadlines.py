"""Deadlines (CONTRACT.md §4): an open application with no offer by respond_by
expires, offers lapse 7 days after it, and an application whose offers have all
expired expires too; the daily flow does it, once however often it runs."""

from __future__ import annotations

from datetime import date, timedelta

from flows.loans.deadlines import expire_deadlines
from hub import context
from hub.loans import deadlines
from tests.conftest import latest_artifact
from tests.loans.application_stage import FIRM, FIRM2, FIRM3, Stage, later, stage

__all__ = ["stage"]


def sweep() -> tuple[int, int, int]:
    swept = deadlines.sweep(context.hub_context(), 100)
    return swept.offers, swept.applications, swept.applications_fen


def test_unanswered_applications_expire_after_respond_by(stage: Stage) -> None:
    silent = stage.open_application(FIRM)
    declined_once = stage.open_application(FIRM2)
    offered = stage.open_application(FIRM3)
    assert stage.decline("b1", declined_once).status_code == 201
    assert stage.offer("b2", offered).status_code == 201
    later(timedelta(days=3, hours=13, minutes=59))  # Thursday 23:59 Shanghai: still in time
    assert sweep() == (0, 0, 0)
    later(timedelta(minutes=1))
    assert sweep() == (0, 2, 100_000_000)
    assert sweep() == (0, 0, 0)  # a rerun changes nothing
    for application_id, status in [
        (silent, "expired"),
        (declined_once, "expired"),
        (offered, "open"),  # its offer can still be taken
    ]:
        assert stage.get("ch", application_id).json()["status"] == status
    expired = stage.events("loan_application.expired")
    assert sorted(data["application_id"] for _, _, data in expired) == sorted(
        [silent, declined_once]
    )
    assert {code for code, _, _ in expired} == {"CH"}


def test_offers_expire_and_then_their_application(stage: Stage) -> None:
    application_id = stage.open_application(FIRM)
    assert stage.offer("b1", application_id).status_code == 201
    assert stage.offer("b2", application_id).status_code == 201
    later(timedelta(days=3 + 7, hours=13, minutes=59))  # just before the offers lapse
    assert sweep() == (0, 0, 0)
    later(timedelta(minutes=1))
    assert sweep() == (2, 1, 50_000_000)
    assert sweep() == (0, 0, 0)
    seen = stage.get("ch", application_id).json()
    assert seen["status"] == "expired"
    assert [o["status"] for o in seen["offers"]] == ["expired", "expired"]
    stage.apply(FIRM)  # nothing pending: the firm may apply again


def test_the_flow_expires_as_of_a_day_and_reports_it(stage: Stage, prefect_harness: None) -> None:
    stage.open_application(FIRM)
    stage.open_application(FIRM2)
    none_declined = {"applications_declined": 0, "declined_fen": 0}
    assert expire_deadlines(as_of=date(2026, 3, 5)) == {
        "offers_expired": 0,
        "applications_expired": 0,
        "asked_fen": 0,
        **none_declined,
    }
    assert expire_deadlines(as_of=date(2026, 3, 6)) == {
        "offers_expired": 0,
        "applications_expired": 2,
        "asked_fen": 100_000_000,
        **none_declined,
    }
    artifact = latest_artifact("loan-deadlines-summary")
    assert "| applications expired | 2 | 1,000,000.00 |" in artifact
    assert FIRM not in artifact
