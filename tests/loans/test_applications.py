"""`POST /v1/loan-applications`, `GET /v1/loan-applications/{id}` and the banks'
list of applications awaiting their answer (CONTRACT.md §4 Applications, §5)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.settings import Settings
from models.core.tables import Consent
from models.loans.tables import Firm, LoanApplication
from tests.conftest import make_world
from tests.live import live_server
from tests.loans.application_stage import (
    FARMERS,
    FIRM,
    FIRM2,
    FIRM3,
    Stage,
    add_partner,
    application,
    consent,
    key,
    stage,
)

__all__ = ["stage"]


def test_an_application_is_recorded_under_the_firms_consent(stage: Stage) -> None:
    w = stage.world
    r = w.post("ch", "/v1/loan-applications", application(FIRM, consent=consent(banks=["B2"])))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body == {
        "application_id": body["application_id"],
        "consent_id": body["consent_id"],
        "status": "profiling",
    }
    with unit_of_work(get_engine(w.settings), write=False) as session:
        granted = session.get_one(Consent, body["consent_id"])
        assert granted.purpose == "business_loan"
        assert granted.scope == {"banks": ["B2"]}
        assert granted.subject_hash == get_vault(w.settings).lookup_hash(FIRM)
        assert granted.partner_id == w.ids["ch"]
        assert session.scalar(select(Firm.uscc)) == FIRM
    seen = stage.get("ch", body["application_id"])
    assert seen.status_code == 200, seen.text
    assert seen.json() == {
        "application_id": body["application_id"],
        "status": "profiling",
        "decline_reason": None,
        "amount_fen": 50_000_000,
        "term_months": 12,
        "purpose": "流动资金",
        "respond_by": None,
        "offers": [],
        "firm": {"uscc": f"{FIRM[:4]}{'*' * 10}{FIRM[-4:]}", "name": "某某制造"},
        "created_at": seen.json()["created_at"],
        "consent_id": body["consent_id"],
    }
    assert "profile" not in seen.json()
    assert FIRM not in seen.text


def test_letter_first_and_lowercase_codes_are_valid(stage: Stage) -> None:
    stage.apply(FARMERS)
    stage.apply(FIRM.lower())
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        assert sorted(session.scalars(select(Firm.uscc))) == sorted([FARMERS, FIRM])


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"uscc": FIRM[:-1] + ("1" if FIRM[-1] != "1" else "2")}, "uscc", "invalid_uscc"),
        ({"uscc": "91350203MA2Y00001"}, "uscc", "invalid_uscc"),
        ({"uscc": "91350203IA2Y000012"}, "uscc", "invalid_uscc"),
        ({"amount_fen": 0}, "amount_fen", "validation_failed"),
        ({"amount_fen": "100"}, "amount_fen", "validation_failed"),
        ({"term_months": 0}, "term_months", "validation_failed"),
        ({"consent": consent(granted_at="2026-03-03T09:00:00+08:00")}, "consent.granted_at", None),
        ({"consent": consent(expires_at="2026-03-02T08:59:59+08:00")}, "consent.expires_at", None),
        ({"consent": consent(expires_at="2026-09-02T09:00:00")}, "consent.expires_at", None),
        ({"consent": consent(banks=[])}, "consent.banks", None),
        ({"consent": consent(banks=["*", "B1"])}, "consent.banks", None),
        ({"consent": consent(banks=["B1", "B9"])}, "consent.banks.1", "unknown_bank"),
        ({"consent": consent(banks=["H1"])}, "consent.banks.0", "unknown_bank"),
        ({"extra": 1}, "extra", "validation_failed"),
    ],
)
def test_bad_applications_are_422_naming_the_field(
    stage: Stage, changes: dict[str, Any], field: str, code: str | None
) -> None:
    r = stage.world.post("ch", "/v1/loan-applications", application(FIRM, **changes))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    if code is not None:
        assert problem["code"] == code
    if "uscc" in changes:
        assert changes["uscc"] not in r.text  # never echoed back
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        assert session.scalar(select(LoanApplication.id)) is None
        assert session.scalar(select(Consent.id)) is None


def test_a_firm_with_a_pending_application_gets_409(stage: Stage) -> None:
    first = stage.apply(FIRM)
    again = stage.world.post("ch", "/v1/loan-applications", application(FIRM))
    assert again.status_code == 409 and again.json()["code"] == "application_pending"
    assert first not in again.text
    add_partner(stage.world, "ch2", "channel")
    other = stage.world.post("ch2", "/v1/loan-applications", application(FIRM))
    assert other.status_code == 409 and other.json()["code"] == "application_pending"
    stage.apply(FIRM2)  # another firm is not held up


def test_only_its_channel_and_the_banks_it_was_offered_to_see_it(stage: Stage) -> None:
    w = stage.world
    add_partner(w, "ch2", "channel")
    add_partner(w, "b3", "bank")
    stage.pin(FIRM)
    assert stage.product("b1", "P1").status_code == 201
    application_id = stage.apply(FIRM)
    assert stage.get("b1", application_id).status_code == 404  # not offered yet
    assert stage.profile(application_id) == "offered"
    assert stage.get("ch", application_id).status_code == 200
    seen = stage.get("b1", application_id)
    assert seen.status_code == 200 and seen.json()["profile"]["grade"] == "A"
    assert "consent_id" not in seen.json()
    for who in ("ch2", "b2", "b3"):
        r = stage.get(who, application_id)
        assert r.status_code == 404 and r.json()["code"] == "not_found", who
    assert stage.get("ch2", "lap_nonexistent").status_code == 404
    for who in ("h1", "op"):
        assert stage.get(who, application_id).status_code == 403
        assert w.get(who, "/v1/loan-applications?status=open").status_code == 403
    assert w.get("ch", "/v1/loan-applications?status=open").status_code == 403
    assert w.post("b1", "/v1/loan-applications", application(FIRM2)).status_code == 403


def test_a_bank_lists_what_awaits_its_answer(stage: Stage) -> None:
    w = stage.world
    first = stage.open_application(FIRM)
    second = stage.open_application(FIRM2)
    stage.pin(FIRM3)
    third = stage.apply(FIRM3, consent=consent(banks=["B2"]))
    assert stage.profile(third) == "offered"

    def listed(bank: str, query: str = "status=open") -> list[str]:
        r = w.get(bank, f"/v1/loan-applications?{query}")
        assert r.status_code == 200, r.text
        return [a["application_id"] for a in r.json()["data"]]

    assert listed("b1") == [second, first]  # newest first; not the one B1 may not see
    assert listed("b2") == [third, second, first]
    assert stage.offer("b1", second).status_code == 201
    assert stage.decline("b2", first).status_code == 201
    assert listed("b1") == [first]
    assert listed("b2") == [third, second]
    page = w.get("b2", "/v1/loan-applications?status=open&limit=1").json()
    assert [a["application_id"] for a in page["data"]] == [third] and page["has_more"]
    assert listed("b2", f"status=open&limit=1&cursor={page['next_cursor']}") == [second]
    item = w.get("b2", "/v1/loan-applications?status=open&limit=1").json()["data"][0]
    assert item == stage.get("b2", third).json()  # each item as the bank's GET shows it
    for bad in ("", "status=closed", "status=open&limit=0"):
        assert w.get("b1", f"/v1/loan-applications?{bad}").status_code == 422, bad


@pytest.mark.pg
def test_two_racing_submissions_for_one_firm_make_one_application(
    pg_settings: Settings,
) -> None:
    world = make_world(pg_settings)
    with world.client, live_server(pg_settings) as base:
        racers = 8
        barrier = threading.Barrier(racers)

        def send(i: int) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=60) as client:
                barrier.wait()
                return client.post(
                    "/v1/loan-applications",
                    json=application(FIRM, amount_fen=1_000_000 + i),
                    headers=world.headers("ch", key()),
                )

        with ThreadPoolExecutor(racers) as pool:
            responses = list(pool.map(send, range(racers)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [409] * (racers - 1), [r.text for r in responses]
    assert all(r.json()["code"] == "application_pending" for r in responses if r.status_code == 409)
    with unit_of_work(get_engine(pg_settings), write=False) as session:
        assert len(session.scalars(select(LoanApplication.id)).all()) == 1
        assert len(session.scalars(select(Firm.id)).all()) == 1
        assert len(session.scalars(select(Consent.id)).all()) == 1
