"""Enrolment end to end (CONTRACT.md §2 Enrolment, §3, §5): the API, the Prefect
flow, the real credit-database and bank stand-ins over HTTP, and the webhooks."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.schemas.objects import StateType
from pydantic import ValidationError
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from flows.medical.enrollment import enroll_lane, enroll_pending
from flows.partners import partner_systems
from flows.webhooks import deliver_events
from hub import context
from hub.core import clock, events
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical import enrollment_run
from hub.medical.lines import open_line
from hub.settings import Settings
from models.core.tables import Event, Partner
from models.medical.tables import CreditLine, Enrollment
from simulators import bank, credit_bureau
from simulators.webhook_receiver import WebhookReceiver
from tests.books import books_agree
from tests.conftest import World, make_world
from tests.crashing import kill_points, run_flow_process
from tests.live import serve

BUREAU_KEY, BANK_KEY = "bureau-test-key", "bank-test-key"
CONSENT = {
    "purpose": "medical_credit",
    "granted_at": "2026-03-01T09:00:00+08:00",
    "text_version": "v1",
}


def id_number(first17: str) -> str:
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    return (
        first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    )


@dataclass
class Stage:
    world: World
    bureau: httpx.Client
    bank: httpx.Client

    def pin(self, number: str, name: str, score: int = 700, dishonest: bool = False) -> None:
        r = self.bureau.put(
            f"/persons/{number}",
            json={"name": name, "score": score, "dishonest_debtor": dishonest, "insured": True},
        )
        assert r.status_code == 200, r.text

    def enrol(self, number: str, name: str, who: str = "h1", **extra: Any) -> dict[str, Any]:
        body = {
            "id_number": number,
            "name": name,
            "phone": "13800001234",
            "bank_code": "B1",
            "consent": CONSENT,
            **extra,
        }
        r = self.world.post(who, "/v1/enrollments", body)
        assert r.status_code == 202, r.text
        return dict(r.json())

    def state(self, enrollment_id: str, who: str = "h1") -> dict[str, Any]:
        r = self.world.get(who, f"/v1/enrollments/{enrollment_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def stage(settings: Settings) -> Iterator[Stage]:
    with (
        serve(credit_bureau.create_app(BUREAU_KEY)) as bureau_url,
        serve(bank.create_app(BANK_KEY)) as bank_url,
    ):
        wired = settings.model_copy(
            update={
                "bureau_url": bureau_url,
                "bureau_api_key": BUREAU_KEY,
                "bank_systems": {"B1": {"url": bank_url, "api_key": BANK_KEY}},
                "enrollment_retry_seconds": 60,
            }
        )
        context.use(wired)
        world = make_world(wired)
        auth = {"Authorization": f"Bearer {BUREAU_KEY}"}
        with (
            world.client,
            httpx.Client(base_url=bureau_url, headers=auth) as b,
            httpx.Client(base_url=bank_url, headers={"Authorization": f"Bearer {BANK_KEY}"}) as k,
        ):
            yield Stage(world, b, k)


ADULT = id_number("35020319800101123")  # Xiamen Siming, born 1980
ADULT2 = id_number("11010119900307001")
ADULT3 = id_number("44030519951231222")
ADULT4 = id_number("31010119850615005")
ADULT5 = id_number("32010219750101003")
ADULT6 = id_number("33010219700101004")
ADULT7 = id_number("51010219880808006")
CHILD = id_number("35020320150101123")  # born 2015


def test_each_enrolment_is_decided_with_its_reason(
    stage: Stage, prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    """One flow run decides approvals and every decline reason, logging no personal data."""
    stage.pin(ADULT, "张三", score=700)
    stage.pin(ADULT2, "李四", score=620)
    stage.pin(ADULT3, "王五", dishonest=True)
    stage.pin(ADULT4, "赵六", score=499)
    stage.pin(ADULT5, "钱七")
    stage.pin(ADULT6, "孙八")
    stage.pin(ADULT7, "周九")
    stage.bureau.delete(f"/persons/{ADULT6}")
    cases = {
        "approved_500k": stage.enrol(ADULT, "张三"),
        "approved_300k": stage.enrol(ADULT2, "李四"),
        "dishonest_debtor": stage.enrol(ADULT3, "王五"),
        "score_too_low": stage.enrol(ADULT4, "赵六"),
        "identity_not_verified_name": stage.enrol(ADULT5, "钱七七"),
        "identity_not_verified_unknown": stage.enrol(ADULT6, "孙八"),
        "under_age": stage.enrol(CHILD, "小明"),
        "consent_withdrawn": stage.enrol(ADULT7, "周九"),
    }
    withdrawn = stage.world.post(
        "h1", f"/v1/consents/{cases['consent_withdrawn']['consent_id']}/withdraw", {}
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert all(c["status"] == "pending" for c in cases.values())

    caplog.set_level(logging.DEBUG)
    totals = enroll_pending()
    assert totals.get("approved") == 2 and sum(totals.values()) == len(cases)
    assert books_agree(stage.world.settings)

    got = {name: stage.state(c["enrollment_id"]) for name, c in cases.items()}
    assert got["approved_500k"]["status"] == "approved"
    assert got["approved_500k"]["credit_line"]["limit_fen"] == 500_000
    assert got["approved_500k"]["credit_line"]["bank_code"] == "B1"
    assert got["approved_300k"]["credit_line"]["limit_fen"] == 300_000
    for name in ("dishonest_debtor", "score_too_low", "under_age", "consent_withdrawn"):
        assert (got[name]["status"], got[name]["decline_reason"]) == ("declined", name)
        assert got[name]["credit_line"] is None
    for name in ("identity_not_verified_name", "identity_not_verified_unknown"):
        assert got[name]["decline_reason"] == "identity_not_verified"
    line = got["approved_500k"]["credit_line"]["credit_line_id"]
    assert stage.world.get("b1", f"/v1/credit-lines/{line}").json()["available_fen"] == 500_000
    logged = caplog.text
    for secret in (ADULT, ADULT2, CHILD, "张三", "李四", "13800001234"):
        assert secret not in logged


def test_the_bank_may_decline_or_grant_less(stage: Stage, prefect_harness: None) -> None:
    stage.pin(ADULT, "张三", score=700)
    stage.pin(ADULT2, "李四", score=700)
    stage.bank.put("/_sim/knobs", json={"decline_rate": 1.0})
    declined = stage.enrol(ADULT, "张三")
    enroll_pending()
    assert stage.state(declined["enrollment_id"])["decline_reason"] == "bank_declined"
    stage.bank.put("/_sim/knobs", json={"decline_rate": 0.0, "limit_factor": 0.5})
    halved = stage.enrol(ADULT2, "李四")
    enroll_pending()
    assert stage.state(halved["enrollment_id"])["credit_line"]["limit_fen"] == 250_000


def test_a_partner_that_is_down_postpones_and_the_retry_decides(
    stage: Stage, prefect_harness: None
) -> None:
    t0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    clock.set_now(t0)
    stage.pin(ADULT, "张三", score=700)
    stage.bank.put("/_sim/knobs", json={"error_rate": 1.0})
    started = stage.enrol(ADULT, "张三")
    assert enroll_pending() == {"postponed": 1}
    assert stage.state(started["enrollment_id"])["status"] == "pending"
    asked = [
        r for r in stage.bank.get("/_sim/requests").json()["items"] if r["path"] == "/credit-lines"
    ]
    assert len(asked) > 1 and {r["idempotency_key"] for r in asked} == {
        f"enrollment:{started['enrollment_id']}"
    }
    stage.bank.put("/_sim/knobs", json={"error_rate": 0.0})
    assert enroll_pending() == {}  # not due yet: it waits before asking again
    clock.set_now(t0 + timedelta(minutes=2))
    assert enroll_pending() == {"approved": 1}
    assert stage.state(started["enrollment_id"])["status"] == "approved"


def import_line(session: Session, stage: Stage, number: str, name: str) -> str:
    """A line opened for the resident as an import would (the bank b1, 0.01 yuan)."""
    return open_line(
        session,
        get_vault(stage.world.settings),
        id_number=number,
        name=name,
        phone=None,
        bank_id=stage.world.ids["b1"],
        limit_fen=1,
        source="import",
        now=clock.now(),
    ).id


def test_an_import_that_wins_the_race_declines_the_enrolment(
    stage: Stage, prefect_harness: None
) -> None:
    stage.pin(ADULT, "张三", score=700)
    started = stage.enrol(ADULT, "张三")
    settings = stage.world.settings
    with unit_of_work(get_engine(settings)) as session:  # a line arrives by import meanwhile
        import_line(session, stage, ADULT, "张三")
    enroll_pending()
    assert stage.state(started["enrollment_id"])["decline_reason"] == "already_enrolled"


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_an_import_between_the_batch_read_and_its_insert_declines_only_that_one(
    stage: Stage, prefect_harness: None
) -> None:
    """The batch reads the residents, then inserts the new ones in one statement; an
    import committing a line for one of them in between makes that insert fail on its
    unique index, and the batch falls back to one line at a time: that resident is
    declined (already enrolled), the others are approved."""
    people = {ADULT: "张三", ADULT2: "李四", ADULT3: "王五"}
    for number, name in people.items():
        stage.pin(number, name, score=700)
    ids = {number: stage.enrol(number, name)["enrollment_id"] for number, name in people.items()}
    settings = stage.world.settings
    engine, importer = get_engine(settings), create_engine(settings.database_url)
    imported: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def import_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if imported or not statement.startswith("INSERT INTO residents"):
            return
        with Session(importer) as other, other.begin():
            imported.append(import_line(other, stage, ADULT2, "李四"))

    try:
        enroll_pending()
    finally:
        event.remove(engine, "before_cursor_execute", import_meanwhile)
        importer.dispose()
    assert imported  # the import did get in between
    states = {number: stage.state(ids[number]) for number in people}
    assert states[ADULT2]["decline_reason"] == "already_enrolled"
    assert states[ADULT]["status"] == states[ADULT3]["status"] == "approved"
    with unit_of_work(engine) as session:
        lines = session.scalar(select(func.count()).select_from(CreditLine))
    assert lines == 3 + 1  # two enrolments, the import, and the world's own
    assert books_agree(settings)


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_a_deadlock_with_an_import_is_recorded_again_not_lost(
    stage: Stage, prefect_harness: None
) -> None:
    """An import holding two of the batch's residents, taken in the other order, and
    the batch's insert deadlock; PostgreSQL aborts one side. Whichever it is, the
    batch's outcomes are recorded (again, once the import has ended), each resident
    has one line, and the books agree."""
    people = {ADULT: "张三", ADULT2: "李四", ADULT3: "王五"}
    for number, name in people.items():
        stage.pin(number, name, score=700)
    ids = {number: stage.enrol(number, name)["enrollment_id"] for number, name in people.items()}
    settings = stage.world.settings
    engine, importer = get_engine(settings), create_engine(settings.database_url)
    holding, imported = threading.Event(), list[str]()

    def run_import() -> None:
        try:
            with Session(importer) as other, other.begin():
                for number in (ADULT3, ADULT):  # the batch inserts ADULT first
                    import_line(other, stage, number, people[number])
                    holding.set()
                    time.sleep(0.5)
            imported.append("committed")
        except OperationalError:  # the deadlock's victim: the import
            imported.append("aborted")

    threads: list[threading.Thread] = []

    @event.listens_for(engine, "before_cursor_execute")
    def import_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threads or not statement.startswith("INSERT INTO residents"):
            return
        threads.append(threading.Thread(target=run_import))
        threads[0].start()
        holding.wait(10)

    try:
        enroll_pending()  # does not fail
    finally:
        event.remove(engine, "before_cursor_execute", import_meanwhile)
        for thread in threads:
            thread.join(30)
        importer.dispose()
    states = {number: stage.state(ids[number]) for number in people}
    assert all(state["status"] != "pending" for state in states.values())
    if imported == ["committed"]:
        assert states[ADULT]["decline_reason"] == states[ADULT3]["decline_reason"]
        assert states[ADULT3]["decline_reason"] == "already_enrolled"
        assert states[ADULT2]["status"] == "approved"
    else:
        assert imported == ["aborted"]
        assert all(state["status"] == "approved" for state in states.values())
    with unit_of_work(engine) as session:
        lines = session.scalar(select(func.count()).select_from(CreditLine))
    assert lines == 3 + 1  # one a resident, and the world's own
    assert books_agree(settings)


def test_one_unreadable_enrolment_costs_only_itself(stage: Stage, prefect_harness: None) -> None:
    """A row the batch cannot read (its sealed name corrupted) fails the batch; its
    enrolments are then taken one at a time: that one is left pending, reported as
    an error, and the others are decided."""
    stage.pin(ADULT, "张三")
    stage.pin(ADULT2, "李四")
    good = stage.enrol(ADULT, "张三")["enrollment_id"]
    bad = stage.enrol(ADULT2, "李四")["enrollment_id"]
    with unit_of_work(get_engine(stage.world.settings)) as session:
        session.get(Enrollment, bad).name_enc = b"not sealed by the vault"  # type: ignore[union-attr]
    outcome = enroll_pending()
    assert stage.state(good)["status"] == "approved"
    assert stage.state(bad)["status"] == "pending"
    errors = sum(n for kind, n in outcome.items() if kind.startswith("error:"))
    assert outcome["approved"] == 1 and errors >= 1  # tried again by the next batch


def test_requests_are_refused_as_the_contract_says(stage: Stage) -> None:
    stage.pin(ADULT, "张三")
    first = stage.enrol(ADULT, "张三")
    again = stage.world.post(
        "h1",
        "/v1/enrollments",
        {
            "id_number": ADULT,
            "name": "张三",
            "phone": "13800001234",
            "bank_code": "B1",
            "consent": CONSENT,
        },
    )
    assert again.status_code == 409 and again.json()["code"] == "already_enrolled"
    assert first["enrollment_id"] in again.json()["detail"]
    body = {
        "id_number": ADULT2,
        "name": "李四",
        "phone": "13800001234",
        "bank_code": "NOPE",
        "consent": CONSENT,
    }
    assert stage.world.post("h1", "/v1/enrollments", body).json()["code"] == "unknown_bank"
    other = dict(body, bank_code="B1", consent=dict(CONSENT, purpose="business_loan"))
    r = stage.world.post("h1", "/v1/enrollments", other)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "consent.purpose"
    assert stage.world.post("b1", "/v1/enrollments", dict(body, bank_code="B1")).status_code == 403
    assert stage.world.get("h2", f"/v1/enrollments/{first['enrollment_id']}").status_code == 404
    assert (
        stage.world.post("h2", f"/v1/consents/{first['consent_id']}/withdraw", {}).status_code
        == 404
    )
    r = stage.world.post("h1", "/v1/enrollments", dict(body, id_number="110101199003070012"))
    assert r.json()["code"] == "invalid_id_number"


def test_the_outcome_reaches_the_partner_signed(stage: Stage, prefect_harness: None) -> None:
    receiver = WebhookReceiver()
    settings = stage.world.settings
    with serve(receiver) as hook_url:
        with unit_of_work(get_engine(settings)) as session:
            session.get(Partner, stage.world.ids["h1"]).webhook_url = hook_url  # type: ignore[union-attr]
        stage.pin(ADULT, "张三")
        started = stage.enrol(ADULT, "张三")
        enroll_pending()
        assert deliver_events() == {"delivered": 1}
        assert deliver_events() == {}  # delivered once
    body, signature = receiver.received[0].body, receiver.received[0].signature
    event = json.loads(body)
    assert event["type"] == "enrollment.approved"
    assert event["data"]["enrollment_id"] == started["enrollment_id"]
    with unit_of_work(get_engine(settings)) as session:
        partner = session.get(Partner, stage.world.ids["h1"])
        secret = get_vault(settings).decrypt(partner.webhook_secret_enc)  # type: ignore[union-attr]
    now = int(clock.now().timestamp())
    assert events.verify(secret, signature, body, now)
    assert not events.verify(secret, signature, body.replace(b"approved", b"declined"), now)
    assert not events.verify(secret, signature, body, now + 301)  # too old
    assert not events.verify("whsec_other", signature, body, now)


def test_a_crash_mid_batch_and_a_rerun_decide_each_enrolment_once(
    stage: Stage, prefect_harness: None
) -> None:
    """The first run decides a batch, then dies in the next after the bank said yes to
    some (none of that batch recorded); a rerun decides the rest at once, and the
    dead run's batch once its claim runs out, asking the bank again under the same keys."""
    in_fours = stage.world.settings.model_copy(update={"enrollment_batch_size": 4})
    context.use(in_fours)
    people = [
        id_number(f"3502031980{m:02d}{d:02d}{m}{d}1") for m in range(1, 4) for d in range(1, 5)
    ]
    for n, number in enumerate(people):
        stage.pin(number, f"测试{n}")
    ids = [stage.enrol(number, f"测试{n}")["enrollment_id"] for n, number in enumerate(people)]

    systems = partner_systems(in_fours)
    real_bank = systems.bank

    class Crash(BaseException):
        """The process dies: nothing after this point runs."""

    calls = {"n": 0}

    def dying_bank(code: str) -> Any:
        client = real_bank(code)

        class Dying:
            def request_credit_line(self, **kwargs: Any) -> Any:
                answer = client.request_credit_line(**kwargs)
                calls["n"] += 1
                if calls["n"] > 5:
                    raise Crash  # the bank said yes, but we die before recording it
                return answer

        return Dying()

    systems.bank = dying_bank  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            enroll_pending()
    finally:
        systems.bank = real_bank  # type: ignore[method-assign]
    first_run = [stage.state(i)["status"] for i in ids]
    assert first_run.count("pending") == len(ids) - 4  # it died in the second batch
    assert books_agree(stage.world.settings)
    enroll_pending()  # the dead run's claimed batch is not taken while its claim lasts
    assert [stage.state(i)["status"] for i in ids].count("pending") == 4
    claim_over = clock.now() + enrollment_run.claim_for(in_fours) + timedelta(seconds=1)
    with clock.frozen_at(claim_over):
        enroll_pending()
    assert books_agree(stage.world.settings)
    states = [stage.state(i) for i in ids]
    assert all(s["status"] == "approved" for s in states)
    with unit_of_work(get_engine(stage.world.settings)) as session:
        lines = session.scalar(select(func.count()).select_from(CreditLine))
        decided = session.scalar(select(func.count()).where(Enrollment.status != "pending"))
        queued = session.scalar(select(func.count()).select_from(Event))
    assert lines == len(people) + 1  # plus the world's own line
    assert decided == len(people)
    assert queued == 0  # h1 has no webhook URL, so nothing is queued for it
    asked = [
        r["idempotency_key"] for r in stage.bank.get("/_sim/requests?limit=500").json()["items"]
    ]
    assert set(asked) == {f"enrollment:{i}" for i in ids}


ENROLMENT_COMMITS = 7  # of a clean run of the crash test's four enrolments (one batch)
WEBHOOK_COMMITS = 6  # and of delivering their four outcomes (tests/crash_child.py)


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_kill_9_at_seeded_points_then_reruns_grant_and_tell_each_enrolment_once(
    stage: Stage, prefect_harness: None, tmp_path: Path
) -> None:
    """The enrolment flow's, then the webhook flow's, own process is killed (SIGKILL)
    at a seeded point, then rerun: each resident gets one line at the bank and the
    hospital hears of each outcome."""
    receiver = WebhookReceiver()
    # A killed run's claimed batch is taken again when its claim runs out: a second here.
    settings = stage.world.settings.model_copy(update={"enrollment_claim_seconds": 1})
    context.use(settings)
    clock_file = tmp_path / "clock"
    partners = [str(stage.bureau.base_url), str(stage.bank.base_url)]
    ids: list[str] = []
    with serve(receiver) as hook_url:
        with unit_of_work(get_engine(settings)) as session:
            session.get(Partner, stage.world.ids["h1"]).webhook_url = hook_url  # type: ignore[union-attr]
        trials = zip(
            kill_points(seed=11, trials=3, commits=ENROLMENT_COMMITS, calls=8),
            kill_points(seed=12, trials=3, commits=WEBHOOK_COMMITS, calls=4),
            strict=True,
        )
        for trial, (kill_enrolment, kill_delivery) in enumerate(trials):
            people = [
                id_number(f"3502031980{trial + 1:02d}{d:02d}{trial}{d}1") for d in range(1, 5)
            ]
            for n, number in enumerate(people):
                stage.pin(number, f"测试{n}")
                ids.append(stage.enrol(number, f"测试{n}")["enrollment_id"])
            run = run_flow_process(settings, "enrollment", kill_enrolment, partners, clock_file)
            assert run.killed, f"the run passed only {run.points} points"
            assert books_agree(settings)
            time.sleep(1.1)  # the claim runs out (the child's clock stood at its start)
            enroll_pending()
            assert books_agree(settings)
            run = run_flow_process(settings, "webhooks", kill_delivery, [hook_url], clock_file)
            assert run.killed, f"the run passed only {run.points} points"
            deliver_events()
    assert all(stage.state(i)["status"] == "approved" for i in ids)
    asked = {
        r["idempotency_key"] for r in stage.bank.get("/_sim/requests?limit=500").json()["items"]
    }
    assert asked == {f"enrollment:{i}" for i in ids}  # one decision a resident at the bank
    with unit_of_work(get_engine(settings)) as session:
        lines = session.scalar(select(func.count()).select_from(CreditLine))
        undelivered = session.scalar(select(func.count()).where(Event.delivered_at.is_(None)))
        events_sent = set(session.scalars(select(Event.event_id)))
    assert lines == len(ids) + 1  # plus the world's own line
    told = {delivery.event_id for delivery in receiver.received}
    assert undelivered == 0 and told == events_sent  # each outcome told (at least once)


# A launch day: batches claimed, helpers on the work pool ------------------------------------


def _enrol_many(stage: Stage, count: int) -> list[str]:
    people = [
        id_number(f"350203198{n // 28:01d}{n % 12 + 1:02d}{n % 28 + 1:02d}{n:03d}")
        for n in range(count)
    ]
    for n, number in enumerate(people):
        stage.pin(number, f"测试{n}")
    return [stage.enrol(number, f"测试{n}")["enrollment_id"] for n, number in enumerate(people)]


def test_runs_side_by_side_never_claim_the_same_enrolment(stage: Stage) -> None:
    """Six claims of four at once over twenty due enrolments: each taken once; none
    taken again while the claims last, all of them once they run out."""
    ids = _enrol_many(stage, 20)
    ctx = context.use(stage.world.settings.model_copy(update={"enrollment_claim_seconds": 60}))
    barrier = threading.Barrier(6)

    def claim() -> list[str]:
        barrier.wait()
        return enrollment_run.claim(ctx, 4)

    with ThreadPoolExecutor(6) as pool:
        batches = list(pool.map(lambda _: claim(), range(6)))
    taken = [i for batch in batches for i in batch]
    assert sorted(taken) == sorted(ids) and len(taken) == len(set(taken))
    assert all(len(b) <= 4 for b in batches)  # (a claim may skip rows another is locking)
    assert enrollment_run.claim(ctx, 100) == [] and enrollment_run.backlog(ctx) == 0
    with clock.frozen_at(clock.now() + timedelta(seconds=61)):
        assert sorted(enrollment_run.claim(ctx, 100)) == sorted(ids)


def test_a_backlog_of_batches_starts_helpers_and_cancels_those_not_needed(
    stage: Stage, prefect_harness: None
) -> None:
    """Five batches due: the run starts a helper run of `enrollment-lane` (the setting
    allows two runs), decides; nobody serves the helper here, so the run decided it
    all itself and cancels the helper that never started."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    ids = _enrol_many(stage, 20)
    context.use(stage.world.settings.model_copy(update={"enrollment_batch_size": 4}))
    enroll_lane.to_deployment(name="enrollment-lane").apply()
    state = enroll_pending(return_state=True)
    assert state.result() == {"approved": 20}
    assert all(stage.state(i)["status"] == "approved" for i in ids)
    with get_client(sync_client=True) as client:
        parent = FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
        helpers = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))
    assert [(h.deployment_id is not None, h.state_type) for h in helpers] == [
        (True, StateType.CANCELLED)
    ]
    assert enroll_pending() == {}  # and a small backlog starts none


@pytest.mark.parametrize(
    "bad", [{"enrollment_lanes": 0}, {"enrollment_claim_seconds": 0}, {"profiling_lanes": 0}]
)
def test_lanes_and_claims_refuse_what_would_break_them(bad: dict[str, int], tmp_path: Path) -> None:
    """No lane at all, or a claim over as it starts (runs would take each other's rows)."""
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, secret_key="k", **bad)  # type: ignore[arg-type]
