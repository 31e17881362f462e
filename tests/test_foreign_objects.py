"""Foreign objects are invisible: 404 `not_found`, exactly as if they did not exist.

CONTRACT.md §1 "Authentication and scope": an object the caller may not see is
a 404 `not_found`, exactly as if it did not exist. §2 names who may see what:
a visit, its holds and refunds only the visit's hospital; a credit line its bank
and a hospital that checked the person or has a visit on it; a repayment only
the line's bank (another bank repaying gets a 404).

Every refusal is compared with the 404 for a made-up id of the same shape: the
status, the content type and the whole problem body must be the same, apart
from the id itself inside `detail`. Each test also has a positive control (the
owner gets its 200/201) and checks that the refused request changed nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.conftest import ID_NUMBERS, World

PAID_AT = "2026-01-01T00:00:00+08:00"


def _made_up(prefix: str) -> str:
    """An id of the hub's shape that no object has."""
    return f"{prefix}_0000000000{uuid.uuid4().hex[:16]}"


def assert_same_as_missing(foreign: Any, foreign_id: str, missing: Any, missing_id: str) -> None:
    """`foreign` is indistinguishable from `missing`, apart from the id in `detail`."""
    assert missing.status_code == 404, missing.text
    assert foreign.status_code == 404, foreign.text
    assert foreign.headers["content-type"] == missing.headers["content-type"]
    assert foreign.headers["content-type"].startswith("application/problem+json")
    a, b = foreign.json(), missing.json()
    assert a["code"] == "not_found" and b["code"] == "not_found"
    assert a["status"] == 404
    assert "Idempotent-Replayed" not in foreign.headers
    a["detail"] = a["detail"].replace(foreign_id, "{id}")
    b["detail"] = b["detail"].replace(missing_id, "{id}")
    assert a == b


@dataclass
class Scene:
    """h1's objects on b1's line: an open visit with a hold, a closed visit with
    a refund, and b1's repayment."""

    line: str
    open_visit: str
    auth: str
    closed_visit: str
    refund: str
    repayment: str


def _ok(r: Any, status: int) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def build_scene(world: World) -> Scene:
    line = world.ids["line"]
    body = _ok(world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}), 200)
    assert body["credit_line_id"] == line
    open_visit = _ok(
        world.post(
            "h1",
            "/v1/visits",
            {
                "credit_line_id": line,
                "his_visit_id": "V-OPEN",
                "kind": "outpatient",
                "department": "ENT",
            },
        ),
        201,
    )["visit_id"]
    auth = _ok(
        world.post(
            "h1",
            f"/v1/visits/{open_visit}/authorizations",
            {"amount_fen": 10_000, "his_order_id": "O-1", "description": "x-ray"},
        ),
        201,
    )
    closed_visit = _ok(
        world.post(
            "h1",
            "/v1/visits",
            {
                "credit_line_id": line,
                "his_visit_id": "V-CLOSED",
                "kind": "inpatient",
                "department": "ICU",
            },
        ),
        201,
    )["visit_id"]
    _ok(
        world.post(
            "h1",
            f"/v1/visits/{closed_visit}/authorizations",
            {"amount_fen": 20_000, "his_order_id": "O-2", "description": "bed"},
        ),
        201,
    )
    closed = _ok(
        world.post(
            "h1",
            f"/v1/visits/{closed_visit}/close",
            {
                "his_bill_id": "B-1",
                "total_fen": 25_000,
                "insurance_fen": 10_000,
                "self_pay_fen": 15_000,
                "items": [{"code": "BED", "name": "bed", "amount_fen": 25_000}],
            },
        ),
        200,
    )
    assert closed["status"] == "closed" and closed["captured_fen"] == 15_000
    refund = _ok(
        world.post(
            "h1",
            f"/v1/visits/{closed_visit}/refunds",
            {"amount_fen": 1_000, "his_refund_id": "R-1", "reason": "dup"},
        ),
        201,
    )["refund_id"]
    repayment = _ok(
        world.post(
            "b1",
            "/v1/repayments",
            {"credit_line_id": line, "amount_fen": 2_000, "bank_txn_id": "T-1", "paid_at": PAID_AT},
        ),
        201,
    )["repayment_id"]
    return Scene(line, open_visit, auth["authorization_id"], closed_visit, refund, repayment)


def _line(world: World) -> dict[str, Any]:
    return _ok(world.get("b1", f"/v1/credit-lines/{world.ids['line']}"), 200)


def _trial(world: World) -> dict[str, Any]:
    return _ok(world.get("op", "/v1/ledger/trial-balance"), 200)


# --- visits -------------------------------------------------------------------------------


def test_scene_balances_are_what_the_owner_did(world: World) -> None:
    """The positive control for the whole module: the scene's objects exist and move money."""
    build_scene(world)
    line = _line(world)
    assert (line["held_fen"], line["outstanding_fen"]) == (10_000, 15_000 - 1_000 - 2_000)
    assert line["available_fen"] == 100_000 - 10_000 - 12_000


def test_get_visit_of_another_hospital(world: World) -> None:
    s = build_scene(world)
    mine = _ok(world.get("h1", f"/v1/visits/{s.open_visit}"), 200)
    assert mine["visit_id"] == s.open_visit and len(mine["authorizations"]) == 1
    for visit in (s.open_visit, s.closed_visit):
        missing = _made_up("vis")
        assert_same_as_missing(
            world.get("h2", f"/v1/visits/{visit}"),
            visit,
            world.get("h2", f"/v1/visits/{missing}"),
            missing,
        )


def test_list_visits_by_his_visit_id_of_another_hospital_is_empty(world: World) -> None:
    build_scene(world)
    empty = {"data": [], "has_more": False, "next_cursor": None}
    assert _ok(world.get("h2", "/v1/visits?his_visit_id=V-OPEN"), 200) == empty
    assert _ok(world.get("h2", "/v1/visits?his_visit_id=V-CLOSED"), 200) == empty
    assert _ok(world.get("h2", "/v1/visits?his_visit_id=NO-SUCH"), 200) == empty
    assert _ok(world.get("h2", "/v1/visits"), 200) == empty
    # positive control: the owner finds its visit (default limit 20, one match)
    mine = _ok(world.get("h1", "/v1/visits?his_visit_id=V-OPEN"), 200)
    assert [v["his_visit_id"] for v in mine["data"]] == ["V-OPEN"]
    assert (mine["has_more"], mine["next_cursor"]) == (False, None)
    both = _ok(world.get("h1", "/v1/visits"), 200)
    assert {v["his_visit_id"] for v in both["data"]} == {"V-OPEN", "V-CLOSED"}


def test_hold_on_another_hospitals_visit(world: World) -> None:
    s = build_scene(world)
    before, trial = _line(world), _trial(world)
    body = {"amount_fen": 500, "his_order_id": "H2-O", "description": "probe"}
    missing = _made_up("vis")
    assert_same_as_missing(
        world.post("h2", f"/v1/visits/{s.open_visit}/authorizations", body),
        s.open_visit,
        world.post("h2", f"/v1/visits/{missing}/authorizations", body),
        missing,
    )
    # the same reference h1 used, on h1's visit: still nothing to see
    same_ref = {"amount_fen": 10_000, "his_order_id": "O-1", "description": "x-ray"}
    assert_same_as_missing(
        world.post("h2", f"/v1/visits/{s.open_visit}/authorizations", same_ref),
        s.open_visit,
        world.post("h2", f"/v1/visits/{missing}/authorizations", same_ref),
        missing,
    )
    assert _line(world) == before and _trial(world) == trial
    assert len(_ok(world.get("h1", f"/v1/visits/{s.open_visit}"), 200)["authorizations"]) == 1
    # positive control: the owner can hold on it
    _ok(world.post("h1", f"/v1/visits/{s.open_visit}/authorizations", body), 201)
    assert _line(world)["held_fen"] == before["held_fen"] + 500


def test_close_another_hospitals_visit(world: World) -> None:
    s = build_scene(world)
    before, trial = _line(world), _trial(world)
    bill = {
        "his_bill_id": "H2-B",
        "total_fen": 3_000,
        "insurance_fen": 1_000,
        "self_pay_fen": 2_000,
        "items": [{"code": "X", "name": "x", "amount_fen": 3_000}],
    }
    missing = _made_up("vis")
    assert_same_as_missing(
        world.post("h2", f"/v1/visits/{s.open_visit}/close", bill),
        s.open_visit,
        world.post("h2", f"/v1/visits/{missing}/close", bill),
        missing,
    )
    # h1's own bill reference on h1's closed visit: a replay for h1, invisible to h2
    h1_bill = {
        "his_bill_id": "B-1",
        "total_fen": 25_000,
        "insurance_fen": 10_000,
        "self_pay_fen": 15_000,
        "items": [{"code": "BED", "name": "bed", "amount_fen": 25_000}],
    }
    assert_same_as_missing(
        world.post("h2", f"/v1/visits/{s.closed_visit}/close", h1_bill),
        s.closed_visit,
        world.post("h2", f"/v1/visits/{missing}/close", h1_bill),
        missing,
    )
    assert _line(world) == before and _trial(world) == trial
    assert _ok(world.get("h1", f"/v1/visits/{s.open_visit}"), 200)["status"] == "open"
    # positive control
    closed = _ok(world.post("h1", f"/v1/visits/{s.open_visit}/close", bill), 200)
    assert closed["status"] == "closed" and closed["captured_fen"] == 2_000


def test_refund_on_another_hospitals_visit(world: World) -> None:
    s = build_scene(world)
    before, trial = _line(world), _trial(world)
    body = {"amount_fen": 100, "his_refund_id": "H2-R", "reason": "probe"}
    missing = _made_up("vis")
    for visit in (s.closed_visit, s.open_visit):
        assert_same_as_missing(
            world.post("h2", f"/v1/visits/{visit}/refunds", body),
            visit,
            world.post("h2", f"/v1/visits/{missing}/refunds", body),
            missing,
        )
    # more than was captured: still a 404, not a 422 that would reveal the visit
    too_much = {"amount_fen": 10**9, "his_refund_id": "H2-R2", "reason": "probe"}
    assert_same_as_missing(
        world.post("h2", f"/v1/visits/{s.closed_visit}/refunds", too_much),
        s.closed_visit,
        world.post("h2", f"/v1/visits/{missing}/refunds", too_much),
        missing,
    )
    assert _line(world) == before and _trial(world) == trial
    assert _ok(world.get("h1", f"/v1/visits/{s.closed_visit}"), 200)["refunded_fen"] == 1_000
    # positive control
    _ok(world.post("h1", f"/v1/visits/{s.closed_visit}/refunds", body), 201)
    assert _ok(world.get("h1", f"/v1/visits/{s.closed_visit}"), 200)["refunded_fen"] == 1_100


# --- authorizations and refunds --------------------------------------------------------------


def test_get_authorization_of_another_hospital(world: World) -> None:
    s = build_scene(world)
    assert _ok(world.get("h1", f"/v1/authorizations/{s.auth}"), 200)["status"] == "held"
    missing = _made_up("auth")
    assert_same_as_missing(
        world.get("h2", f"/v1/authorizations/{s.auth}"),
        s.auth,
        world.get("h2", f"/v1/authorizations/{missing}"),
        missing,
    )


def test_increment_another_hospitals_authorization(world: World) -> None:
    s = build_scene(world)
    before, trial = _line(world), _trial(world)
    missing = _made_up("auth")
    assert_same_as_missing(
        world.post("h2", f"/v1/authorizations/{s.auth}/increments", {"amount_fen": 700}),
        s.auth,
        world.post("h2", f"/v1/authorizations/{missing}/increments", {"amount_fen": 700}),
        missing,
    )
    # more than is available: still 404, not a 402 that would reveal the line's balance
    big = {"amount_fen": 10**9}
    assert_same_as_missing(
        world.post("h2", f"/v1/authorizations/{s.auth}/increments", big),
        s.auth,
        world.post("h2", f"/v1/authorizations/{missing}/increments", big),
        missing,
    )
    assert _line(world) == before and _trial(world) == trial
    assert _ok(world.get("h1", f"/v1/authorizations/{s.auth}"), 200)["amount_fen"] == 10_000
    # positive control
    raised = _ok(
        world.post("h1", f"/v1/authorizations/{s.auth}/increments", {"amount_fen": 700}), 200
    )
    assert raised["amount_fen"] == 10_700


def test_void_another_hospitals_authorization(world: World) -> None:
    s = build_scene(world)
    before, trial = _line(world), _trial(world)
    missing = _made_up("auth")
    assert_same_as_missing(
        world.post("h2", f"/v1/authorizations/{s.auth}/void", {}),
        s.auth,
        world.post("h2", f"/v1/authorizations/{missing}/void", {}),
        missing,
    )
    assert _line(world) == before and _trial(world) == trial
    assert _ok(world.get("h1", f"/v1/authorizations/{s.auth}"), 200)["status"] == "held"
    # a captured hold of h1 (not held any more): 404 for h2, not 409
    captured = _ok(world.get("h1", f"/v1/visits/{s.closed_visit}"), 200)["authorizations"][0]
    assert captured["status"] == "captured"
    cid = captured["authorization_id"]
    assert_same_as_missing(
        world.post("h2", f"/v1/authorizations/{cid}/void", {}),
        cid,
        world.post("h2", f"/v1/authorizations/{missing}/void", {}),
        missing,
    )
    # positive control
    assert _ok(world.post("h1", f"/v1/authorizations/{s.auth}/void", {}), 200)["status"] == "voided"
    assert _line(world)["held_fen"] == before["held_fen"] - 10_000


def test_get_refund_of_another_hospital(world: World) -> None:
    s = build_scene(world)
    assert _ok(world.get("h1", f"/v1/refunds/{s.refund}"), 200)["amount_fen"] == 1_000
    missing = _made_up("ref")
    assert_same_as_missing(
        world.get("h2", f"/v1/refunds/{s.refund}"),
        s.refund,
        world.get("h2", f"/v1/refunds/{missing}"),
        missing,
    )


# --- credit lines ------------------------------------------------------------------------------


def test_hospital_that_neither_checked_nor_visited_cannot_read_the_line(world: World) -> None:
    line = world.ids["line"]
    missing = _made_up("cl")
    for who in ("h1", "h2"):  # no check, no visit yet
        assert_same_as_missing(
            world.get(who, f"/v1/credit-lines/{line}"),
            line,
            world.get(who, f"/v1/credit-lines/{missing}"),
            missing,
        )
    # h1 checks the person: now it may read the line; h2 still may not
    _ok(world.post("h1", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}), 200)
    assert _ok(world.get("h1", f"/v1/credit-lines/{line}"), 200)["credit_line_id"] == line
    assert_same_as_missing(
        world.get("h2", f"/v1/credit-lines/{line}"),
        line,
        world.get("h2", f"/v1/credit-lines/{missing}"),
        missing,
    )
    # a check of someone else does not open this line to h2
    _ok(world.post("h2", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[1]}), 200)
    assert world.get("h2", f"/v1/credit-lines/{line}").status_code == 404


def test_hospital_that_neither_checked_nor_visited_cannot_open_a_visit(world: World) -> None:
    line = world.ids["line"]
    missing = _made_up("cl")

    def body(credit_line_id: str) -> dict[str, Any]:
        return {
            "credit_line_id": credit_line_id,
            "his_visit_id": "H2-V",
            "kind": "outpatient",
            "department": "ENT",
        }

    assert_same_as_missing(
        world.post("h2", "/v1/visits", body(line)),
        line,
        world.post("h2", "/v1/visits", body(missing)),
        missing,
    )
    # nothing was opened, and the refused attempt granted no access
    assert _ok(world.get("h2", "/v1/visits?his_visit_id=H2-V"), 200)["data"] == []
    assert world.get("h2", f"/v1/credit-lines/{line}").status_code == 404
    # h1's visit on the line does not open it to h2 either
    build_scene(world)
    assert_same_as_missing(
        world.post("h2", "/v1/visits", body(line)),
        line,
        world.post("h2", "/v1/visits", body(missing)),
        missing,
    )
    assert world.get("h2", f"/v1/credit-lines/{line}").status_code == 404
    # positive control: after checking the person, h2 may open a visit and read the line
    _ok(world.post("h2", "/v1/eligibility-checks", {"id_number": ID_NUMBERS[0]}), 200)
    visit = _ok(world.post("h2", "/v1/visits", body(line)), 201)
    assert visit["credit_line_id"] == line and visit["status"] == "open"
    assert _ok(world.get("h2", f"/v1/credit-lines/{line}"), 200)["credit_line_id"] == line


def test_bank_reads_only_its_own_lines(world: World) -> None:
    line = world.ids["line"]
    assert _ok(world.get("b1", f"/v1/credit-lines/{line}"), 200)["bank_code"] == "B1"
    missing = _made_up("cl")
    assert_same_as_missing(
        world.get("b2", f"/v1/credit-lines/{line}"),
        line,
        world.get("b2", f"/v1/credit-lines/{missing}"),
        missing,
    )


# --- repayments ----------------------------------------------------------------------------


def test_bank_cannot_repay_on_another_banks_line(world: World) -> None:
    s = build_scene(world)
    before, trial = _line(world), _trial(world)
    assert before["outstanding_fen"] == 12_000
    missing = _made_up("cl")

    def body(credit_line_id: str, amount: int = 1_000, txn: str = "B2-T") -> dict[str, Any]:
        return {
            "credit_line_id": credit_line_id,
            "amount_fen": amount,
            "bank_txn_id": txn,
            "paid_at": PAID_AT,
        }

    assert_same_as_missing(
        world.post("b2", "/v1/repayments", body(s.line)),
        s.line,
        world.post("b2", "/v1/repayments", body(missing)),
        missing,
    )
    # more than is outstanding: 404, not a 422 overpayment that would reveal the debt
    assert_same_as_missing(
        world.post("b2", "/v1/repayments", body(s.line, 10**9, "B2-T2")),
        s.line,
        world.post("b2", "/v1/repayments", body(missing, 10**9, "B2-T2")),
        missing,
    )
    # b1's own bank_txn_id, replayed by b2: no replay of b1's repayment
    assert_same_as_missing(
        world.post("b2", "/v1/repayments", body(s.line, 2_000, "T-1")),
        s.line,
        world.post("b2", "/v1/repayments", body(missing, 2_000, "T-1")),
        missing,
    )
    assert _line(world) == before and _trial(world) == trial
    # positive control: b1 may, and b2's refused reference did not block anything
    paid = _ok(world.post("b1", "/v1/repayments", body(s.line)), 201)
    assert paid["applied_fen"] == 1_000 and paid["outstanding_fen"] == 11_000


def test_bank_reads_only_its_own_repayments(world: World) -> None:
    s = build_scene(world)
    mine = _ok(world.get("b1", f"/v1/repayments/{s.repayment}"), 200)
    assert mine["repayment_id"] == s.repayment and mine["applied_fen"] == 2_000
    missing = _made_up("rpy")
    assert_same_as_missing(
        world.get("b2", f"/v1/repayments/{s.repayment}"),
        s.repayment,
        world.get("b2", f"/v1/repayments/{missing}"),
        missing,
    )


def test_idempotency_keys_do_not_cross_partners(world: World) -> None:
    """h2 sending h1's key with h1's exact request gets no replay of h1's object."""
    s = build_scene(world)
    key = "shared-key-1"
    body = {"amount_fen": 300, "his_order_id": "KEY-O", "description": "k"}
    first = world.client.post(
        f"/v1/visits/{s.open_visit}/authorizations", json=body, headers=world.headers("h1", key)
    )
    assert first.status_code == 201, first.text
    foreign = world.client.post(
        f"/v1/visits/{s.open_visit}/authorizations", json=body, headers=world.headers("h2", key)
    )
    missing = _made_up("vis")
    probe = world.client.post(
        f"/v1/visits/{missing}/authorizations",
        json=body,
        headers=world.headers("h2", "another-key"),
    )
    assert_same_as_missing(foreign, s.open_visit, probe, missing)
