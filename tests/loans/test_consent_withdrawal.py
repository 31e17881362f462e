"""A firm's loan consent withdrawn or expired (CONTRACT.md §4 Applications, §5 "a
withdrawn consent stops every further use at once"): a pending application is
declined `consent_expired` with the withdrawal itself, or by the deadlines flow
once the consent has expired; until then banks see no profile, cannot answer and
the firm cannot accept. An accepted application is a contract: left as it is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from flows.loans.deadlines import expire_deadlines
from hub import context
from hub.core.db import get_engine, unit_of_work
from hub.loans import deadlines
from models.core.tables import Event
from models.loans.tables import Loan
from tests.books import books_agree
from tests.conftest import World, latest_artifact
from tests.live import live_server
from tests.loans.application_stage import FIRM, FIRM2, Stage, consent, key, later, stage
from tests.racing import race

__all__ = ["stage"]

# The consent of an application opened on Monday 2 March that expires on Tuesday
# 3 March, 10:00 Shanghai (02:00 UTC), before respond_by.
EXPIRES_TUESDAY = consent(expires_at="2026-03-03T10:00:00+08:00")


def withdraw(stage: Stage, consent_id: str, who: str = "ch") -> httpx.Response:
    return stage.world.post(who, f"/v1/consents/{consent_id}/withdraw", {})


def consent_of(stage: Stage, application_id: str) -> str:
    return str(stage.get("ch", application_id).json()["consent_id"])


def accept(stage: Stage, offer_id: str) -> httpx.Response:
    return stage.world.post("ch", f"/v1/offers/{offer_id}/accept", {})


def event_count(stage: Stage) -> int:
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def loans(stage: Stage) -> list[tuple[str, str, int]]:
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        rows = session.execute(select(Loan.application_id, Loan.status, Loan.principal_fen))
        return [(a, s, p) for a, s, p in rows]


def declined_events(stage: Stage) -> list[tuple[str, str | None, str]]:
    """(recipient, decline_reason, application id) of every declined event."""
    return [
        (code, data["decline_reason"], data["application_id"])
        for code, _, data in stage.events("loan_application.declined")
    ]


def test_a_withdrawal_while_profiling_declines_at_once_and_once(stage: Stage) -> None:
    stage.pin(FIRM)
    assert stage.product("b1", "P1").status_code == 201
    application_id = stage.apply(FIRM)
    consent_id = consent_of(stage, application_id)
    assert withdraw(stage, consent_id, who="b1").status_code == 403  # who withdraws is unchanged
    first = withdraw(stage, consent_id)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "consent_id": consent_id,
        "purpose": "business_loan",
        "status": "withdrawn",
        "granted_at": first.json()["granted_at"],
        "withdrawn_at": first.json()["withdrawn_at"],
    }
    seen = stage.get("ch", application_id).json()
    assert (seen["status"], seen["decline_reason"]) == ("declined", "consent_expired")
    assert declined_events(stage) == [("CH", "consent_expired", application_id)]
    events = event_count(stage)
    later(timedelta(hours=1))
    again = withdraw(stage, consent_id)
    assert again.status_code == 200 and again.json() == first.json()  # changes nothing
    assert event_count(stage) == events  # and tells nobody again
    assert stage.profile(application_id) == "already_decided"
    assert stage.events("loan_application.offered") == []
    stage.apply(FIRM)  # nothing pending: the firm may apply again, under a new consent


def test_a_withdrawal_while_open_lapses_the_offers_and_ends_every_use(stage: Stage) -> None:
    w = stage.world
    application_id = stage.open_application(FIRM)
    other = stage.open_application(FIRM2)  # another firm's consent: untouched
    assert stage.get("b1", application_id).json()["profile"]["grade"] == "A"
    offer_id = stage.offer("b1", application_id).json()["offer_id"]
    events = event_count(stage)
    r = withdraw(stage, consent_of(stage, application_id))
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"

    seen = stage.get("ch", application_id).json()
    assert (seen["status"], seen["decline_reason"]) == ("declined", "consent_expired")
    assert [(o["offer_id"], o["status"]) for o in seen["offers"]] == [(offer_id, "lapsed")]
    # Told once, as every decline is told: the channel, with the application as it sees it.
    assert declined_events(stage) == [("CH", "consent_expired", application_id)]
    assert [data for _, _, data in stage.events("loan_application.declined")] == [seen]
    assert event_count(stage) == events + 1
    for bank in ("b1", "b2"):  # the banks it was offered to see it, and no profile
        mine = stage.get(bank, application_id).json()
        assert mine["status"] == "declined" and mine["profile"] is None, bank
    assert [o["status"] for o in stage.get("b1", application_id).json()["offers"]] == ["lapsed"]

    late = stage.offer("b2", application_id)
    assert late.status_code == 409 and late.json()["code"] == "application_not_open"
    refused = accept(stage, offer_id)
    assert refused.status_code == 409 and refused.json()["code"] == "application_not_open"
    assert loans(stage) == []
    listed = w.get("b2", "/v1/loan-applications?status=open").json()["data"]
    assert [a["application_id"] for a in listed] == [other]

    assert withdraw(stage, consent_of(stage, application_id)).status_code == 200
    assert event_count(stage) == events + 1  # a second withdrawal changes nothing
    assert stage.get("ch", other).json()["status"] == "open"
    assert stage.get("b1", other).json()["profile"]["grade"] == "A"
    assert books_agree(w.settings)


def test_an_expired_consent_stops_the_use_and_the_deadlines_decline_it(stage: Stage) -> None:
    w = stage.world
    application_id = stage.open_application(FIRM, consent=EXPIRES_TUESDAY)
    lasting = stage.open_application(FIRM2)
    offer_id = stage.offer("b1", application_id).json()["offer_id"]
    assert stage.get("b2", application_id).json()["profile"]["grade"] == "A"
    later(timedelta(days=1))  # Tuesday 10:00 Shanghai: the consent has just expired

    for bank in ("b1", "b2"):
        mine = stage.get(bank, application_id).json()
        assert (mine["status"], mine["profile"]) == ("open", None), bank
    assert stage.get("b2", lasting).json()["profile"]["grade"] == "A"
    for answer in (stage.offer("b2", application_id), stage.decline("b2", application_id)):
        assert answer.status_code == 409 and answer.json()["code"] == "application_not_open"
    listed = w.get("b2", "/v1/loan-applications?status=open").json()["data"]
    assert [a["application_id"] for a in listed] == [lasting]
    refused = accept(stage, offer_id)
    assert refused.status_code == 409 and refused.json()["code"] == "application_not_open"
    assert loans(stage) == []
    assert stage.events("loan_application.declined") == []  # not yet: the flow does it

    swept = deadlines.sweep(context.hub_context(), 100)
    assert (swept.declined, swept.declined_fen, swept.applications) == (1, 50_000_000, 0)
    again = deadlines.sweep(context.hub_context(), 100)
    assert (again.declined, again.applications) == (0, 0)  # a rerun changes nothing
    seen = stage.get("ch", application_id).json()
    assert (seen["status"], seen["decline_reason"]) == ("declined", "consent_expired")
    assert [o["status"] for o in seen["offers"]] == ["lapsed"]
    assert declined_events(stage) == [("CH", "consent_expired", application_id)]
    assert stage.get("ch", lasting).json()["status"] == "open"
    assert books_agree(w.settings)


def test_the_flow_declines_on_its_next_run_and_reports_it(
    stage: Stage, prefect_harness: None
) -> None:
    stage.open_application(FIRM, consent=EXPIRES_TUESDAY)
    stage.open_application(FIRM2)
    before = expire_deadlines(as_of=date(2026, 3, 2))
    assert (before["applications_declined"], before["applications_expired"]) == (0, 0)
    assert expire_deadlines(as_of=date(2026, 3, 3)) == {
        "offers_expired": 0,
        "applications_expired": 0,
        "asked_fen": 0,
        "applications_declined": 1,
        "declined_fen": 50_000_000,
    }
    artifact = latest_artifact("loan-deadlines-summary")
    assert "| applications declined, consent expired | 1 | 500,000.00 |" in artifact
    assert expire_deadlines(as_of=date(2026, 3, 3))["applications_declined"] == 0


def test_an_accepted_application_is_a_contract_the_withdrawal_leaves(stage: Stage) -> None:
    w = stage.world
    application_id = stage.open_application(FIRM)
    taken = stage.offer("b1", application_id).json()["offer_id"]
    other = stage.offer("b2", application_id).json()["offer_id"]
    loan_id = accept(stage, taken).json()["loan_id"]
    before = stage.get("ch", application_id).json()
    made = loans(stage)
    events = event_count(stage)
    r = withdraw(stage, consent_of(stage, application_id))
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert stage.get("ch", application_id).json() == before
    assert {o["offer_id"]: o["status"] for o in before["offers"]} == {
        taken: "accepted",
        other: "lapsed",
    }
    assert loans(stage) == made == [(application_id, "approved", 40_000_000)]
    assert event_count(stage) == events
    loan = w.get("b1", f"/v1/loans/{loan_id}")
    assert loan.status_code == 200 and loan.json()["status"] == "approved"
    # The profile is a use of the firm's data like any other: no longer shown.
    assert stage.get("b1", application_id).json()["profile"] is None
    assert books_agree(w.settings)


def _channel_posts(w: World, path: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(path, json={}, headers=w.headers("ch", key()))


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_a_withdrawal_racing_an_acceptance_makes_a_loan_or_a_decline(stage: Stage) -> None:
    w = stage.world
    for firm in (FIRM, FIRM2):
        application_id = stage.open_application(firm)
        offer_id = stage.offer("b1", application_id).json()["offer_id"]
        consent_id = consent_of(stage, application_id)
        with live_server(w.settings) as base:
            withdrawn, accepted = race(
                base,
                [
                    _channel_posts(w, f"/v1/consents/{consent_id}/withdraw"),
                    _channel_posts(w, f"/v1/offers/{offer_id}/accept"),
                ],
            )
        assert withdrawn.status_code == 200, withdrawn.text
        seen = stage.get("ch", application_id).json()
        made = [loan for loan in loans(stage) if loan[0] == application_id]
        if accepted.status_code == 201:  # the acceptance came first: a contract
            assert seen["status"] == "accepted" and len(made) == 1
        else:
            assert accepted.json()["code"] == "application_not_open", accepted.text
            assert (seen["status"], seen["decline_reason"]) == ("declined", "consent_expired")
            assert made == []
    assert books_agree(w.settings)
