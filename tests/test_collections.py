"""Collections and hold expiry (CONTRACT.md §2 Overdue, holds): each step once per
due date however often the flow runs, and the books at zero after every flow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from flows.medical.collections import collect
from flows.medical.hold_expiry import expire_holds
from hub import context
from hub.core import clock
from hub.core.db import get_engine, unit_of_work
from hub.settings import Settings
from models.core.tables import Event, Partner
from models.medical.tables import Authorization, CreditLine
from simulators import credit_bureau
from tests.books import books_agree
from tests.conftest import ID_NUMBERS, World, make_world
from tests.live import serve

KEY = "bureau-test-key"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 on 2 March in Shanghai; due 17 March


def at_noon(day: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture
def stage(settings: Settings) -> Iterator[tuple[World, httpx.Client]]:
    with serve(credit_bureau.create_app(KEY)) as url:
        wired = settings.model_copy(update={"bureau_url": url, "bureau_api_key": KEY})
        context.use(wired)
        clock.set_now(T0)
        world = make_world(wired)
        with (
            world.client,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as b,
        ):
            with unit_of_work(get_engine(wired)) as session:  # the bank gets events
                session.get(Partner, world.ids["b1"]).webhook_url = "http://127.0.0.1:9/hook"  # type: ignore[union-attr]
            yield world, b


def _events(world: World, type_: str) -> list[Any]:
    with unit_of_work(get_engine(world.settings)) as session:
        return list(session.scalars(select(Event.payload).where(Event.type == type_)))


def test_reminders_suspension_and_reinstatement_happen_once(
    stage: tuple[World, httpx.Client], prefect_harness: None
) -> None:
    world, _ = stage
    world.closed_visit("V1", 10_000)
    runs: dict[int, list[dict[str, int]]] = {}
    for day in (16, 17, 18, 19, 20):
        clock.set_now(at_noon(day))
        runs[day] = [collect(), collect()]  # twice a day: the second run does nothing
        assert books_agree(world.settings)
    assert runs[16][0]["reminder_before"] == 1 and runs[18][0]["reminder_after"] == 1
    assert runs[20][0]["suspended"] == 1  # 3 days past the 17 March due date
    assert all(sum(second.values()) == 0 for _, second in runs.values())
    assert len(_events(world, "repayment.reminder")) == 2
    line = world.get("b1", f"/v1/credit-lines/{world.ids['line']}").json()
    assert line["status"] == "suspended" and line["overdue_fen"] == 10_000
    assert [e["status"] for e in _events(world, "credit_line.suspended")] == ["suspended"]
    r = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V2", "kind": "outpatient"},
    )
    assert r.json()["code"] == "line_not_active"
    r = world.post(
        "b1",
        "/v1/repayments",
        {
            "credit_line_id": world.ids["line"],
            "amount_fen": 10_000,
            "bank_txn_id": "T1",
            "paid_at": "2026-03-20T12:00:00+08:00",
        },
    )
    assert r.status_code == 201
    assert world.get("b1", f"/v1/credit-lines/{world.ids['line']}").json()["status"] == "active"
    assert [e["status"] for e in _events(world, "credit_line.reinstated")] == ["active"]
    clock.set_now(at_noon(21))
    assert collect()["suspended"] == 0  # the repaid debt is done with
    assert books_agree(world.settings)


def test_long_overdue_debt_is_reported_once(
    stage: tuple[World, httpx.Client], prefect_harness: None
) -> None:
    world, bureau = stage
    visit = world.closed_visit("V1", 12_345)
    clock.set_now(at_noon(15, month=4))  # 29 days past due
    assert collect()["reported"] == 0
    clock.set_now(at_noon(16, month=4))  # 30 days
    assert collect()["reported"] == 1
    assert collect()["reported"] == 0
    reports = bureau.get("/reports/overdue").json()["items"]
    assert len(reports) == 1 and reports[0]["amount_fen"] == 12_345
    assert reports[0]["days_past_due"] == 30
    assert reports[0]["report_id"] == f"overdue:{visit}"  # keyed by what the debt is for
    assert books_agree(world.settings)


def test_the_sweep_releases_expired_holds_in_the_books(
    stage: tuple[World, httpx.Client], prefect_harness: None
) -> None:
    world, _ = stage
    world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    visit = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V1", "kind": "outpatient"},
    ).json()
    for n in range(3):
        world.post(
            "h1",
            f"/v1/visits/{visit['visit_id']}/authorizations",
            {"amount_fen": 1_000, "his_order_id": f"O{n}"},
        )
    clock.set_now(T0 + timedelta(hours=73))
    assert books_agree(world.settings)  # expired, not yet swept: held in line and books alike
    assert expire_holds() == {"lines": 1, "released_fen": 3_000}
    assert expire_holds() == {"lines": 0, "released_fen": 0}
    with unit_of_work(get_engine(world.settings)) as session:
        statuses = set(session.scalars(select(Authorization.status)))
        held = session.scalar(select(CreditLine.held_fen).where(CreditLine.id == world.ids["line"]))
    assert statuses == {"expired"} and held == 0
    accounts = {
        a["account"]: a["balance_fen"]
        for a in world.get("op", "/v1/ledger/trial-balance").json()["accounts"]
    }
    assert accounts[f"line:{world.ids['line']}:held"] == 0
    assert books_agree(world.settings)
