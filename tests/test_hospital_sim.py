"""The hospitals' systems stand-in (simulators/hospital.py): its transaction lists, its
knobs, and its traffic driver run against the real hub API, enrolment flow and stand-ins."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.medical.enrollment import enroll_pending
from hub import context
from hub.settings import Settings
from simulators import bank, credit_bureau, hospital
from simulators.hospital_books import HospitalKnobs, Partners
from simulators.traffic import bills as costs
from simulators.traffic import people
from simulators.traffic.world import TrafficConfig
from tests.books import books_agree
from tests.conftest import make_world
from tests.live import live_server, serve

KEY = "his-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def his() -> Iterator[httpx.Client]:
    app = hospital.create_app(KEY, HospitalKnobs(seed=3), hospitals=["XMH1", "XMH2"])
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=5) as http:
        yield http


def item(ref: str, amount: int = 12_345, at: str = "2026-03-01T17:30:00Z", **extra: Any) -> Any:
    return {
        "ref": ref,
        "kind": "capture",
        "amount_fen": amount,
        "visit_id": f"vis_{ref}",
        "hub_id": f"vis_{ref}",
        "at": at,
        **extra,
    }


def listed(http: httpx.Client, day: str = "2026-03-02", code: str = "XMH1") -> list[Any]:
    response = http.get(f"/hospitals/{code}/transactions", params={"date": day})
    assert response.status_code == 200, response.text
    assert response.json()["hospital_code"] == code and response.json()["date"] == day
    return list(response.json()["items"])


def knobs(http: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = http.put("/_sim/knobs", json=changes)
    assert response.status_code == 200, response.text
    return dict(response.json())


# The transaction list -------------------------------------------------------------------------


def test_items_are_listed_on_their_business_date_in_shanghai(his: httpx.Client) -> None:
    added = his.post("/hospitals/XMH1/transactions", json=item("B1"))
    assert added.status_code == 201, added.text
    assert added.json()["business_date"] == "2026-03-02"  # 17:30 UTC is 01:30 next day in Xiamen
    assert added.json()["at"] == "2026-03-01T17:30:00.000Z"
    refund = item("R1", 500, "2026-03-02T09:00:00+08:00", kind="refund", hub_id="ref_1")
    assert his.post("/hospitals/XMH1/transactions", json=refund).status_code == 201
    assert [(i["ref"], i["kind"]) for i in listed(his)] == [("B1", "capture"), ("R1", "refund")]
    assert listed(his, "2026-03-01") == [] and listed(his, code="XMH2") == []
    assert his.delete("/hospitals/XMH1/transactions").status_code == 204
    assert listed(his) == []


def test_bad_requests_to_the_list(his: httpx.Client) -> None:
    base = "/hospitals/XMH1/transactions"
    assert his.get("/hospitals/NOPE/transactions", params={"date": "2026-03-02"}).status_code == 404
    assert his.post("/hospitals/NOPE/transactions", json=item("B1")).status_code == 404
    for day in ("", "20260302", "2026-02-30"):
        assert his.get(base, params={"date": day}).status_code == 422
    for bad in (item("B1", 0), item("B1", 1.5), item("B1", at="2026-03-01T10:00:00"), {"x": 1}):
        assert his.post(base, json=bad).status_code == 422


def test_every_route_needs_the_key(his: httpx.Client) -> None:
    for method, path in [
        ("GET", "/hospitals/XMH1/transactions?date=2026-03-02"),
        ("DELETE", "/hospitals/XMH1/transactions"),
        ("GET", "/_sim/knobs"),
        ("GET", "/_sim/stats"),
    ]:
        answer = httpx.request(method, f"{his.base_url}{path}", headers={})
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        wrong = httpx.request(
            method, f"{his.base_url}{path}", headers={"Authorization": "Bearer x"}
        )
        assert wrong.status_code == 401


def test_the_discrepancy_knobs_miss_repeat_or_misstate_items(his: httpx.Client) -> None:
    for n in range(40):
        his.post("/hospitals/XMH1/transactions", json=item(f"B{n}", 10_000 + n))
    truth = {i["ref"]: i["amount_fen"] for i in listed(his)}
    assert len(truth) == 40
    assert knobs(his, drop_rate=1.0)["drop_rate"] == 1.0 and listed(his) == []
    knobs(his, drop_rate=0.0, duplicate_rate=1.0)
    assert len(listed(his)) == 80
    knobs(his, duplicate_rate=0.0, amount_change_rate=1.0)
    assert all(1 <= abs(i["amount_fen"] - truth[i["ref"]]) <= 100 for i in listed(his))
    knobs(his, drop_rate=0.3, duplicate_rate=0.3, amount_change_rate=0.3)
    first = listed(his)
    assert first == listed(his)  # the same faults on every read
    refs = [i["ref"] for i in first]
    assert 0 < len(set(refs)) < 40 and len(refs) > len(set(refs))
    assert any(i["amount_fen"] != truth[i["ref"]] for i in first)
    knobs(his, seed=4)
    assert listed(his) != first  # another seed, other faults
    assert knobs(his, rate=0.5, paused=True) | {"rate": 0.5, "paused": True} == knobs(his)
    assert his.put("/_sim/knobs", json={"drop_rate": 2}).status_code == 422
    assert his.put("/_sim/knobs", json={"rate": -1}).status_code == 422


def test_traffic_steps_need_the_traffic_a_known_step_and_an_aware_instant(
    his: httpx.Client,
) -> None:
    at = {"at": "2026-03-02T08:00:00+08:00"}
    assert his.post("/_sim/traffic/visits", json=at).json()["error"] == "no_traffic"
    assert httpx.post(f"{his.base_url}/_sim/traffic/visits", json=at).status_code == 401
    config = TrafficConfig("http://127.0.0.1:9", "http://127.0.0.1:9", "k", Partners({}, {}), "T")
    app = hospital.create_app(KEY, HospitalKnobs(rate=0), driver=config)
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=5) as driven:
        unknown = driven.post("/_sim/traffic/lunch", json=at)
        assert unknown.status_code == 404 and "visits" in unknown.json()["steps"]
        naive = driven.post("/_sim/traffic/visits", json={"at": "2026-03-02T08:00:00"})
        assert naive.status_code == 422
        assert driven.post("/_sim/traffic/visits", json={**at, "count": -1}).status_code == 422
        # No one enrolled yet: a step of visits treats no one, and says so.
        done = driven.post("/_sim/traffic/visits", json={**at, "count": 3})
        assert done.status_code == 200 and done.json()["tally"]["visits"] == 0


def test_faults_are_fixed_by_the_seed_not_by_the_server() -> None:
    items = [
        {"ref": f"B{n}", "kind": "capture", "amount_fen": 5_000 + n, "business_date": "2026-03-02"}
        for n in range(100)
    ]
    rates = {"drop_rate": 0.2, "duplicate_rate": 0.2, "amount_change_rate": 0.2}
    one = hospital.as_listed(HospitalKnobs(seed=9, **rates), "XMH1", items)
    assert one == hospital.as_listed(HospitalKnobs(seed=9, **rates), "XMH1", list(items))
    assert one != hospital.as_listed(HospitalKnobs(seed=10, **rates), "XMH1", items)
    assert hospital.as_listed(HospitalKnobs(seed=9), "XMH1", items) == items


# What the driver makes up ---------------------------------------------------------------------


def test_the_residents_and_bills_are_valid_and_fixed_by_the_seed() -> None:
    today = dt.date(2026, 3, 1)

    def draw(seed: int) -> list[Any]:
        rng = random.Random(seed)
        numbers = [people.adult_id_number(rng, today) for _ in range(200)]
        bills = [
            costs.make_bill(rng, f"B{n}", rng.choice(["outpatient", "inpatient"]), held)
            for n, held in enumerate(rng.randint(0, 500_000) for _ in range(200))
        ]
        return [numbers, bills]

    numbers, bills = draw(1)
    assert draw(1) == [numbers, bills] and draw(2) != [numbers, bills]
    for number in numbers:
        assert credit_bureau.valid_id_number(number)
        assert dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14])) < dt.date(
            2008, 3, 1
        )
    for bill in bills:
        assert bill["total_fen"] == bill["insurance_fen"] + bill["self_pay_fen"]
        assert sum(i["amount_fen"] for i in bill["items"]) == bill["total_fen"]
        assert all(i["amount_fen"] >= 0 for i in bill["items"]) and bill["items"]
    rng = random.Random(5)
    holds = [costs.hold_amount(rng, "outpatient", None) for _ in range(500)]
    assert min(holds) >= 5_000 and max(holds) <= 200_000


def test_the_partners_file_names_hospitals_and_banks(tmp_path: Path) -> None:
    path = tmp_path / "up.json"
    path.write_text(
        json.dumps(
            {
                "partner_keys": {"XMH1": "k1", "XMBANK": "k2", "OPS": "k3"},
                "partners": [
                    {"kind": "hospital", "code": "XMH1", "name": "a"},
                    {"kind": "hospital", "code": "XMH9", "name": "no key"},
                    {"kind": "bank", "code": "XMBANK", "name": "b"},
                    {"kind": "operator", "code": "OPS", "name": "c"},
                ],
            }
        )
    )
    assert hospital.load_partners(path) == Partners({"XMH1": "k1"}, {"XMBANK": "k2"})


# The driver against the real hub --------------------------------------------------------------


def hub_transactions(http: httpx.Client, hub: str, key: str) -> set[tuple[str, str, int, str]]:
    """Captures and refunds as the hub's visits show them to the hospital."""
    found: set[tuple[str, str, int, str]] = set()
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = http.get(
            f"{hub}/v1/visits", params=params, headers={"Authorization": f"Bearer {key}"}
        )
        assert page.status_code == 200, page.text
        for visit in page.json()["data"]:
            if visit["status"] == "closed" and visit["captured_fen"] > 0:
                bill = visit["bill"]["his_bill_id"]
                found.add((bill, "capture", visit["captured_fen"], visit["visit_id"]))
            for refund in visit["refunds"]:
                found.add(
                    (refund["his_refund_id"], "refund", refund["amount_fen"], refund["refund_id"])
                )
        cursor = page.json()["next_cursor"]
        if not page.json()["has_more"]:
            return found


def his_transactions(his: httpx.Client, code: str) -> set[tuple[str, str, int, str]]:
    today = dt.datetime.now(SHANGHAI).date()
    days = {today - dt.timedelta(days=1), today}  # a run across midnight
    return {
        (i["ref"], i["kind"], i["amount_fen"], i["hub_id"])
        for day in days
        for i in listed(his, day.isoformat(), code)
    }


def test_the_driver_treats_patients_through_the_hub_and_lists_what_it_captured(
    settings: Settings,
    prefect_harness: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="simulators.hospital")
    with (
        serve(credit_bureau.create_app("bureau-key")) as bureau_url,
        serve(bank.create_app("bank-key")) as bank_url,
    ):
        banks = {code: {"url": bank_url, "api_key": "bank-key"} for code in ("B1", "B2")}
        wired = settings.model_copy(
            update={"bureau_url": bureau_url, "bureau_api_key": "bureau-key", "bank_systems": banks}
        )
        context.use(wired)
        world = make_world(wired)
        codes = {"H1": "hospital", "H2": "hospital", "B1": "bank", "B2": "bank"}
        up = tmp_path / "up.json"
        up.write_text(
            json.dumps(
                {
                    "partner_keys": {code: world.keys[code.lower()] for code in codes},
                    "partners": [{"kind": k, "code": c, "name": c} for c, k in codes.items()],
                }
            )
        )
        with live_server(wired) as hub, httpx.Client(timeout=10) as http:
            config = TrafficConfig(hub, bureau_url, "bureau-key", hospital.load_partners(up), "T1")
            knobs = HospitalKnobs(seed=1, rate=40, poll_interval_s=0.2)
            app = hospital.create_app(KEY, knobs, driver=config)
            with serve(app) as his_url, httpx.Client(base_url=his_url, headers=AUTH) as his:
                stats = drive_until_some_visits_closed(his)
                assert his.put("/_sim/knobs", json={"paused": True}).status_code == 200
                wait_until_idle(his)
                for code in ("H1", "H2"):
                    key = world.keys[code.lower()]
                    assert his_transactions(his, code) == hub_transactions(http, hub, key)
                assert books_agree(wired)
    actions = stats["actions"]
    assert "driver" not in actions, actions  # no action blew up
    for kind in ("bureau_lookup", "enrol", "poll", "eligibility", "open_visit", "hold", "close"):
        assert kind in actions, actions
    assert actions["enrol"].get("202", 0) > 0 and actions["close"].get("200", 0) >= 3
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "simulators.hospital")
    assert not re.search(r"(?<![0-9A-Za-z])[0-9]{17}[0-9X](?![0-9A-Za-z])", logged)  # a token


def drive_until_some_visits_closed(his: httpx.Client, seconds: float = 20) -> dict[str, Any]:
    """Run the enrolment flow as the hub's schedule would, until the desks have closed visits."""
    deadline = time.monotonic() + seconds
    while True:
        enroll_pending()
        stats = dict(his.get("/_sim/stats").json())
        closes = stats["actions"].get("close", {}).get("200", 0)
        if closes >= 5 or time.monotonic() > deadline:
            return stats
        time.sleep(0.3)


def wait_until_idle(his: httpx.Client) -> None:
    deadline = time.monotonic() + 20
    while not his.get("/_sim/stats").json()["driver"]["idle"]:
        assert time.monotonic() < deadline, "the driver did not pause"
        time.sleep(0.05)
