"""The books' checks (`hub.medical.books`) find each kind of wrong figure, and only it.

One scene touches every account: a visit captured with an insurance share, a
refund that reduces the debt, a repayment, a settled window, a refund that goes
back to the patient and leaves a negative net carried, and a hold still held.
Its books agree; then one row at a time is corrupted by SQL (a business row,
never a posting: PostgreSQL refuses to change those) and the checks must name
exactly the figures that row stands behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from hub.core import clock, ledger
from hub.core.db import get_engine, unit_of_work
from hub.medical import books, settlement, windows
from tests.books import books_agree
from tests.conftest import ID_NUMBERS, World


@dataclass(frozen=True)
class Scene:
    world: World
    line: str
    bank: str
    hospital: str


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _settle_open_window(world: World) -> None:
    """Close the open window and settle it as the flow would, the bank paying at once."""
    zone, now = world.settings.business_timezone, clock.now()
    with unit_of_work(get_engine(world.settings)) as session:
        closed = windows.close_window(session, now)
        settlement.compute(session, closed, zone, now)
        for order in settlement.orders(session, closed, zone):
            settlement.mark_instructed(session, order.line_id, now)
            settlement.confirm(session, order.line_id, f"T{order.line_id}", now)
        settlement.roll_up(session, closed, now)


def _visit(world: World, ref: str) -> str:
    body = {"credit_line_id": world.ids["line"], "his_visit_id": ref, "kind": "outpatient"}
    return str(_ok(world.post("h1", "/v1/visits", body), 201)["visit_id"])


def _hold(world: World, visit: str, amount: int, ref: str) -> None:
    body = {"amount_fen": amount, "his_order_id": ref}
    _ok(world.post("h1", f"/v1/visits/{visit}/authorizations", body), 201)


def _refund(world: World, visit: str, amount: int, ref: str) -> None:
    body = {"amount_fen": amount, "his_refund_id": ref}
    _ok(world.post("h1", f"/v1/visits/{visit}/refunds", body), 201)


@pytest.fixture
def scene(world: World) -> Scene:
    _ok(world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}), 200)
    v1 = _visit(world, "V1")
    _hold(world, v1, 6_000, "O1")
    bill = {
        "his_bill_id": "B1",
        "total_fen": 8_000,
        "insurance_fen": 3_000,
        "self_pay_fen": 5_000,
        "items": [{"code": "X", "name": "care", "amount_fen": 8_000}],
    }
    _ok(world.post("h1", f"/v1/visits/{v1}/close", bill), 200)  # 5,000 owed, 1,000 released
    _refund(world, v1, 1_000, "R1")  # off the debt: 4,000 owed
    repayment = {
        "credit_line_id": world.ids["line"],
        "amount_fen": 2_000,
        "bank_txn_id": "T1",
        "paid_at": "2026-01-01T08:00:00+08:00",
    }
    _ok(world.post("b1", "/v1/repayments", repayment), 201)  # 2,000 owed
    _settle_open_window(world)  # the bank pays the hospital 4,000
    _refund(world, v1, 3_000, "R2")  # 2,000 off the debt, 1,000 back to the patient
    _settle_open_window(world)  # -3,000 carried
    _hold(world, _visit(world, "V2"), 2_000, "O2")  # still held
    scene = Scene(world, world.ids["line"], world.ids["b1"], world.ids["h1"])
    assert books_agree(world.settings)
    return scene


def _corrupt(scene: Scene, sql: str) -> set[str]:
    engine = get_engine(scene.world.settings)
    with unit_of_work(engine) as session:
        assert session.execute(text(sql)).rowcount == 1  # type: ignore[attr-defined]
    with unit_of_work(engine, write=False) as session:
        return {d.subject for d in books.discrepancies(session)}


# The corrupting statement, and the figures the checks must name ({L} the line, {B} its
# bank, {H} the hospital).
CORRUPTIONS = {
    "line held": (
        "UPDATE credit_lines SET held_fen = held_fen + 1",
        {"credit_lines[{L}].held_fen", "line:{L}:held"},
    ),
    "line outstanding": (
        "UPDATE credit_lines SET outstanding_fen = outstanding_fen + 1",
        {"credit_lines[{L}].outstanding_fen", "line:{L}:debt"},
    ),
    "hold amount": (
        "UPDATE authorizations SET amount_fen = amount_fen + 1 WHERE status = 'held'",
        {"credit_lines[{L}].held_fen", "hospital:{H}:holds"},
    ),
    "debt paid": (
        "UPDATE debts SET paid_fen = paid_fen + 1",
        {"credit_lines[{L}].outstanding_fen"},
    ),
    "captured": (
        "UPDATE visits SET captured_fen = captured_fen + 1 WHERE status = 'closed'",
        {"payable:{B}:{H}"},
    ),
    "refunded": (
        "UPDATE refunds SET amount_fen = amount_fen - 1 WHERE his_refund_id = 'R1'",
        {"payable:{B}:{H}"},
    ),
    "settled net": (
        "UPDATE settlement_lines SET net_fen = net_fen + 1 WHERE status = 'settled'",
        {"payable:{B}:{H}", "bank:{B}:paid_out"},
    ),
    "carried net": (
        "UPDATE settlement_lines SET net_fen = net_fen + 1 WHERE status = 'carried'",
        {"payable:{B}:{H}"},
    ),
    "insurance": (
        "UPDATE visits SET insurance_fen = insurance_fen + 1 WHERE status = 'closed'",
        {"insurance:{H}:due", "hospital:{H}:insured"},
    ),
    "repayment": (
        "UPDATE repayments SET amount_fen = amount_fen + 1",
        {"bank:{B}:repaid"},
    ),
    "returned to the patient": (
        "UPDATE refunds SET returned_to_patient_fen = returned_to_patient_fen + 1"
        " WHERE returned_to_patient_fen > 0",
        {"patient:{L}:refund_due"},
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_each_check_names_the_figures_a_corrupted_row_stands_behind(
    scene: Scene, case: str
) -> None:
    sql, subjects = CORRUPTIONS[case]
    named = {s.format(L=scene.line, B=scene.bank, H=scene.hospital) for s in subjects}
    assert _corrupt(scene, sql) == named


def test_a_posting_to_an_account_no_rule_names_is_reported(scene: Scene) -> None:
    """A balanced entry to a misspelt account: the trial balance still totals 0."""
    with unit_of_work(get_engine(scene.world.settings)) as session:
        ledger.post(
            session,
            "test",
            "misposted",
            [(f"lines:{scene.line}:held", 500), (ledger.line_held(scene.line), -500)],
            clock.now(),
        )
    with unit_of_work(get_engine(scene.world.settings), write=False) as session:
        found = books.discrepancies(session)
    assert {(d.subject, d.found_fen, d.expected_fen) for d in found} == {
        (f"lines:{scene.line}:held", 500, 0),
        (ledger.line_held(scene.line), 2_000 - 500, 2_000),
    }
    assert scene.world.get("op", "/v1/ledger/trial-balance").json()["total_fen"] == 0
