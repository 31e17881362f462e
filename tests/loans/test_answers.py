"""Banks' offers and declines, and the firm's acceptance (CONTRACT.md §4 Matching,
deadlines, answers; §3): each bank answers once before respond_by, within its
product; acceptance takes one offer, lapses the rest and makes one loan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from hub.core.db import get_engine, unit_of_work
from models.loans.tables import Loan, LoanApplication, LoanOffer
from tests.live import live_server
from tests.loans.application_stage import (
    FIRM,
    FIRM2,
    RESPOND_BY,
    Stage,
    add_partner,
    key,
    later,
    stage,
)
from tests.racing import race

__all__ = ["stage"]

EXPIRES = (RESPOND_BY + timedelta(days=7)).isoformat(timespec="milliseconds")
EXPIRES = EXPIRES.replace("+00:00", "Z")


def test_an_offer_is_recorded_and_announced(stage: Stage) -> None:
    application_id = stage.open_application()
    r = stage.offer("b1", application_id)
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"] == EXPIRES
    offer_id = r.json()["offer_id"]
    mine = stage.get("b1", application_id).json()["offers"]
    assert [(o["offer_id"], o["status"], o["bank_code"]) for o in mine] == [
        (offer_id, "open", "B1")
    ]
    assert mine[0] | {"amount_fen": 0} == r.json() | {"amount_fen": 0}
    assert stage.get("b2", application_id).json()["offers"] == []  # not another bank's
    assert [o["offer_id"] for o in stage.get("ch", application_id).json()["offers"]] == [offer_id]
    answered = stage.events("loan_application.answered")
    assert sorted(code for code, _, _ in answered) == ["B1", "CH"]
    for code, _, data in answered:
        assert data == stage.get(code.lower(), application_id).json()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_fen": 50_000_001}, "amount_fen"),  # more than the firm asked
        ({"amount_fen": 100_000_001}, "amount_fen"),  # above the product's maximum
        ({"annual_rate_bps": 349}, "annual_rate_bps"),
        ({"annual_rate_bps": 801}, "annual_rate_bps"),
        ({"term_months": 37}, "term_months"),
        ({"product_code": "NOPE"}, "product_code"),
        ({"amount_fen": 0}, "amount_fen"),
    ],
)
def test_an_offer_outside_the_product_or_the_request_is_422(
    stage: Stage, changes: dict[str, object], field: str
) -> None:
    application_id = stage.open_application()
    r = stage.offer("b1", application_id, **changes)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert stage.offer("b1", application_id).status_code == 201  # still free to answer


def test_each_bank_answers_once_and_only_while_open(stage: Stage) -> None:
    w = stage.world
    add_partner(w, "b3", "bank")
    application_id = stage.open_application()
    assert stage.offer("b3", application_id).status_code == 404  # not offered to B3
    assert stage.offer("b1", "lap_nonexistent").status_code == 404
    assert stage.offer("ch", application_id).status_code == 403
    assert stage.decline("h1", application_id).status_code == 403
    assert stage.offer("b1", application_id).status_code == 201
    for again in (stage.offer("b1", application_id), stage.decline("b1", application_id)):
        assert again.status_code == 409 and again.json()["code"] == "already_answered"
    later(timedelta(days=3, hours=14))  # Thursday 23:59:59 has passed
    late = stage.offer("b2", application_id)
    assert late.status_code == 409 and late.json()["code"] == "application_not_open"
    assert stage.decline("b2", application_id).json()["code"] == "application_not_open"


def test_when_every_bank_declines_the_application_is_declined(stage: Stage) -> None:
    application_id = stage.open_application()
    first = stage.decline("b1", application_id)
    assert first.status_code == 201, first.text
    assert first.json()["answer"] == "decline"
    assert stage.get("ch", application_id).json()["status"] == "open"
    assert stage.decline("b2", application_id).status_code == 201
    seen = stage.get("ch", application_id).json()
    assert (seen["status"], seen["decline_reason"]) == ("declined", "all_banks_declined")
    declined = stage.events("loan_application.declined")
    assert [(code, data["decline_reason"]) for code, _, data in declined] == [
        ("CH", "all_banks_declined")
    ]


def test_the_firm_accepts_one_offer_and_the_others_lapse(stage: Stage) -> None:
    w = stage.world
    add_partner(w, "ch2", "channel")
    application_id = stage.open_application()
    one = stage.offer("b1", application_id).json()["offer_id"]
    two = stage.offer("b2", application_id, amount_fen=30_000_000).json()["offer_id"]
    assert w.post("ch2", f"/v1/offers/{two}/accept", {}).status_code == 404
    assert w.post("b2", f"/v1/offers/{two}/accept", {}).status_code == 403
    assert w.post("ch", "/v1/offers/lof_nonexistent/accept", {}).status_code == 404
    r = w.post("ch", f"/v1/offers/{two}/accept", {})
    assert r.status_code == 201, r.text
    assert r.json() == {"loan_id": r.json()["loan_id"], "status": "approved"}
    seen = stage.get("ch", application_id).json()
    assert seen["status"] == "accepted"
    assert {o["offer_id"]: o["status"] for o in seen["offers"]} == {
        one: "lapsed",
        two: "accepted",
    }
    again = w.post("ch", f"/v1/offers/{one}/accept", {})
    assert again.status_code == 409 and again.json()["code"] == "application_not_open"
    with unit_of_work(get_engine(w.settings), write=False) as session:
        loan = session.get_one(Loan, r.json()["loan_id"])
        assert (loan.principal_fen, loan.bank_id, loan.grade) == (30_000_000, w.ids["b2"], "A")
    assert {code for code, _, _ in stage.events("loan_application.accepted")} == {"B2", "CH"}
    stage.apply(FIRM)  # the firm may apply again: nothing of it is pending


def test_an_expired_offer_cannot_be_accepted(stage: Stage) -> None:
    application_id = stage.open_application()
    offer_id = stage.offer("b1", application_id).json()["offer_id"]
    later(timedelta(days=3 + 7, hours=14))  # past respond_by + 7 days
    seen = stage.get("ch", application_id).json()
    assert seen["offers"][0]["status"] == "expired"  # whether or not the flow has run
    r = stage.world.post("ch", f"/v1/offers/{offer_id}/accept", {})
    assert r.status_code == 409 and r.json()["code"] == "offer_expired"


def _race(base: str, requests: list[Callable[[httpx.Client], httpx.Response]]) -> list[int]:
    return sorted(r.status_code for r in race(base, requests))


ON_POSTGRESQL = pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)


@ON_POSTGRESQL
def test_racing_answers_of_one_bank_make_one_answer(stage: Stage) -> None:
    w = stage.world
    application_id = stage.open_application()
    path = f"/v1/loan-applications/{application_id}"
    offer = {"product_code": "P1", "amount_fen": 1_000, "annual_rate_bps": 400, "term_months": 6}

    def offers(client: httpx.Client) -> httpx.Response:
        return client.post(f"{path}/offers", json=offer, headers=w.headers("b1", key()))

    def declines(client: httpx.Client) -> httpx.Response:
        return client.post(f"{path}/declines", json={"reason": "x"}, headers=w.headers("b1", key()))

    with live_server(w.settings) as base:
        assert _race(base, [offers, declines] * 4) == [201] + [409] * 7
    with unit_of_work(get_engine(w.settings), write=False) as session:
        assert len(session.scalars(select(LoanOffer.id)).all()) <= 1


@ON_POSTGRESQL
def test_racing_acceptances_of_one_application_make_one_loan(stage: Stage) -> None:
    w = stage.world
    application_id = stage.open_application(FIRM2)
    offer_ids = [stage.offer(bank, application_id).json()["offer_id"] for bank in ("b1", "b2")]

    def accept(offer_id: str) -> Callable[[httpx.Client], httpx.Response]:
        def send(client: httpx.Client) -> httpx.Response:
            return client.post(
                f"/v1/offers/{offer_id}/accept", json={}, headers=w.headers("ch", key())
            )

        return send

    with live_server(w.settings) as base:
        assert _race(base, [accept(o) for o in offer_ids] * 4) == [201] + [409] * 7
    with unit_of_work(get_engine(w.settings), write=False) as session:
        assert len(session.scalars(select(Loan.id)).all()) == 1
        assert session.scalar(select(LoanApplication.status)) == "accepted"
