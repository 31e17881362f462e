"""The simulated partner systems, served for real on loopback and spoken to over HTTP."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from stdnum.cn import ric, uscc

from simulators import bank, credit_bureau
from simulators.bank import BankKnobs
from simulators.knobs import Knobs
from tests.live import free_port, serve

KEY = "sim-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[1]
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def id_number(first17: str) -> str:
    """A resident identity number: 17 digits and their GB 11643 check character."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def uscc_code(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(c) * (3**i % 31) for i, c in enumerate(first17))
    return first17 + _USCC_ALPHABET[(31 - total % 31) % 31]


PERSON = id_number("35010219900101123")
FIRM = uscc_code("91350100MA2XN0J1K")


@contextmanager
def sim_client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=5) as http:
        yield http


@pytest.fixture
def bureau() -> Iterator[httpx.Client]:
    with sim_client(credit_bureau.create_app(KEY, Knobs(seed=7))) as http:
        yield http


@pytest.fixture
def the_bank() -> Iterator[httpx.Client]:
    with sim_client(bank.create_app(KEY, BankKnobs(seed=7))) as http:
        yield http


def knobs(http: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = http.put("/_sim/knobs", json=changes)
    assert response.status_code == 200, response.text
    return dict(response.json())


# The credit bureau ---------------------------------------------------------------------------


def test_check_characters_agree_with_python_stdnum() -> None:
    assert ric.is_valid(PERSON) and credit_bureau.valid_id_number(PERSON)
    assert uscc.is_valid(FIRM) and credit_bureau.valid_uscc(FIRM)
    for n in range(200):
        number = id_number(f"110105{1950 + n % 60}0{1 + n % 9}1{n % 10}{n:03d}")
        assert credit_bureau.valid_id_number(number) == ric.is_valid(number)
        code = uscc_code(f"91110000{n:09d}")
        assert credit_bureau.valid_uscc(code) and uscc.is_valid(code)
        assert not credit_bureau.valid_uscc(code[:17] + ("0" if code[17] != "0" else "1"))


def test_any_valid_person_has_a_stable_derived_record(bureau: httpx.Client) -> None:
    first = bureau.get(f"/persons/{PERSON}")
    assert first.status_code == 200
    record = first.json()
    assert set(record) == {"id_number", "name", "score", "dishonest_debtor", "insured"}
    assert record["id_number"] == PERSON and 2 <= len(record["name"]) <= 3
    assert 0 <= record["score"] <= 1000
    assert bureau.get(f"/persons/{PERSON}").json() == record
    with sim_client(credit_bureau.create_app(KEY, Knobs(seed=7))) as twin:
        assert twin.get(f"/persons/{PERSON}").json() == record


def test_derived_people_look_like_a_population() -> None:
    people = [
        credit_bureau.derived_person(1, id_number(f"3501021985{1 + n % 12:02d}15{n:03d}"))
        for n in range(1000)
    ]
    assert sum(450 <= p["score"] <= 900 for p in people) > 900
    assert 5 <= sum(p["dishonest_debtor"] for p in people) <= 60
    assert 850 <= sum(p["insured"] for p in people) <= 950
    assert len({p["name"] for p in people}) > 500
    other_seed = [credit_bureau.derived_person(2, p["id_number"]) for p in people[:50]]
    assert other_seed != people[:50]


def test_invalid_numbers_are_422(bureau: httpx.Client) -> None:
    wrong_check = PERSON[:17] + ("0" if PERSON[17] != "0" else "1")
    for path in (f"/persons/{wrong_check}", "/persons/123", f"/firms/{FIRM[:17]}I"):
        response = bureau.get(path)
        assert response.status_code == 422
        assert response.json()["error"] in ("invalid_id_number", "invalid_uscc")


def test_a_person_is_pinned_read_back_and_forgotten(bureau: httpx.Client) -> None:
    pinned = {"name": "王小明", "score": 512, "dishonest_debtor": True, "insured": False}
    put = bureau.put(f"/persons/{PERSON}", json=pinned)
    assert put.status_code == 200
    assert bureau.get(f"/persons/{PERSON}").json() == {"id_number": PERSON, **pinned}
    assert bureau.delete(f"/persons/{PERSON}").status_code == 204
    gone = bureau.get(f"/persons/{PERSON}")
    assert (gone.status_code, gone.json()) == (404, {"error": "not_found"})
    assert bureau.put(f"/persons/{PERSON}", json={**pinned, "score": 900}).status_code == 200
    assert bureau.get(f"/persons/{PERSON}").json()["score"] == 900
    assert bureau.put(f"/persons/{PERSON}", json={**pinned, "score": 1001}).status_code == 422
    mismatch = {**pinned, "id_number": id_number("11010519491231002")}
    assert bureau.put(f"/persons/{PERSON}", json=mismatch).status_code == 422


def test_a_firm_is_derived_pinned_and_forgotten(bureau: httpx.Client) -> None:
    derived = bureau.get(f"/firms/{FIRM}").json()
    assert derived["uscc"] == FIRM and derived["name"].endswith("有限公司")
    assert derived["tax_credit_rating"] in "ABMCD"
    dt.date.fromisoformat(derived["registered_on"])
    pinned = {
        **derived,
        "tax_credit_rating": "D",
        "court_judgments_3y": 4,
        "dishonest_entity": True,
    }
    assert bureau.put(f"/firms/{FIRM}", json=pinned).status_code == 200
    assert bureau.get(f"/firms/{FIRM}").json() == pinned
    assert bureau.delete(f"/firms/{FIRM}").status_code == 204
    assert bureau.get(f"/firms/{FIRM}").status_code == 404


def test_overdue_reports_are_recorded_once(bureau: httpx.Client) -> None:
    report = {
        "report_id": "od-1",
        "id_number": PERSON,
        "amount_fen": 12_345,
        "days_past_due": 30,
        "reported_on": "2026-03-01",
    }
    for key in ("overdue:od-1", "overdue:od-1", "another-key"):
        response = bureau.post("/reports/overdue", json=report, headers={"Idempotency-Key": key})
        assert response.json() == {"report_id": "od-1", "status": "recorded"}
    reused = bureau.post(
        "/reports/overdue",
        json={**report, "report_id": "od-2"},
        headers={"Idempotency-Key": "overdue:od-1"},
    )
    assert reused.status_code == 409
    assert bureau.get("/reports/overdue").json() == {"items": [report]}


# The door: key, knobs, faults, request log ---------------------------------------------------


def test_without_the_key_everything_is_401(bureau: httpx.Client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        for path in (f"/persons/{PERSON}", "/_sim/knobs"):
            response = bureau.get(path, headers=headers)
            assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})


def test_knobs_change_at_run_time(bureau: httpx.Client) -> None:
    assert bureau.get("/_sim/knobs").json()["error_rate"] == 0.0
    assert knobs(bureau, error_rate=1.0)["error_rate"] == 1.0
    failed = bureau.get(f"/persons/{PERSON}")
    assert failed.status_code in (500, 503) and failed.json() == {"error": "injected_fault"}
    knobs(bureau, error_rate=0.0)
    assert bureau.get(f"/persons/{PERSON}").status_code == 200
    assert bureau.put("/_sim/knobs", json={"error_rate": 2}).status_code == 422
    assert bureau.put("/_sim/knobs", json={"no_such_knob": 1}).status_code == 422


def test_latency_timeouts_and_garbage(bureau: httpx.Client) -> None:
    knobs(bureau, latency_ms=200)
    started = time.monotonic()
    assert bureau.get(f"/persons/{PERSON}").status_code == 200
    assert time.monotonic() - started >= 0.2
    knobs(bureau, latency_ms=0, timeout_rate=1.0, timeout_sleep_s=5)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        bureau.get(f"/persons/{PERSON}", timeout=httpx.Timeout(5, read=0.3))
    knobs(bureau, timeout_rate=1.0, timeout_sleep_s=0.1)
    assert bureau.get(f"/persons/{PERSON}").status_code == 200  # late, but answered
    knobs(bureau, timeout_rate=0.0, garbage_rate=1.0)
    garbage = bureau.get(f"/persons/{PERSON}")
    assert garbage.status_code == 200 and garbage.text.startswith("<html>")
    log = bureau.get("/_sim/requests", params={"limit": 4}).json()["items"]
    assert [e["fault"] for e in log] == ["none", "timeout", "timeout", "garbage"]
    assert log[0]["path"] == f"/persons/{PERSON[:4]}**********{PERSON[-4:]}"


def test_faults_follow_the_seed(bureau: httpx.Client) -> None:
    def statuses(http: httpx.Client, seed: int) -> list[int]:
        knobs(http, seed=seed, error_rate=0.5)
        return [http.get(f"/persons/{PERSON}").status_code for _ in range(24)]

    first = statuses(bureau, 11)
    assert set(first) > {200} and first.count(200) < 24
    assert statuses(bureau, 11) == first
    with sim_client(credit_bureau.create_app(KEY, Knobs(seed=11, error_rate=0.5))) as twin:
        assert [twin.get(f"/persons/{PERSON}").status_code for _ in range(24)] == first
    assert statuses(bureau, 12) != first


def test_knobs_are_set_at_start_from_the_command_line() -> None:
    port = free_port()
    argv = [sys.executable, "-m", "simulators.bank", "--port", str(port), "--api-key", KEY]
    argv += ["--seed", "5", "--decline-rate", "1", "--limit-factor", "0.5", "--latency-ms", "3"]
    process = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                seen = httpx.get(f"{url}/_sim/knobs", headers=AUTH, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert seen.json() | {"seed": 5, "decline_rate": 1.0, "limit_factor": 0.5} == seen.json()
        assert seen.json()["latency_ms"] == 3
    finally:
        process.terminate()
        process.wait(timeout=10)


# The bank ------------------------------------------------------------------------------------


def line_request(enrollment_id: str, limit_fen: int = 1_000_001) -> dict[str, Any]:
    return {
        "enrollment_id": enrollment_id,
        "id_number": PERSON,
        "name": "王小明",
        "phone": "13800001234",
        "requested_limit_fen": limit_fen,
        "score": 700,
    }


def ask_line(http: httpx.Client, enrollment_id: str, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key or f"enrollment:{enrollment_id}"}
    return http.post("/credit-lines", json=line_request(enrollment_id), headers=headers)


def test_a_credit_line_is_granted_within_the_limit_factor(the_bank: httpx.Client) -> None:
    knobs(the_bank, limit_factor=0.333)
    answer = ask_line(the_bank, "e-1").json()
    assert answer["decision"] == "approved" and answer["enrollment_id"] == "e-1"
    assert answer["limit_fen"] == 333_000  # floor(1_000_001 * 0.333)
    assert answer["bank_line_ref"].startswith("BL")
    knobs(the_bank, limit_factor=2.0)
    assert ask_line(the_bank, "e-2").json()["limit_fen"] == 1_000_001  # never more than asked


def test_a_credit_line_answer_is_stored(the_bank: httpx.Client) -> None:
    first = ask_line(the_bank, "e-1").json()
    knobs(the_bank, decline_rate=1.0)
    assert ask_line(the_bank, "e-1").json() == first  # same key
    assert ask_line(the_bank, "e-1", key="other-key").json() == first  # same enrollment
    declined = ask_line(the_bank, "e-2").json()
    assert declined == {"enrollment_id": "e-2", "decision": "declined", "reason": "bank_policy"}
    assert ask_line(the_bank, "e-3", key="enrollment:e-1").status_code == 409
    no_key = the_bank.post("/credit-lines", json=line_request("e-4"))
    assert (no_key.status_code, no_key.json()["error"]) == (400, "idempotency_key_required")


def test_credit_decisions_follow_the_seed_not_the_call_order() -> None:
    ids = [f"e-{n}" for n in range(30)]
    decisions = []
    for order in (ids, ids[::-1]):
        with sim_client(bank.create_app(KEY, BankKnobs(seed=3, decline_rate=0.5))) as http:
            decisions.append({e: ask_line(http, e).json() for e in order})
    assert decisions[0] == decisions[1]
    declined = [e for e, d in decisions[0].items() if d["decision"] == "declined"]
    assert 5 <= len(declined) <= 25


def payout(payout_id: str, amount_fen: int = 50_000, day: str = "2026-03-02") -> dict[str, Any]:
    return {
        "payout_id": payout_id,
        "hospital_code": "H001",
        "amount_fen": amount_fen,
        "value_date": day,
    }


def pay(http: httpx.Client, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key or f"payout:{body['payout_id']}"}
    return http.post("/payouts", json=body, headers=headers)


def test_a_payout_is_paid_once(the_bank: httpx.Client) -> None:
    first = pay(the_bank, payout("p-1"))
    assert first.status_code == 200
    paid = first.json()
    assert paid["status"] == "settled" and paid["bank_txn_id"].startswith("T")
    assert pay(the_bank, payout("p-1")).json() == paid
    assert pay(the_bank, payout("p-1"), key="a-new-key").json() == paid
    assert pay(the_bank, payout("p-1", amount_fen=1)).status_code == 409
    assert pay(the_bank, payout("p-2"), key="payout:p-1").status_code == 409
    assert the_bank.get("/payouts/p-1").json() == paid
    assert the_bank.get("/payouts/p-9").status_code == 404
    assert the_bank.post("/payouts", json=payout("p-3")).status_code == 400
    items = the_bank.get("/statements/2026-03-02").json()["items"]
    assert items == [{k: paid[k] for k in items[0]}]


def test_statements_list_the_value_date(the_bank: httpx.Client) -> None:
    for n in range(5):
        pay(the_bank, payout(f"p-{n}", day="2026-03-02" if n % 2 else "2026-03-03"))
    statement = the_bank.get("/statements/2026-03-02").json()
    assert statement["date"] == "2026-03-02"
    assert [i["payout_id"] for i in statement["items"]] == ["p-1", "p-3"]
    assert the_bank.get("/statements/2026-03-04").json()["items"] == []
    assert the_bank.get("/statements/20260302").status_code == 422


def test_statement_faults_are_fixed_per_payout(the_bank: httpx.Client) -> None:
    for n in range(40):
        pay(the_bank, payout(f"p-{n}", amount_fen=10_000 + n))
    knobs(
        the_bank,
        statement_drop_rate=0.2,
        statement_duplicate_rate=0.2,
        statement_amount_change_rate=0.2,
    )
    items = the_bank.get("/statements/2026-03-02").json()["items"]
    assert the_bank.get("/statements/2026-03-02").json()["items"] == items
    listed = [i["payout_id"] for i in items]
    dropped = {f"p-{n}" for n in range(40)} - set(listed)
    duplicated = {p for p in listed if listed.count(p) > 1}
    changed = {i["payout_id"] for i in items if i["amount_fen"] != 10_000 + int(i["payout_id"][2:])}
    assert dropped and duplicated and changed
    for item in items:
        assert abs(item["amount_fen"] - (10_000 + int(item["payout_id"][2:]))) <= 100
    knobs(the_bank, statement_drop_rate=1.0)
    assert the_bank.get("/statements/2026-03-02").json()["items"] == []
