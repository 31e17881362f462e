"""The medical-credit rules of CONTRACT.md §2, through the API on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from hub.core import clock, ledger
from hub.core.db import get_engine, unit_of_work
from hub.medical import held_credit, holds
from hub.settings import Settings
from models.medical.tables import CreditLine
from tests.books import books_agree
from tests.conftest import ID_NUMBERS, World, make_world

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
BILL_ITEMS = [{"code": "A", "name": "care", "amount_fen": 0}]


def bill(ref: str, self_pay: int, insurance: int = 0) -> dict[str, Any]:
    total = self_pay + insurance
    return {
        "his_bill_id": ref,
        "total_fen": total,
        "insurance_fen": insurance,
        "self_pay_fen": self_pay,
        "items": [dict(BILL_ITEMS[0], amount_fen=total)],
    }


def setup_visit(world: World, ref: str = "V1", kind: str = "outpatient") -> str:
    world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    r = world.post(
        "h1", "/v1/visits", {"credit_line_id": world.ids["line"], "his_visit_id": ref, "kind": kind}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["visit_id"])


def hold(world: World, visit: str, amount: int, ref: str) -> dict[str, Any]:
    r = world.post(
        "h1", f"/v1/visits/{visit}/authorizations", {"amount_fen": amount, "his_order_id": ref}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def line(world: World) -> dict[str, Any]:
    return dict(world.get("b1", f"/v1/credit-lines/{world.ids['line']}").json())


def set_line_status(world: World, status: str) -> None:
    with unit_of_work(get_engine(world.settings)) as session:
        session.execute(update(CreditLine).values(status=status, suspension_reason="overdue"))


def test_close_captures_oldest_first_and_releases_the_rest(world: World) -> None:
    visit = setup_visit(world)
    first, second = hold(world, visit, 30_000, "O1"), hold(world, visit, 20_000, "O2")
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 35_000, insurance=10_000))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["captured_fen"], body["released_fen"]) == (35_000, 15_000)
    auths = {a["authorization_id"]: a for a in body["authorizations"]}
    assert auths[first["authorization_id"]]["captured_fen"] == 30_000
    assert auths[second["authorization_id"]]["captured_fen"] == 5_000
    assert body["bill"]["insurance_fen"] == 10_000 and body["settlement_window_id"]
    assert line(world)["outstanding_fen"] == 35_000 and line(world)["held_fen"] == 0
    assert books_agree(world.settings)


def test_a_share_beyond_the_holds_is_held_first_or_refused_whole(world: World) -> None:
    visit = setup_visit(world)
    hold(world, visit, 10_000, "O1")
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 100_001))
    assert r.status_code == 402 and r.json()["code"] == "insufficient_credit"
    assert line(world)["held_fen"] == 10_000  # nothing changed
    assert world.get("h1", f"/v1/visits/{visit}").json()["status"] == "open"
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B2", 60_000))
    assert r.status_code == 200 and r.json()["captured_fen"] == 60_000
    assert line(world)["outstanding_fen"] == 60_000 and books_agree(world.settings)


def test_capture_up_to_the_holds_works_on_a_suspended_line(world: World) -> None:
    visit = setup_visit(world)
    hold(world, visit, 10_000, "O1")
    set_line_status(world, "suspended")
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 10_001))
    assert r.status_code == 409 and r.json()["code"] == "line_not_active"
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B2", 10_000))
    assert r.status_code == 200 and r.json()["captured_fen"] == 10_000


def test_a_suspended_line_takes_no_visits_holds_or_increments(world: World) -> None:
    visit = setup_visit(world)
    auth = hold(world, visit, 1_000, "O1")
    set_line_status(world, "suspended")
    r = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V2", "kind": "outpatient"},
    )
    assert r.status_code == 409 and r.json()["code"] == "line_not_active"
    r = world.post(
        "h1", f"/v1/visits/{visit}/authorizations", {"amount_fen": 1, "his_order_id": "O2"}
    )
    assert r.status_code == 409 and r.json()["code"] == "line_not_active"
    r = world.post(
        "h1", f"/v1/authorizations/{auth['authorization_id']}/increments", {"amount_fen": 1}
    )
    assert r.status_code == 409 and r.json()["code"] == "line_not_active"
    r = world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    assert r.json()["eligible"] is False and r.json()["reason"] == "suspended"


def test_holds_expire_by_time_alone(world: World) -> None:
    clock.set_now(T0)
    visit = setup_visit(world)
    auth = hold(world, visit, 40_000, "O1")
    assert auth["expires_at"] == "2026-03-05T02:00:00.000Z"  # 72 hours for outpatients
    clock.set_now(T0 + timedelta(hours=72))
    got = world.get("h1", f"/v1/authorizations/{auth['authorization_id']}").json()
    assert got["status"] == "expired"
    assert line(world)["held_fen"] == 0 and line(world)["available_fen"] == 100_000
    r = world.post("h1", f"/v1/authorizations/{auth['authorization_id']}/void", {})
    assert r.status_code == 409 and r.json()["code"] == "authorization_not_held"
    r = world.post(
        "h1", f"/v1/authorizations/{auth['authorization_id']}/increments", {"amount_fen": 1}
    )
    assert r.status_code == 409
    # The whole limit is available again, and the expired hold is never captured.
    hold(world, visit, 100_000, "O2")
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 100_000))
    assert r.status_code == 200
    captured = {
        a["his_order_id"]: (a["status"], a["captured_fen"]) for a in r.json()["authorizations"]
    }
    assert captured == {"O1": ("expired", 0), "O2": ("captured", 100_000)}
    assert books_agree(world.settings)


def test_inpatient_holds_last_thirty_days(world: World) -> None:
    clock.set_now(T0)
    visit = setup_visit(world, kind="inpatient")
    auth = hold(world, visit, 1_000, "O1")
    assert auth["expires_at"] == "2026-04-01T02:00:00.000Z"


def test_refund_reduces_the_visits_unpaid_debt_first(world: World) -> None:
    visit = setup_visit(world)
    world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 50_000))
    world.post(
        "b1",
        "/v1/repayments",
        {
            "credit_line_id": world.ids["line"],
            "amount_fen": 30_000,
            "bank_txn_id": "T1",
            "paid_at": "2026-01-01T08:00:00+08:00",
        },
    )
    r = world.post(
        "h1", f"/v1/visits/{visit}/refunds", {"amount_fen": 25_000, "his_refund_id": "R1"}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["debt_reduced_fen"], r.json()["returned_to_patient_fen"]) == (20_000, 5_000)
    assert line(world)["outstanding_fen"] == 0
    r = world.post(
        "h1", f"/v1/visits/{visit}/refunds", {"amount_fen": 25_001, "his_refund_id": "R2"}
    )
    assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_captured"
    assert world.get("h1", f"/v1/visits/{visit}").json()["refunded_fen"] == 25_000
    assert books_agree(world.settings)


def test_an_open_visit_cannot_be_refunded(world: World) -> None:
    visit = setup_visit(world)
    r = world.post("h1", f"/v1/visits/{visit}/refunds", {"amount_fen": 1, "his_refund_id": "R1"})
    assert r.status_code == 409 and r.json()["code"] == "visit_not_closed"


def test_repayments_pay_the_oldest_due_date_first(world: World) -> None:
    clock.set_now(T0)
    older = setup_visit(world, "V1")
    world.post("h1", f"/v1/visits/{older}/close", bill("B1", 10_000))
    clock.set_now(T0 + timedelta(days=2))
    newer = setup_visit(world, "V2")
    world.post("h1", f"/v1/visits/{newer}/close", bill("B2", 20_000))
    assert line(world)["next_due_date"] == "2026-03-17"
    r = world.post(
        "b1",
        "/v1/repayments",
        {
            "credit_line_id": world.ids["line"],
            "amount_fen": 15_000,
            "bank_txn_id": "T1",
            "paid_at": "2026-03-04T10:00:00+08:00",
        },
    )
    assert r.status_code == 201 and r.json()["outstanding_fen"] == 15_000
    assert line(world)["next_due_date"] == "2026-03-19"  # the older debt is paid off
    # Refunding the older visit now reduces no debt: it all goes back to the patient.
    r = world.post(
        "h1", f"/v1/visits/{older}/refunds", {"amount_fen": 10_000, "his_refund_id": "R1"}
    )
    assert (r.json()["debt_reduced_fen"], r.json()["returned_to_patient_fen"]) == (0, 10_000)
    r = world.post(
        "b1",
        "/v1/repayments",
        {
            "credit_line_id": world.ids["line"],
            "amount_fen": 15_001,
            "bank_txn_id": "T2",
            "paid_at": "2026-03-04T10:00:00+08:00",
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "overpayment"
    assert books_agree(world.settings)


def test_overdue_debt_shows_on_the_line_and_in_eligibility(world: World) -> None:
    clock.set_now(T0)
    visit = setup_visit(world)
    world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 10_000))
    due = world.get("h1", f"/v1/visits/{visit}").json()["due_date"]
    assert due == "2026-03-17"
    clock.set_now(datetime(2026, 3, 17, 15, 59, tzinfo=UTC))  # 23:59 on the due date
    assert line(world)["overdue_fen"] == 0
    clock.set_now(datetime(2026, 3, 17, 16, 0, tzinfo=UTC))  # 00:00 the day after
    assert line(world)["overdue_fen"] == 10_000
    r = world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]})
    assert r.json() == {"eligible": False, "reason": "overdue", "credit_line_id": world.ids["line"]}


def test_repaying_lifts_an_overdue_suspension(world: World) -> None:
    clock.set_now(T0)
    visit = setup_visit(world)
    world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 10_000))
    clock.set_now(T0 + timedelta(days=20))
    set_line_status(world, "suspended")
    world.post(
        "b1",
        "/v1/repayments",
        {
            "credit_line_id": world.ids["line"],
            "amount_fen": 10_000,
            "bank_txn_id": "T1",
            "paid_at": "2026-03-20T10:00:00+08:00",
        },
    )
    assert line(world)["status"] == "active"


def test_partner_references_replay_or_refuse(world: World) -> None:
    visit = setup_visit(world)
    again = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V1", "kind": "outpatient"},
    )
    assert again.status_code == 201 and again.json()["visit_id"] == visit
    other = world.post(
        "h1",
        "/v1/visits",
        {"credit_line_id": world.ids["line"], "his_visit_id": "V1", "kind": "inpatient"},
    )
    assert other.status_code == 409 and other.json()["code"] == "duplicate_reference"
    assert visit in other.json()["detail"]
    auth = hold(world, visit, 1_000, "O1")
    assert hold(world, visit, 1_000, "O1") == auth
    r = world.post(
        "h1", f"/v1/visits/{visit}/authorizations", {"amount_fen": 2_000, "his_order_id": "O1"}
    )
    assert r.status_code == 409 and auth["authorization_id"] in r.json()["detail"]
    closed = world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 1_000))
    assert world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 1_000)).json() == closed.json()
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B1", 900))
    assert r.status_code == 409 and r.json()["code"] == "duplicate_reference"
    r = world.post("h1", f"/v1/visits/{visit}/close", bill("B2", 1_000))
    assert r.status_code == 409 and r.json()["code"] == "visit_not_open"
    refund = world.post(
        "h1", f"/v1/visits/{visit}/refunds", {"amount_fen": 100, "his_refund_id": "R1"}
    )
    assert (
        world.post(
            "h1", f"/v1/visits/{visit}/refunds", {"amount_fen": 100, "his_refund_id": "R1"}
        ).json()
        == refund.json()
    )
    r = world.post("h1", f"/v1/visits/{visit}/refunds", {"amount_fen": 101, "his_refund_id": "R1"})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_reference"
    pay = {
        "credit_line_id": world.ids["line"],
        "amount_fen": 100,
        "bank_txn_id": "T1",
        "paid_at": "2026-01-01T00:00:00Z",
    }
    first = world.post("b1", "/v1/repayments", pay)
    assert world.post("b1", "/v1/repayments", pay).json() == first.json()
    r = world.post("b1", "/v1/repayments", dict(pay, amount_fen=200))
    assert r.status_code == 409 and r.json()["code"] == "duplicate_reference"
    assert books_agree(world.settings)


def test_visits_are_found_by_his_visit_id(world: World) -> None:
    visit = setup_visit(world)
    setup_visit(world, "V2")
    r = world.get("h1", "/v1/visits?his_visit_id=V1")
    assert r.status_code == 200
    body = r.json()
    assert [v["visit_id"] for v in body["data"]] == [visit]
    assert body["has_more"] is False and body["next_cursor"] is None
    page = world.get("h1", "/v1/visits?limit=1").json()
    assert page["has_more"] is True and page["data"][0]["his_visit_id"] == "V2"
    rest = world.get("h1", f"/v1/visits?limit=1&cursor={page['next_cursor']}").json()
    assert [v["his_visit_id"] for v in rest["data"]] == ["V1"] and rest["has_more"] is False
    assert world.get("h1", "/v1/visits?limit=0").status_code == 422


def held_in_step(world: World) -> int:
    """The line's stored held_fen, asserted equal to what the ledger has posted to it."""
    line_id = world.ids["line"]
    with unit_of_work(get_engine(world.settings), write=False) as session:
        stored = session.scalar(select(CreditLine.held_fen).where(CreditLine.id == line_id))
        posted = ledger.balance(session, ledger.line_held(line_id))
    assert stored == posted, f"held_fen {stored}, ledger line:held {posted}"
    return int(stored or 0)


def test_held_credit_never_drifts_from_the_ledger(world: World) -> None:
    clock.set_now(T0)
    visit = setup_visit(world)
    first = hold(world, visit, 30_000, "O1")
    assert held_in_step(world) == 30_000
    world.post(
        "h1", f"/v1/authorizations/{first['authorization_id']}/increments", {"amount_fen": 5_000}
    )
    second = hold(world, visit, 20_000, "O2")
    assert held_in_step(world) == 55_000
    r = world.post("h1", f"/v1/authorizations/{second['authorization_id']}/void", {})
    assert r.status_code == 200 and held_in_step(world) == 35_000
    other = setup_visit(world, "V2")
    hold(world, other, 10_000, "O3")
    clock.set_now(T0 + timedelta(hours=72))  # both holds expire; nothing swept them yet
    assert held_in_step(world) == 45_000 and line(world)["held_fen"] == 0
    fresh = hold(world, other, 100_000, "O4")  # room made by releasing the expired holds
    assert held_in_step(world) == 100_000
    with unit_of_work(get_engine(world.settings)) as session:  # the sweep finds nothing left
        assert holds.release_all_expired(session, clock.now(), max_lines=10) == (0, 0)
    r = world.post("h1", f"/v1/authorizations/{fresh['authorization_id']}/void", {})
    assert r.status_code == 200 and held_in_step(world) == 0
    third = setup_visit(world, "V3")
    hold(world, third, 10_000, "O5")
    r = world.post("h1", f"/v1/visits/{third}/close", bill("B3", 25_000))  # held 15_000 more
    assert r.status_code == 200 and held_in_step(world) == 0
    assert line(world)["outstanding_fen"] == 25_000 and books_agree(world.settings)


def test_releasing_more_than_is_held_is_refused(world: World) -> None:
    visit = setup_visit(world)
    auth = hold(world, visit, 1_000, "O1")
    with (
        pytest.raises(held_credit.HeldCreditDrift),
        unit_of_work(get_engine(world.settings)) as session,
    ):
        held_credit.release(
            session,
            line_id=world.ids["line"],
            holds=[held_credit.Released(auth["authorization_id"], world.ids["h1"], 1_001)],
            kind="hold_voided",
            now=clock.now(),
        )
    assert held_in_step(world) == 1_000


def test_a_hold_refused_with_a_zero_ttl_is_402(settings: Settings) -> None:
    """A hold born expired (TTL 0) whose credit is refused: 402, not a broken balance."""
    world = make_world(settings.model_copy(update={"hold_ttl_outpatient_hours": 0}))
    with world.client:
        clock.set_now(T0)
        visit = setup_visit(world)
        first = hold(world, visit, 60_000, "O1")
        assert first["status"] == "expired" and first["expires_at"] == "2026-03-02T02:00:00.000Z"
        path = f"/v1/visits/{visit}/authorizations"
        r = world.post("h1", path, {"amount_fen": 100_001, "his_order_id": "O2"})
        assert r.status_code == 402 and r.json()["code"] == "insufficient_credit", r.text
        assert held_in_step(world) == 60_000  # the first hold's, not yet released
        hold(world, visit, 100_000, "O3")  # the expired first hold makes room for it
        assert held_in_step(world) == 100_000
        r = world.post("h1", path, {"amount_fen": 100_001, "his_order_id": "O4"})
        assert r.status_code == 402 and r.json()["code"] == "insufficient_credit", r.text
        assert held_in_step(world) == 100_000 and books_agree(world.settings)
        hold(world, visit, 1, "O5")  # born expired too: every hold before it makes room
        assert held_in_step(world) == 1 and line(world)["held_fen"] == 0
