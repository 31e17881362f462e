"""The outbound clients against the real simulator servers: answers, retries, keys and failures."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from integrations.bank import BankClient
from integrations.credit_bureau import CreditBureauClient
from integrations.errors import BadResponse, Rejected, Unavailable
from integrations.partner_client import (
    PartnerPool,
    RetryPolicy,
    Timeouts,
    mask_identity_numbers,
    partner_pool,
)
from integrations.webhooks import WebhookSender
from models.core.partner_errors import PartnerRejected, PartnerUnavailable
from models.core.partner_records import PersonRecord
from models.medical.partner_records import CreditLineApproved, CreditLineDeclined
from simulators import bank, credit_bureau
from simulators.bank import BankKnobs
from simulators.knobs import Knobs
from tests.live import free_port, serve
from tests.test_simulators import AUTH, FIRM, KEY, PERSON, knobs

# Small budgets keep the failure tests fast; the shape of the policy is what is tested.
TIMEOUT = Timeouts(connect=1.0, read=0.3)
RETRY = RetryPolicy(attempts=3, first_wait_s=0.02, max_wait_s=0.1, deadline_s=5.0)
DAY = dt.date(2026, 3, 2)


class Partner:
    """A running simulator: its URL, an operator's panel client, and a log reader."""

    def __init__(self, url: str, panel: httpx.Client) -> None:
        self.url = url
        self.panel = panel

    def knobs(self, **changes: Any) -> None:
        knobs(self.panel, **changes)

    def requests(self) -> list[dict[str, Any]]:
        return list(self.panel.get("/_sim/requests").json()["items"])


@pytest.fixture
def http() -> Iterator[PartnerPool]:
    with partner_pool() as pool:
        yield pool


def _partner(app: Any) -> Iterator[Partner]:
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=5) as panel:
        yield Partner(url, panel)


@pytest.fixture
def bureau_sim() -> Iterator[Partner]:
    yield from _partner(credit_bureau.create_app(KEY, Knobs(seed=7)))


@pytest.fixture
def bank_sim() -> Iterator[Partner]:
    yield from _partner(bank.create_app(KEY, BankKnobs(seed=7)))


@pytest.fixture
def bureau(http: PartnerPool, bureau_sim: Partner) -> CreditBureauClient:
    return CreditBureauClient(http, bureau_sim.url, KEY, timeout=TIMEOUT, retry=RETRY)


@pytest.fixture
def the_bank(http: PartnerPool, bank_sim: Partner) -> BankClient:
    return BankClient(http, bank_sim.url, KEY, timeout=TIMEOUT, retry=RETRY)


def pay(client: BankClient, payout_id: str, amount_fen: int = 50_000) -> Any:
    return client.pay(
        payout_id=payout_id,
        hospital_code="H001",
        amount_fen=amount_fen,
        value_date=DAY,
        idempotency_key=f"payout:{payout_id}",
    )


def ask_line(client: BankClient, enrollment_id: str) -> Any:
    return client.request_credit_line(
        enrollment_id=enrollment_id,
        id_number=PERSON,
        name="王小明",
        phone="13800001234",
        requested_limit_fen=500_000,
        score=720,
        idempotency_key=f"enrollment:{enrollment_id}",
    )


# Normal answers ------------------------------------------------------------------------------


def test_person_and_firm_records(bureau: CreditBureauClient, bureau_sim: Partner) -> None:
    person = bureau.person(PERSON)
    assert isinstance(person, PersonRecord) and person.id_number == PERSON
    pinned = {"name": "李四", "score": 480, "dishonest_debtor": False, "insured": True}
    assert bureau_sim.panel.put(f"/persons/{PERSON}", json=pinned).status_code == 200
    assert bureau.person(PERSON) == PersonRecord(id_number=PERSON, **pinned)
    firm = bureau.firm(FIRM)
    assert firm is not None and firm.uscc == FIRM and isinstance(firm.registered_on, dt.date)


def test_an_unknown_person_is_none(bureau: CreditBureauClient, bureau_sim: Partner) -> None:
    bureau_sim.panel.delete(f"/persons/{PERSON}")
    assert bureau.person(PERSON) is None
    bureau_sim.panel.delete(f"/firms/{FIRM}")
    assert bureau.firm(FIRM) is None


def test_an_overdue_report_is_acknowledged(bureau: CreditBureauClient) -> None:
    for _ in range(2):
        receipt = bureau.report_overdue(
            report_id="od-1",
            id_number=PERSON,
            amount_fen=12_345,
            days_past_due=30,
            reported_on=DAY,
            idempotency_key="overdue:od-1",
        )
        assert (receipt.report_id, receipt.status) == ("od-1", "recorded")


def test_credit_line_decisions_are_typed(the_bank: BankClient, bank_sim: Partner) -> None:
    bank_sim.knobs(limit_factor=0.5)
    approved = ask_line(the_bank, "e-1")
    assert isinstance(approved, CreditLineApproved) and approved.limit_fen == 250_000
    bank_sim.knobs(decline_rate=1.0)
    declined = ask_line(the_bank, "e-2")
    assert isinstance(declined, CreditLineDeclined) and declined.reason == "bank_policy"
    assert ask_line(the_bank, "e-1") == approved


def test_payouts_and_statements(the_bank: BankClient) -> None:
    paid = pay(the_bank, "p-1")
    assert paid.status == "settled" and paid.amount_fen == 50_000
    assert pay(the_bank, "p-1") == paid
    assert the_bank.payout("p-1") == paid
    assert the_bank.payout("p-404") is None
    pay(the_bank, "p-2", amount_fen=7)
    statement = the_bank.statement(DAY)
    assert statement.date == DAY
    assert [(i.payout_id, i.amount_fen) for i in statement.items] == [("p-1", 50_000), ("p-2", 7)]
    assert the_bank.statement(DAY + dt.timedelta(days=1)).items == []


# Retries and the idempotency key -------------------------------------------------------------


def test_server_errors_are_retried_with_the_same_key(
    the_bank: BankClient, bank_sim: Partner
) -> None:
    bank_sim.knobs(seed=1, error_rate=0.5)  # under seed 1: fail, fail, succeed
    paid = pay(the_bank, "p-1")
    attempts = bank_sim.requests()
    assert [a["fault"] for a in attempts] == ["error", "error", "none"]
    assert {a["idempotency_key"] for a in attempts} == {"payout:p-1"}
    bank_sim.knobs(error_rate=0.0)
    assert the_bank.payout("p-1") == paid
    assert len(the_bank.statement(DAY).items) == 1  # paid once


def test_errors_without_end_make_the_partner_unavailable(
    the_bank: BankClient, bank_sim: Partner
) -> None:
    bank_sim.knobs(error_rate=1.0)
    with pytest.raises(Unavailable) as caught:
        ask_line(the_bank, "e-1")
    assert caught.value.attempts == 3 and caught.value.cause in ("HTTP 500", "HTTP 503")
    assert isinstance(caught.value, PartnerUnavailable)
    assert len(bank_sim.requests()) == 3


def test_timeouts_exhaust_the_retry_budget(bureau: CreditBureauClient, bureau_sim: Partner) -> None:
    bureau_sim.knobs(timeout_rate=1.0, timeout_sleep_s=3.0)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        bureau.report_overdue(
            report_id="od-1",
            id_number=PERSON,
            amount_fen=100,
            days_past_due=31,
            reported_on=DAY,
            idempotency_key="overdue:od-1",
        )
    assert time.monotonic() - started < 2.0
    assert (caught.value.attempts, caught.value.cause) == (3, "ReadTimeout")
    attempts = bureau_sim.requests()
    assert [a["fault"] for a in attempts] == ["timeout"] * 3
    assert {a["idempotency_key"] for a in attempts} == {"overdue:od-1"}


def test_the_deadline_bounds_all_attempts(http: PartnerPool, bureau_sim: Partner) -> None:
    bureau_sim.knobs(timeout_rate=1.0, timeout_sleep_s=3.0)
    patient = RetryPolicy(attempts=50, first_wait_s=0.02, max_wait_s=0.05, deadline_s=0.8)
    client = CreditBureauClient(http, bureau_sim.url, KEY, timeout=TIMEOUT, retry=patient)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        client.person(PERSON)
    assert time.monotonic() - started < 1.5
    assert 2 <= caught.value.attempts < 50


def test_latency_below_the_timeout_is_fine(bureau: CreditBureauClient, bureau_sim: Partner) -> None:
    bureau_sim.knobs(latency_ms=150)
    assert bureau.person(PERSON) is not None
    assert len(bureau_sim.requests()) == 1


def test_nobody_listening_is_unavailable(http: PartnerPool) -> None:
    client = CreditBureauClient(http, f"http://127.0.0.1:{free_port()}", KEY, retry=RETRY)
    with pytest.raises(Unavailable) as caught:
        client.person(PERSON)
    assert caught.value.cause == "ConnectError"


# Refusals and unreadable answers -------------------------------------------------------------


def test_a_wrong_key_is_rejected_at_once(http: PartnerPool, bureau_sim: Partner) -> None:
    client = CreditBureauClient(http, bureau_sim.url, "wrong-key", retry=RETRY)
    with pytest.raises(Rejected) as caught:
        client.person(PERSON)
    assert (caught.value.status, caught.value.body) == (401, {"error": "unauthorized"})
    assert isinstance(caught.value, PartnerRejected)
    assert len(bureau_sim.requests()) == 1


def test_refusals_carry_status_and_body(the_bank: BankClient, bureau: CreditBureauClient) -> None:
    pay(the_bank, "p-1")
    with pytest.raises(Rejected) as caught:
        pay(the_bank, "p-1", amount_fen=1)
    assert (caught.value.status, caught.value.body) == (409, {"error": "payout_conflict"})
    with pytest.raises(Rejected) as invalid:
        bureau.person(PERSON[:17] + ("0" if PERSON[17] != "0" else "1"))
    assert invalid.value.status == 422


def test_unreadable_answers_are_bad_responses(
    http: PartnerPool, bureau: CreditBureauClient, bureau_sim: Partner
) -> None:
    bureau_sim.knobs(garbage_rate=1.0)
    with pytest.raises(BadResponse) as not_json:
        bureau.person(PERSON)
    assert (not_json.value.status, not_json.value.reason) == (200, "not JSON")
    assert len(bureau_sim.requests()) == 1  # a 200 is an answer: not retried
    # JSON of another shape: the knobs panel answers where a person was expected.
    aimed_wrong = CreditBureauClient(http, f"{bureau_sim.url}/_sim/knobs?", KEY, retry=RETRY)
    with pytest.raises(BadResponse) as wrong_shape:
        aimed_wrong.person(PERSON)
    assert "id_number" in wrong_shape.value.reason


# Personal data stays out of the logs ---------------------------------------------------------


def test_identity_numbers_never_reach_a_log_line(
    bureau: CreditBureauClient, bureau_sim: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bureau.person(PERSON)
    bureau_sim.knobs(seed=1, error_rate=0.5)
    bureau.person(PERSON)
    bureau_sim.knobs(error_rate=1.0)
    with pytest.raises(Unavailable) as caught:
        bureau.person(PERSON)
    assert PERSON not in caplog.text and PERSON not in str(caught.value)
    assert mask_identity_numbers(f"/persons/{PERSON}") in caplog.text
    assert "retrying" in caplog.text


def test_firm_codes_never_reach_a_log_line(
    bureau: CreditBureauClient, bureau_sim: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # the request line, whatever ran before
    for code in ("91350200MA2Y0K1X50", "N3350200MA2Y0K1X5C"):  # letter-first codes too
        bureau.firm(code)
        assert code not in caplog.text
        assert f"/firms/{code[:4]}**********{code[-4:]}" in caplog.text


# What the connections honour, as httpx did --------------------------------------------------


def test_the_environments_proxy_carries_the_calls(
    bureau: CreditBureauClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY names the way out: a partner the hub cannot reach itself (an .invalid
    host) is asked through the proxy, which answers for it; NO_PROXY hosts are called
    directly."""
    record = bureau.person(PERSON)
    assert record is not None
    asked: list[str] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        asked.append(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": record.model_dump_json().encode()})

    with serve(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "localhost")
        with partner_pool() as through_proxy:
            far = CreditBureauClient(through_proxy, "http://bureau.invalid", KEY, retry=RETRY)
            assert far.person(PERSON) == record
        monkeypatch.setenv("NO_PROXY", "bureau.invalid")
        with partner_pool() as direct:
            far = CreditBureauClient(direct, "http://bureau.invalid", KEY, retry=RETRY)
            with pytest.raises(Unavailable):
                far.person(PERSON)
    assert len(asked) == 1 and asked[0].endswith(f"/persons/{PERSON}")


def test_webhooks_send_the_urls_credentials_and_refuse_other_schemes() -> None:
    heard: list[dict[bytes, bytes]] = []

    async def receiver(scope: Any, receive: Any, send: Any) -> None:
        heard.append(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(receiver) as url, partner_pool() as http:
        sender = WebhookSender(http, timeout_seconds=5)
        with_credentials = url.replace("http://", "http://hook:s3cret@")
        assert sender.send(f"{with_credentials}/events", b"{}", "t=1,v1=x") is None
        assert sender.send("ftp://example.com/events", b"{}", "t=1,v1=x") == "not an http(s) URL"
    assert heard[0][b"authorization"] == b"Basic " + base64.b64encode(b"hook:s3cret")
    assert len(heard) == 1
