"""Settlement (CONTRACT.md §2): windows, deferred net per bank and hospital, payouts
through the real bank stand-in, reruns after a crash at every step, races on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from flows.medical.settlement import settle
from flows.partners import partner_systems
from hub import context
from hub.core import clock
from hub.core.clock import business_date
from hub.core.db import get_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical import settlement, windows
from hub.medical.lines import grant_access, open_line
from hub.settings import Settings
from models.medical.tables import CreditLine, SettlementLine, Visit
from simulators import bank
from tests.books import books_agree
from tests.conftest import ID_NUMBERS, World, latest_artifact, make_world
from tests.crashing import kill_points, run_flow_process
from tests.live import live_server, serve

KEY = "bank-test-key"
# A clean run of the crash test's window (tests/crash_child.py): its commits, and its
# calls to the banks (four payouts, two statements).
SETTLEMENT_COMMITS, SETTLEMENT_CALLS = 18, 6


@dataclass
class Stage:
    world: World
    banks: dict[str, httpx.Client]
    lines: dict[str, str]  # bank code -> a credit line of that bank

    def visit(self, who: str, bank_code: str, self_pay: int, ref: str) -> str:
        line = self.lines[bank_code]
        r = self.world.post(
            who, "/v1/visits", {"credit_line_id": line, "his_visit_id": ref, "kind": "outpatient"}
        )
        assert r.status_code == 201, r.text
        visit = r.json()["visit_id"]
        bill = {
            "his_bill_id": f"B-{ref}",
            "total_fen": self_pay,
            "insurance_fen": 0,
            "self_pay_fen": self_pay,
            "items": [{"code": "X", "name": "care", "amount_fen": self_pay}],
        }
        r = self.world.post(who, f"/v1/visits/{visit}/close", bill)
        assert r.status_code == 200, r.text
        return str(visit)

    def refund(self, who: str, visit: str, amount: int, ref: str) -> None:
        r = self.world.post(
            who, f"/v1/visits/{visit}/refunds", {"amount_fen": amount, "his_refund_id": ref}
        )
        assert r.status_code == 201, r.text

    def payouts(self, code: str) -> list[dict[str, Any]]:
        items = self.banks[code].get("/_sim/requests?limit=500").json()["items"]
        return [r for r in items if r["path"] == "/payouts" and r["status"] == 200]

    def settlements(self, who: str) -> list[dict[str, Any]]:
        r = self.world.get(who, "/v1/settlements")
        assert r.status_code == 200, r.text
        return list(r.json()["data"])


@pytest.fixture
def stage(settings: Settings) -> Iterator[Stage]:
    with serve(bank.create_app(KEY)) as b1, serve(bank.create_app(KEY)) as b2:
        wired = settings.model_copy(
            update={
                "bank_systems": {
                    "B1": {"url": b1, "api_key": KEY},
                    "B2": {"url": b2, "api_key": KEY},
                }
            }
        )
        context.use(wired)
        world = make_world(wired)
        vault, lines = get_vault(wired), {"B1": world.ids["line"]}
        with unit_of_work(get_engine(wired)) as session:
            line = open_line(
                session,
                vault,
                id_number=ID_NUMBERS[1],
                name="李四",
                phone=None,
                bank_id=world.ids["b2"],
                limit_fen=10**9,
                source="test",
                now=clock.now(),
            )
            lines["B2"] = line.id
            for h in ("h1", "h2"):
                for line_id in lines.values():
                    grant_access(session, world.ids[h], line_id)
            session.execute(update(type(line)).values(limit_fen=10**9))
        headers = {"Authorization": f"Bearer {KEY}"}
        with (
            world.client,
            httpx.Client(base_url=b1, headers=headers) as c1,
            httpx.Client(base_url=b2, headers=headers) as c2,
        ):
            yield Stage(world, {"B1": c1, "B2": c2}, lines)


def test_nets_per_bank_and_hospital_are_paid_once_and_negatives_carried(
    stage: Stage, prefect_harness: None
) -> None:
    v1 = stage.visit("h1", "B1", 30_000, "1")
    stage.visit("h1", "B1", 20_000, "2")
    stage.visit("h2", "B1", 5_000, "3")
    v4 = stage.visit("h2", "B2", 7_000, "4")
    stage.refund("h1", v1, 10_000, "R1")
    r = stage.world.post("op", "/v1/settlement-windows/close", {})
    assert r.status_code == 202, r.text
    first_window = r.json()["window_id"]
    stage.refund("h2", v4, 7_000, "R2")  # falls into the next window: B2/h2 goes negative there
    assert settle()[first_window] == {"settled": 3}
    assert books_agree(stage.world.settings)
    summary, lines = latest_artifact("settlement-summary"), latest_artifact("settlement-lines")
    assert "paid **520.00 yuan**" in summary and "| B1 | 450.00 | 0.00 | 0.00 | 0.00 |" in summary
    assert [(ln["bank"], ln["hospital"], ln["net"], ln["status"]) for ln in lines] == [
        ("B1", "H1", "400.00", "settled"),
        ("B1", "H2", "50.00", "settled"),
        ("B2", "H2", "70.00", "settled"),
    ]
    batches = {b["bank_code"]: b for b in stage.settlements("op")}
    assert batches["B1"]["status"] == "settled" and batches["B1"]["total_fen"] == 45_000
    nets = {(ln["hospital_code"], ln["net_fen"]) for ln in batches["B1"]["lines"]}
    assert nets == {("H1", 40_000), ("H2", 5_000)}
    assert batches["B2"]["lines"][0]["net_fen"] == 7_000
    assert all(ln["transfer_ref"] for b in batches.values() for ln in b["lines"])
    # A hospital sees only its lines; a bank only its batches.
    assert [ln["hospital_code"] for ln in stage.settlements("h1")[0]["lines"]] == ["H1"]
    assert [b["bank_code"] for b in stage.settlements("b2")] == ["B2"]
    assert (
        stage.world.get("b2", f"/v1/settlements/{batches['B1']['settlement_id']}").status_code
        == 404
    )
    # The next window: B2/h2 is refunded 7,000 with nothing captured: carried, not paid.
    second = stage.world.post("op", "/v1/settlement-windows/close", {}).json()["window_id"]
    assert settle() == {}  # nothing to pay: no batch
    assert books_agree(stage.world.settings)  # the negative net carried, not paid
    stage.visit("h2", "B2", 10_000, "5")
    third = stage.world.post("op", "/v1/settlement-windows/close", {}).json()["window_id"]
    assert settle()[third] == {"settled": 1}
    assert latest_artifact("settlement-lines") == [
        {"bank": "B2", "hospital": "H2", "captured": "100.00", "refunded": "0.00",
         "carried in": "-70.00", "net": "30.00", "status": "settled"},
    ]  # fmt: skip
    with unit_of_work(get_engine(stage.world.settings)) as session:
        carried = session.scalars(
            select(SettlementLine).where(SettlementLine.window_id == second)
        ).one()
        paid = session.scalars(
            select(SettlementLine).where(SettlementLine.window_id == third)
        ).one()
    assert (carried.net_fen, carried.status) == (-7_000, "carried")
    assert (paid.captured_fen, paid.carried_in_fen, paid.net_fen) == (10_000, -7_000, 3_000)
    assert len(stage.payouts("B1")) == 2 and len(stage.payouts("B2")) == 2
    assert books_agree(stage.world.settings)


class Crash(BaseException):
    """The flow's process dies here: nothing after this point runs."""


@pytest.mark.parametrize(
    "crash_at", ["after_compute", "before_call", "after_call", "after_confirm"]
)
def test_a_rerun_after_a_crash_pays_each_line_exactly_once(
    stage: Stage, prefect_harness: None, crash_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        stage.visit("h1", "B1", 1_000 + n, f"{crash_at}{n}")
        stage.visit("h2", "B1", 2_000 + n, f"{crash_at}h2{n}")
    stage.world.post("op", "/v1/settlement-windows/close", {})
    client = partner_systems(stage.world.settings).bank_client("B1")
    real_pay = client.pay

    def dying_pay(**kwargs: Any) -> Any:
        if crash_at == "before_call":
            raise Crash  # intent recorded, bank never asked
        real_pay(**kwargs)
        raise Crash  # the bank paid, but we die before recording it

    def dying_after(step: Any) -> Any:
        def run_then_die(*args: Any, **kwargs: Any) -> Any:
            step(*args, **kwargs)
            raise Crash

        return run_then_die

    with monkeypatch.context() as patched:
        if crash_at in ("before_call", "after_call"):
            patched.setattr(client, "pay", dying_pay)
        elif crash_at == "after_compute":  # lines recorded, nothing instructed yet
            patched.setattr(settlement, "orders", dying_after(settlement.orders))
        else:  # the bank paid and the line is settled, but the batch is not rolled up
            patched.setattr(settlement, "confirm", dying_after(settlement.confirm))
        with pytest.raises(Crash):
            settle()
    assert books_agree(stage.world.settings)  # whatever the crash left is still owed
    assert settle() != {}  # the rerun finishes
    batch = stage.settlements("op")[0]
    assert batch["status"] == "settled" and all(ln["status"] == "settled" for ln in batch["lines"])
    keys = [p["idempotency_key"] for p in stage.payouts("B1")]
    statement = stage.banks["B1"].get(f"/statements/{_value_date(stage)}").json()["items"]
    assert (
        len(statement) == 2 and len({i["payout_id"] for i in statement}) == 2
    )  # one transfer a line
    assert len(set(keys)) == 2
    assert books_agree(stage.world.settings)


def _value_date(stage: Stage) -> str:
    return business_date(clock.now(), stage.world.settings.business_timezone).isoformat()


def test_bank_faults_delay_but_never_duplicate(stage: Stage, prefect_harness: None) -> None:
    stage.visit("h1", "B1", 1_000, "F1")
    stage.visit("h2", "B1", 2_000, "F2")
    stage.world.post("op", "/v1/settlement-windows/close", {})
    stage.banks["B1"].put("/_sim/knobs", json={"error_rate": 1.0})
    assert list(settle().values()) == [{"retry_later": 2}]
    assert stage.settlements("op")[0]["status"] == "instructed"
    assert books_agree(stage.world.settings)
    stage.banks["B1"].put(
        "/_sim/knobs",
        json={"error_rate": 0.0, "timeout_rate": 0.5, "timeout_sleep_s": 0.2, "seed": 3},
    )
    settle()
    stage.banks["B1"].put("/_sim/knobs", json={"timeout_rate": 0.0})
    settle()
    assert stage.settlements("op")[0]["status"] == "settled"
    statement = stage.banks["B1"].get(f"/statements/{_value_date(stage)}").json()["items"]
    assert sorted(i["amount_fen"] for i in statement) == [1_000, 2_000]
    assert books_agree(stage.world.settings)


# A saturated machine may take many seconds to answer 44 requests at once
# (httpx's default of 5 s is no promise the hub makes); this only ends a hang.
TIMEOUT = 120


@pytest.mark.pg
def test_closing_races_with_captures_each_capture_in_exactly_one_window(
    pg_settings: Settings,
) -> None:
    world = make_world(pg_settings)
    with world.client:
        with unit_of_work(get_engine(pg_settings)) as session:
            grant_access(session, world.ids["h1"], world.ids["line"])
            session.execute(update(CreditLine).values(limit_fen=10**9))
        visits = []
        for n in range(40):
            r = world.post(
                "h1",
                "/v1/visits",
                {
                    "credit_line_id": world.ids["line"],
                    "his_visit_id": f"R{n}",
                    "kind": "outpatient",
                },
            )
            visits.append(r.json()["visit_id"])
        with live_server(pg_settings) as base:
            stop = threading.Event()

            def closer() -> int:
                closed = 0
                headers = world.headers("op")
                with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT) as http:
                    while not stop.is_set():
                        r = http.post(
                            "/v1/settlement-windows/close",
                            json={},
                            headers={"Idempotency-Key": f"c{closed}-{threading.get_ident()}"},
                        )
                        assert r.status_code == 202, r.text
                        closed += 1
                return closed

            def capture(visit: str) -> int:
                bill = {
                    "his_bill_id": f"B{visit}",
                    "total_fen": 100,
                    "insurance_fen": 0,
                    "self_pay_fen": 100,
                    "items": [{"code": "X", "name": "x", "amount_fen": 100}],
                }
                headers = world.headers("h1", f"k{visit}")
                with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT) as http:
                    return http.post(f"/v1/visits/{visit}/close", json=bill).status_code

            with ThreadPoolExecutor(44) as pool:
                closers = [pool.submit(closer) for _ in range(4)]
                try:
                    statuses = list(pool.map(capture, visits))
                finally:
                    stop.set()  # however the captures end, or the closers never would
                closes = sum(c.result() for c in closers)
        assert statuses == [200] * len(visits) and closes > 0
        with unit_of_work(get_engine(pg_settings)) as session:
            for window_id in windows.to_settle(session):
                settlement.compute(session, window_id, pg_settings.business_timezone, clock.now())
        with unit_of_work(get_engine(pg_settings)) as session:
            in_windows = session.scalar(
                select(func.count()).where(
                    Visit.captured_fen > 0, Visit.settlement_window_id.is_not(None)
                )
            )
            settled_sum = session.scalar(select(func.sum(SettlementLine.captured_fen)))
            open_sum = session.scalar(
                select(func.coalesce(func.sum(Visit.captured_fen), 0)).where(
                    Visit.settlement_window_id == windows.open_window_id(session, clock.now())
                )
            )
        assert in_windows == len(visits)
        assert settled_sum + open_sum == 100 * len(visits)  # each capture counted exactly once
        assert books_agree(pg_settings)


@pytest.mark.parametrize(
    "settings", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_kill_9_at_seeded_points_then_a_rerun_pays_each_line_exactly_once(
    stage: Stage, prefect_harness: None, tmp_path: Path
) -> None:
    """The settlement flow's own process is killed (SIGKILL) at a seeded point —
    before a commit, before a bank is asked, after it answered — then rerun."""
    urls = [str(client.base_url) for client in stage.banks.values()]
    kills = kill_points(seed=9, trials=3, commits=SETTLEMENT_COMMITS, calls=SETTLEMENT_CALLS)
    for trial, kill_at in enumerate(kills):
        for n, (hospital, bank_code) in enumerate(
            [("h1", "B1"), ("h1", "B2"), ("h2", "B1"), ("h2", "B2")]
        ):  # four lines: each hospital with each bank
            stage.visit(hospital, bank_code, 1_000 * (n + 1) + trial, f"k{trial}-{n}")
        stage.world.post("op", "/v1/settlement-windows/close", {})
        run = run_flow_process(
            stage.world.settings, "settlement", kill_at, urls, tmp_path / "clock"
        )
        assert run.killed, f"the run passed only {run.points} points, not {kill_at}"
        assert books_agree(stage.world.settings)
        settle()
        assert books_agree(stage.world.settings)
    batches = stage.settlements("op")
    assert len(batches) == 6 and all(b["status"] == "settled" for b in batches)
    for code in ("B1", "B2"):
        owed = sorted(ln["net_fen"] for b in batches if b["bank_code"] == code for ln in b["lines"])
        statement = stage.banks[code].get(f"/statements/{_value_date(stage)}").json()["items"]
        assert sorted(i["amount_fen"] for i in statement) == owed  # each line paid once
        assert len({i["payout_id"] for i in statement}) == len(statement)
