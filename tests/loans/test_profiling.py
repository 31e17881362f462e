"""Profiling and matching (CONTRACT.md §4 Profile, Matching; §3; §5): the firm's
record from the credit-database stand-in over real HTTP, under the firm's consent
and audited; declines before any bank sees anything; the profile and nothing
else of the record reaching banks; offers only to consented banks with a
matching product; the overdue ratio pausing offers; reruns changing nothing."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from flows.loans.profiling import lane_ranges, profile_applications, profile_lane
from flows.partners import partner_systems
from hub import context
from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.loans import profiling
from models.core.tables import BureauLookup
from models.loans.tables import ApplicationBank, Loan, LoanApplication, LoanStatus
from tests.conftest import latest_artifact
from tests.loans.application_stage import (
    FIRM,
    FIRM2,
    FIRM3,
    FIRM4,
    RESPOND_BY,
    Stage,
    consent,
    later,
    stage,
)

__all__ = ["stage"]


def audit(stage: Stage, firm: str) -> list[tuple[str, str, bool]]:
    subject = get_vault(stage.world.settings).lookup_hash(firm)
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        rows = session.scalars(
            select(BureauLookup)
            .where(BureauLookup.subject_hash == subject)
            .order_by(BureauLookup.id)
        )
        return [(row.purpose, row.outcome, row.reused) for row in rows]


def test_a_matching_application_is_offered_to_each_consented_bank(stage: Stage) -> None:
    stage.pin(FIRM)
    assert stage.product("b1", "P1").status_code == 201
    assert stage.product("b2", "P1").status_code == 201
    assert stage.product("b2", "P2", min_score=900).status_code == 201
    application_id = stage.apply(FIRM)
    assert stage.profile(application_id) == "offered"
    seen = stage.get("b1", application_id).json()
    assert seen["status"] == "open"
    assert seen["respond_by"] == RESPOND_BY.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    assert seen["profile"] == {
        "score": 1000,
        "grade": "A",
        "industry": "manufacturing",
        "indicators": {
            "years_in_business_band": "5+",
            "tax_credit_rating": "A",
            "employees_insured_band": "50+",
            "utilities_on_time_band": "12m+",
            "court_judgments_3y": 0,
            "penalties_3y": 0,
        },
    }
    offered = stage.events("loan_application.offered")
    assert sorted(code for code, _, _ in offered) == ["B1", "B2"]
    for code, _, data in offered:
        assert data == stage.get(code.lower(), application_id).json()
    assert audit(stage, FIRM) == [("business_loan", "found", False)]
    # A rerun neither asks again nor offers again.
    assert stage.profile(application_id) == "already_decided"
    assert len(stage.events("loan_application.offered")) == 2
    assert audit(stage, FIRM) == [("business_loan", "found", False)]


def test_only_the_banks_the_consent_names_see_it(stage: Stage) -> None:
    stage.pin(FIRM)
    for bank in ("b1", "b2"):
        assert stage.product(bank, "P1").status_code == 201
    application_id = stage.apply(FIRM, consent=consent(banks=["B2"]))
    assert stage.profile(application_id) == "offered"
    assert [code for code, _, _ in stage.events("loan_application.offered")] == ["B2"]
    assert stage.get("b1", application_id).status_code == 404


def test_declines_come_before_any_bank_sees_the_application(stage: Stage) -> None:
    assert stage.product("b1", "P1", industries=["retail"]).status_code == 201
    stage.pin(FIRM, dishonest_entity=True)
    stage.pin(FIRM2)
    stage.bureau.delete(f"/firms/{FIRM2}")
    stage.pin(FIRM3)  # manufacturing: no product for it
    stage.pin(FIRM4)
    cases = {
        "dishonest_entity": stage.apply(FIRM),
        "firm_unknown": stage.apply(FIRM2),
        "no_matching_product": stage.apply(FIRM3),
        "consent_expired": stage.apply(
            FIRM4, consent=consent(expires_at="2026-03-02T10:00:00+08:00")
        ),
    }
    for reason, application_id in cases.items():
        assert stage.profile(application_id) == f"declined:{reason}"
        seen = stage.get("ch", application_id).json()
        assert (seen["status"], seen["decline_reason"]) == ("declined", reason)
    assert stage.events("loan_application.offered") == []
    declined = stage.events("loan_application.declined")
    assert sorted(data["decline_reason"] for _, _, data in declined) == sorted(cases)
    assert {code for code, _, _ in declined} == {"CH"}
    assert all("profile" not in data for _, _, data in declined)
    # An expired consent stops the use before the database is asked.
    assert audit(stage, FIRM4) == [("business_loan", "refused_no_consent", False)]


def test_a_withdrawn_consent_declines_the_application(stage: Stage) -> None:
    stage.pin(FIRM)
    assert stage.product("b1", "P1").status_code == 201
    application_id = stage.apply(FIRM)
    consent_id = stage.get("ch", application_id).json()["consent_id"]
    r = stage.world.post("ch", f"/v1/consents/{consent_id}/withdraw", {})
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    seen = stage.get("ch", application_id).json()  # declined with the withdrawal itself
    assert (seen["status"], seen["decline_reason"]) == ("declined", "consent_expired")
    assert stage.profile(application_id) == "already_decided"
    assert stage.events("loan_application.offered") == []
    assert audit(stage, FIRM) == []  # the credit database was never asked


def test_a_record_is_reused_within_a_day_and_a_changed_product_applies_next(
    stage: Stage,
) -> None:
    stage.pin(FIRM)
    assert stage.product("b1", "P1", min_score=1001 - 1, max_amount_fen=1_000).status_code == 201
    first = stage.apply(FIRM)
    assert stage.profile(first) == "declined:no_matching_product"
    assert stage.product("b1", "P1").status_code == 200  # the bank widens its product
    later(timedelta(hours=2))
    second = stage.apply(FIRM)
    assert stage.profile(second) == "offered"
    assert audit(stage, FIRM) == [
        ("business_loan", "found", False),
        ("business_loan", "found", True),
    ]


def test_a_failing_database_postpones_and_a_rerun_profiles(stage: Stage) -> None:
    stage.pin(FIRM)
    assert stage.product("b1", "P1").status_code == 201
    application_id = stage.apply(FIRM)
    assert stage.bureau.put("/_sim/knobs", json={"error_rate": 1.0}).status_code == 200
    assert stage.profile(application_id) == "postponed"
    assert stage.get("ch", application_id).json()["status"] == "profiling"
    assert stage.bureau.put("/_sim/knobs", json={"error_rate": 0.0}).status_code == 200
    assert stage.profile(application_id) == "offered"


def test_offers_pause_while_the_overdue_ratio_is_high(stage: Stage) -> None:
    w = stage.world
    first = stage.open_application(FIRM)
    offer = stage.offer("b1", first)
    assert offer.status_code == 201, offer.text
    accepted = w.post("ch", f"/v1/offers/{offer.json()['offer_id']}/accept", {})
    assert accepted.status_code == 201, accepted.text
    engine = get_engine(w.settings)
    with unit_of_work(engine) as session:  # the loan is paid out and now 10 days late
        session.execute(
            update(Loan).values(status=LoanStatus.OVERDUE, outstanding_principal_fen=40_000_000)
        )
    stage.pin(FIRM2)
    paused = stage.apply(FIRM2)
    assert stage.profile(paused) == "paused"
    assert stage.profile(paused) == "paused"
    seen = stage.get("ch", paused).json()
    assert seen["status"] == "profiling" and seen["respond_by"] is None
    assert audit(stage, FIRM2) == [("business_loan", "found", False)]  # asked once
    with unit_of_work(engine) as session:  # repaid up to date
        session.execute(update(Loan).values(status=LoanStatus.ACTIVE))
    assert stage.profile(paused) == "offered"
    assert audit(stage, FIRM2) == [("business_loan", "found", False)]


SENTINELS = {
    "name": "哨兵SENTINEL有限公司",
    "registered_on": "1991-07-13",
    "employees_insured": 4_817_481,  # long enough never to turn up in an id or a port
    "utilities_on_time_months": 7_310_731,
}


def test_no_field_of_the_record_but_the_profile_reaches_a_bank(stage: Stage) -> None:
    """A whole application's life: every bank-facing response and event, and the
    flow's artifact, hold none of the record's own values, nor the firm's code."""
    w = stage.world
    stage.pin(FIRM, **SENTINELS)
    for bank in ("b1", "b2"):
        assert stage.product(bank, "P1").status_code == 201
    application_id = stage.apply(FIRM)
    assert stage.profile(application_id) == "offered"
    bank_texts = [
        stage.get("b1", application_id).text,
        stage.get("b2", application_id).text,
        w.get("b1", "/v1/loan-applications?status=open").text,
    ]
    offer = stage.offer("b1", application_id)
    assert offer.status_code == 201
    decline = stage.decline("b2", application_id)
    assert decline.status_code == 201
    bank_texts += [offer.text, decline.text, stage.get("b1", application_id).text]
    accepted = w.post("ch", f"/v1/offers/{offer.json()['offer_id']}/accept", {})
    assert accepted.status_code == 201
    bank_texts += [stage.get("b1", application_id).text, stage.get("b2", application_id).text]
    events = stage.events()
    bank_events = [json.dumps(data, ensure_ascii=False) for code, _, data in events if code != "CH"]
    assert {t for code, t, _ in events if code != "CH"} >= {
        "loan_application.offered",
        "loan_application.answered",
        "loan_application.accepted",
    }
    for text in bank_texts + bank_events:
        assert FIRM not in text
        for value in SENTINELS.values():
            assert str(value) not in text, (value, text)
        assert "registered_on" not in text and 'employees_insured"' not in text


def test_the_flow_profiles_every_waiting_application(
    stage: Stage, prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stage.pin(FIRM, **SENTINELS)
    stage.pin(FIRM2, dishonest_entity=True)
    assert stage.product("b1", "P1").status_code == 201
    offered = stage.apply(FIRM, amount_fen=12_345_678)
    declined = stage.apply(FIRM2)
    assert profile_applications(batch_size=1) == {"offered": 1, "declined:dishonest_entity": 1}
    assert stage.get("ch", offered).json()["status"] == "open"
    assert stage.get("ch", declined).json()["decline_reason"] == "dishonest_entity"
    artifact = latest_artifact("loan-profiling-summary")
    assert "| offered | 1 | 123,456.78 |" in artifact
    assert "| declined:dishonest_entity | 1 | 500,000.00 |" in artifact
    assert SENTINELS["name"] not in artifact and FIRM not in artifact
    for value in SENTINELS.values():  # no log line holds anything of the record
        assert str(value) not in caplog.text
    assert profile_applications() == {}  # nothing left: a rerun changes nothing
    with unit_of_work(get_engine(stage.world.settings), write=False) as session:
        assert len(session.scalars(select(ApplicationBank.bank_id)).all()) == 1
        assert session.scalar(select(LoanApplication.status).where(LoanApplication.id == offered))


def test_one_decision_failing_leaves_the_rest_of_its_chunk_decided(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk is decided in one transaction; when one decision fails, the chunk is
    decided again one savepoint each: the others are offered, the failing one waits."""
    for firm in (FIRM, FIRM2, FIRM3):
        stage.pin(firm, name="故障企业" if firm == FIRM2 else "好企业")
    assert stage.product("b1", "P1").status_code == 201
    ids = {firm: stage.apply(firm) for firm in (FIRM, FIRM2, FIRM3)}
    real = profiling.build_profile

    def failing(record: Any, *args: Any) -> Any:
        if record.name == "故障企业":
            raise RuntimeError("a fault in one decision")
        return real(record, *args)

    monkeypatch.setattr(profiling, "build_profile", failing)
    ctx = context.hub_context()
    partners = partner_systems(ctx.settings)
    looked = profiling.look_up(ctx, partners, profiling.waiting(ctx, list(ids.values())), clock.now)
    decided = profiling.decide(
        ctx, [a for a in looked if isinstance(a, profiling.Looked)], clock.now
    )
    assert isinstance(decided[ids[FIRM2]], RuntimeError)
    assert {decided[ids[f]].outcome for f in (FIRM, FIRM3)} == {"offered"}  # type: ignore[union-attr]
    assert [stage.get("ch", ids[f]).json()["status"] for f in (FIRM, FIRM2, FIRM3)] == [
        "open",
        "profiling",
        "open",
    ]
    assert len(stage.events("loan_application.offered")) == 2  # one to b1 for each
    monkeypatch.undo()
    assert stage.profile(ids[FIRM2]) == "offered"  # the next run decides it


def test_lane_ranges_give_every_waiting_application_to_one_run() -> None:
    for size in (4, 5, 9, 1000):
        ids = [f"app_{n:05d}" for n in range(size)]
        for count in range(1, 5):
            ranges = lane_ranges(ids, count)
            assert len(ranges) == count and ranges[0][0] is None and ranges[-1][1] is None
            for app in ids:  # (after, until]: each id in exactly one range
                owners = [(a, u) for a, u in ranges if (a or "") < app <= (u or "~")]
                assert len(owners) == 1, (size, count, app)


def test_many_waiting_start_a_helper_and_its_range_is_done_when_nobody_takes_it(
    stage: Stage, prefect_harness: None
) -> None:
    """Four batches waiting: the run starts a helper run of `loan-profiling-lane` for
    the second half; nobody serves it here, so the run cancels it and profiles that
    half itself — every application decided once, by this run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.objects import StateType

    for firm in (FIRM, FIRM2, FIRM3, FIRM4):
        stage.pin(firm)
    assert stage.product("b1", "P1").status_code == 201
    ids = [stage.apply(firm) for firm in (FIRM, FIRM2, FIRM3, FIRM4)]
    profile_lane.to_deployment(name="loan-profiling-lane").apply()
    state = profile_applications(batch_size=1, return_state=True)
    assert state.result() == {"offered": 4}
    assert all(stage.get("ch", i).json()["status"] == "open" for i in ids)
    with get_client(sync_client=True) as client:
        parent = FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
        helpers = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))
    assert [h.state_type for h in helpers] == [StateType.CANCELLED]
    assert profile_applications() == {}  # nothing left: a rerun changes nothing
