"""Every loans route (CONTRACT.md §4) to foreign partners of every kind.

CONTRACT.md §1 "Authentication and scope": an endpoint not open to the caller's
kind is a 403 `forbidden`; an object the caller may not see is a 404
`not_found`, exactly as if it did not exist. §4's table names who may call what
and see what.

The scene, on the real application path: firm FIRM applies through channel
`ch` consenting to banks B1 and B3; b3 declines, b1 offers, the firm accepts and
b1 pays the loan out. Firm FIRM2 applies consenting to B1 alone and its
application stays open. The late scene carries on: b1 reports the first
instalment, the 1st of the next month grants its subsidy, the second instalment
is never paid and the loan defaults; the operator funds the fund.

Not party to any of it: bank b2 (it has the same product, but neither consent
names it), channel ch2, hospitals h1 and h2. Bank b3 was offered FIRM's
application and may read it, but is no party to the loan. Every refusal of a
partner of an allowed kind is compared with the 404 for a made-up id
(`tests.test_foreign_objects.assert_same_as_missing`) and leaves the scene as
it was; every route has a positive control for its owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub import context
from hub.core import clock
from hub.loans import delinquency, subsidies
from tests.loans.application_stage import (
    FIRM,
    FIRM2,
    Stage,
    add_partner,
    consent,
    hooks_on,
    stage,
)
from tests.test_foreign_objects import _made_up, assert_same_as_missing

__all__ = ["stage"]

AMOUNT, RATE = 1_200_000, 600  # the loan: 12 instalments of 103,280 fen, 6,000 interest first
REPAID_AT = datetime(2026, 4, 2, 2, 0, tzinfo=UTC)  # the first due date, 10:00 in Shanghai
MAY_1ST = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
DEFAULTED_AT = datetime(2026, 8, 10, 2, 0, tzinfo=UTC)  # the 2nd instalment 100 days late


@dataclass
class Scene:
    application: str  # FIRM's, accepted
    offer: str  # b1's offer on it, accepted
    loan: str  # its loan, paid out by b1
    open_application: str  # FIRM2's, open, offered to b1 only
    late: bool


def _ok(r: Any, status: int) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def build_scene(stage: Stage, *, late: bool = False) -> Scene:
    w = stage.world
    add_partner(w, "ch2", "channel")
    add_partner(w, "b3", "bank")
    add_partner(w, "op2", "operator")
    hooks_on(w.settings)  # the new partners' events are recorded too
    for firm in (FIRM, FIRM2):
        stage.pin(firm)
    for bank in ("b1", "b2", "b3"):
        assert stage.product(bank, "P1").status_code == 201
    application = stage.apply(FIRM, consent=consent(banks=["B1", "B3"]))
    assert stage.profile(application) == "offered"
    _ok(stage.decline("b3", application), 201)
    offer = _ok(stage.offer("b1", application, amount_fen=AMOUNT, annual_rate_bps=RATE), 201)
    loan = _ok(w.post("ch", f"/v1/offers/{offer['offer_id']}/accept", {}), 201)["loan_id"]
    paid_out = {"amount_fen": AMOUNT, "bank_txn_id": "PAY", "disbursed_at": clock.now().isoformat()}
    _ok(w.post("b1", f"/v1/loans/{loan}/disbursements", paid_out), 201)
    open_application = stage.apply(FIRM2, consent=consent(banks=["B1"]))
    assert stage.profile(open_application) == "offered"
    if late:
        clock.set_now(REPAID_AT)
        first = _ok(w.get("b1", f"/v1/loans/{loan}"), 200)["schedule"][0]
        due = first["principal_fen"] + first["interest_fen"]
        repaid = {"amount_fen": due, "bank_txn_id": "R1", "paid_at": REPAID_AT.isoformat()}
        _ok(w.post("b1", f"/v1/loans/{loan}/repayments", repaid), 201)
        clock.set_now(MAY_1ST)
        ctx = context.hub_context()
        assert subsidies.grant(ctx, subsidies.previous_month(subsidies.today(ctx))) == 1
        clock.set_now(DEFAULTED_AT)
        assert delinquency.run_day(ctx)["defaulted"] == 1
        _ok(w.post("op", "/v1/risk-compensation/fund/deposits", _deposit("F-1")), 201)
    return Scene(application, offer["offer_id"], loan, open_application, late)


def _deposit(reference: str, amount: int = 500_000) -> dict[str, Any]:
    return {"amount_fen": amount, "reference": reference}


def snapshot(stage: Stage, s: Scene) -> dict[str, Any]:
    """Everything the owners and the operator see of the scene, and every event."""
    w = stage.world
    return {
        "application": _ok(w.get("ch", f"/v1/loan-applications/{s.application}"), 200),
        "open": _ok(w.get("ch", f"/v1/loan-applications/{s.open_application}"), 200),
        "open_to_b1": _ok(w.get("b1", f"/v1/loan-applications/{s.open_application}"), 200),
        "awaiting_b1": _ok(w.get("b1", "/v1/loan-applications?status=open"), 200),
        "loan": _ok(w.get("b1", f"/v1/loans/{s.loan}"), 200),
        "products": _ok(w.get("ch", "/v1/loan-products"), 200),
        "trial": _ok(w.get("op", "/v1/ledger/trial-balance"), 200),
        "fund": _ok(w.get("op", "/v1/risk-compensation/fund"), 200),
        "claims": _ok(w.get("op", "/v1/risk-compensation/claims"), 200),
        "subsidies": _ok(w.get("op", "/v1/subsidies"), 200),
        "events": len(stage.events()),
    }


def refused_like_missing(
    stage: Stage, who: str, method: str, path: str, real: str, body: Any = None
) -> None:
    """`who` asking `path` (naming `real`) gets the 404 a made-up id gets. The id is
    in the path, or in the body when `body` names it."""
    w = stage.world
    missing = _made_up(real.split("_", 1)[0])

    def ask(object_id: str) -> Any:
        url = path.replace(real, object_id)
        if method == "GET":
            return w.get(who, url)
        sent = None if body is None else _swap(body, real, object_id)
        return w.post(who, url, sent if sent is not None else {})

    assert_same_as_missing(ask(real), real, ask(missing), missing)


def _swap(body: dict[str, Any], real: str, other: str) -> dict[str, Any]:
    return {k: other if v == real else v for k, v in body.items()}


# --- the positive control and who heard of it ---------------------------------------------


def test_the_scene_is_the_owners_and_no_one_else_heard_of_it(stage: Stage) -> None:
    s = build_scene(stage, late=True)
    w = stage.world
    loan = _ok(w.get("ch", f"/v1/loans/{s.loan}"), 200)
    assert loan == _ok(w.get("b1", f"/v1/loans/{s.loan}"), 200)
    assert (loan["status"], loan["bank_code"], loan["firm"]["uscc"]) == ("defaulted", "B1", FIRM)
    assert _ok(w.get("b3", f"/v1/loan-applications/{s.application}"), 200)["offers"] == []
    recipients = {code for code, _, _ in stage.events()}
    assert recipients == {"B1", "B3", "CH"}  # b2, ch2 and the hospitals heard nothing


# --- products ----------------------------------------------------------------------------


def test_products_a_bank_sees_and_changes_only_its_own(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    assert _ok(stage.product("b1", "ONLY-B1", name="b1 only"), 201)["bank_code"] == "B1"
    before = snapshot(stage, s)
    # b2 publishing under b1's codes makes or changes products of its own, never b1's:
    # a code only b1 has is a new product (201), not a replacement revealing b1's
    assert _ok(stage.product("b2", "ONLY-B1", min_score=999), 201)["bank_code"] == "B2"
    assert _ok(stage.product("b2", "P1", min_score=998), 200)["bank_code"] == "B2"
    mine = _ok(w.get("b1", "/v1/loan-products"), 200)["data"]
    assert {(p["bank_code"], p["code"], p["min_score"]) for p in mine} == {
        ("B1", "P1", 600),
        ("B1", "ONLY-B1", 600),
    }
    theirs = _ok(w.get("b2", "/v1/loan-products"), 200)["data"]
    assert {(p["bank_code"], p["code"], p["min_score"]) for p in theirs} == {
        ("B2", "P1", 998),
        ("B2", "ONLY-B1", 999),
    }
    assert {p["bank_code"] for p in _ok(w.get("b3", "/v1/loan-products"), 200)["data"]} == {"B3"}
    # every channel sees every active bank's products (the contract: "channel (all)")
    for channel in ("ch", "ch2"):
        listed = _ok(w.get(channel, "/v1/loan-products"), 200)["data"]
        assert {(p["bank_code"], p["code"]) for p in listed} == {
            ("B1", "P1"),
            ("B1", "ONLY-B1"),
            ("B2", "P1"),
            ("B2", "ONLY-B1"),
            ("B3", "P1"),
        }
    after = snapshot(stage, s)
    assert {k: v for k, v in after.items() if k != "products"} == {
        k: v for k, v in before.items() if k != "products"
    }


# --- applications ------------------------------------------------------------------------


def test_applications_are_invisible_to_other_channels_and_banks_not_offered_them(
    stage: Stage,
) -> None:
    s = build_scene(stage)
    w = stage.world
    before = snapshot(stage, s)
    for application in (s.application, s.open_application):
        path = f"/v1/loan-applications/{application}"
        for who in ("ch2", "b2"):
            refused_like_missing(stage, who, "GET", path, application)
    # b3 was offered FIRM's application (not FIRM2's): it reads the one, not the other
    seen = _ok(w.get("b3", f"/v1/loan-applications/{s.application}"), 200)
    assert seen["offers"] == [] and seen["profile"]["grade"] == "A"  # b1's offer is b1's
    refused_like_missing(
        stage, "b3", "GET", f"/v1/loan-applications/{s.open_application}", s.open_application
    )
    assert snapshot(stage, s) == before
    # positive control: the channel sees every offer, b1 its own and the profile
    ours = _ok(w.get("ch", f"/v1/loan-applications/{s.application}"), 200)
    assert [o["offer_id"] for o in ours["offers"]] == [s.offer] and "profile" not in ours
    b1 = _ok(w.get("b1", f"/v1/loan-applications/{s.application}"), 200)
    assert [o["offer_id"] for o in b1["offers"]] == [s.offer] and b1["status"] == "accepted"


def test_a_bank_lists_only_the_applications_awaiting_its_own_answer(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    empty = {"data": [], "has_more": False, "next_cursor": None}
    for bank in ("b2", "b3"):  # b3 answered FIRM's and was never offered FIRM2's
        assert _ok(w.get(bank, "/v1/loan-applications?status=open"), 200) == empty
    listed = _ok(w.get("b1", "/v1/loan-applications?status=open"), 200)
    assert [a["application_id"] for a in listed["data"]] == [s.open_application]


def test_offers_and_declines_on_applications_not_offered_to_the_bank(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    before = snapshot(stage, s)
    fits = {
        "product_code": "P1",
        "amount_fen": 1_000_000,
        "annual_rate_bps": 500,
        "term_months": 12,
    }
    asks = [
        fits,
        {**fits, "amount_fen": 10**11},  # above the request: 404, not a 422 about the request
        {**fits, "product_code": "NONE"},  # no such product: 404, not unknown_product
    ]
    for application in (s.application, s.open_application):
        for bank in ("b2", "b3") if application == s.open_application else ("b2",):
            for body in asks:
                path = f"/v1/loan-applications/{application}/offers"
                refused_like_missing(stage, bank, "POST", path, application, body)
            path = f"/v1/loan-applications/{application}/declines"
            refused_like_missing(stage, bank, "POST", path, application, {"reason": "no"})
    assert snapshot(stage, s) == before
    # positive control: b1 may answer the open application, b3 is told it answered already
    answered = stage.decline("b3", s.application)
    assert answered.status_code == 409 and answered.json()["code"] == "already_answered"
    made = _ok(w.post("b1", f"/v1/loan-applications/{s.open_application}/offers", fits), 201)
    assert made["bank_code"] == "B1" and made["status"] == "open"


def test_declining_is_the_banks_own(stage: Stage) -> None:
    s = build_scene(stage)
    before = snapshot(stage, s)
    path = f"/v1/loan-applications/{s.open_application}/declines"
    refused_like_missing(stage, "b2", "POST", path, s.open_application, {"reason": "no"})
    assert snapshot(stage, s) == before
    _ok(stage.decline("b1", s.open_application), 201)  # positive control
    declined = _ok(stage.get("ch", s.open_application), 200)
    assert (declined["status"], declined["decline_reason"]) == ("declined", "all_banks_declined")


def test_another_channel_cannot_accept_an_offer(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    fits = {"product_code": "P1", "amount_fen": 900_000, "annual_rate_bps": 500, "term_months": 12}
    fresh = _ok(w.post("b1", f"/v1/loan-applications/{s.open_application}/offers", fits), 201)
    before = snapshot(stage, s)
    for offer in (s.offer, fresh["offer_id"]):  # taken already (409 to ch), and open
        refused_like_missing(stage, "ch2", "POST", f"/v1/offers/{offer}/accept", offer, {})
    assert snapshot(stage, s) == before
    taken = w.post("ch", f"/v1/offers/{s.offer}/accept", {})
    assert taken.status_code == 409 and taken.json()["code"] == "application_not_open"
    loan = _ok(w.post("ch", f"/v1/offers/{fresh['offer_id']}/accept", {}), 201)  # positive
    assert loan["status"] == "approved"


# --- loans -------------------------------------------------------------------------------


def test_a_loan_is_its_banks_and_its_channels_only(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    for who in ("b2", "b3", "ch2"):  # b3 offered nothing, but was offered the application
        refused_like_missing(stage, who, "GET", f"/v1/loans/{s.loan}", s.loan)
    assert _ok(w.get("b1", f"/v1/loans/{s.loan}"), 200) == _ok(
        w.get("ch", f"/v1/loans/{s.loan}"), 200
    )


def test_only_the_loans_bank_reports_its_payout(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    # an approved loan not paid out yet, and the scene's, paid out under "PAY"
    fits = {"product_code": "P1", "amount_fen": 900_000, "annual_rate_bps": 500, "term_months": 12}
    offer = _ok(w.post("b1", f"/v1/loan-applications/{s.open_application}/offers", fits), 201)
    approved = _ok(w.post("ch", f"/v1/offers/{offer['offer_id']}/accept", {}), 201)["loan_id"]
    before = snapshot(stage, s)
    now = clock.now().isoformat()
    for bank in ("b2", "b3"):
        for loan, amount in ((approved, 900_000), (s.loan, AMOUNT)):
            for txn in ("PAY", f"{bank}-PAY"):  # b1's reference is no replay for them
                body = {"amount_fen": amount, "bank_txn_id": txn, "disbursed_at": now}
                path = f"/v1/loans/{loan}/disbursements"
                refused_like_missing(stage, bank, "POST", path, loan, body)
            wrong = {"amount_fen": 1, "bank_txn_id": "X", "disbursed_at": now}  # 422 to b1
            refused_like_missing(
                stage, bank, "POST", f"/v1/loans/{loan}/disbursements", loan, wrong
            )
    assert snapshot(stage, s) == before
    assert _ok(w.get("b1", f"/v1/loans/{approved}"), 200)["status"] == "approved"
    body = {"amount_fen": 900_000, "bank_txn_id": "PAY-2", "disbursed_at": now}
    paid = _ok(w.post("b1", f"/v1/loans/{approved}/disbursements", body), 201)  # positive
    assert paid["status"] == "active" and len(paid["schedule"]) == 12


def test_only_the_loans_bank_reports_its_repayments(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    now = clock.now().isoformat()
    first = _ok(w.post("b1", f"/v1/loans/{s.loan}/repayments", _repaid("R1", 5_000, now)), 201)
    before = snapshot(stage, s)
    path = f"/v1/loans/{s.loan}/repayments"
    for bank in ("b2", "b3"):
        refused_like_missing(stage, bank, "POST", path, s.loan, _repaid(f"{bank}-R", 5_000, now))
        # b1's own reference and request: no replay of b1's repayment
        refused_like_missing(stage, bank, "POST", path, s.loan, _repaid("R1", 5_000, now))
        # more than the payoff: 404, not an `overpayment` revealing what is owed
        refused_like_missing(stage, bank, "POST", path, s.loan, _repaid(f"{bank}-O", 10**11, now))
    assert snapshot(stage, s) == before
    replay = w.post("b1", path, _repaid("R1", 5_000, now))  # positive control: b1's replay
    assert replay.status_code == 201 and replay.json() == first
    over = w.post("b1", path, _repaid("R2", 10**11, now))
    assert over.status_code == 422 and over.json()["code"] == "overpayment"


def _repaid(txn: str, amount: int, paid_at: str) -> dict[str, Any]:
    return {"amount_fen": amount, "bank_txn_id": txn, "paid_at": paid_at}


# --- the fund ----------------------------------------------------------------------------


def test_claims_on_another_banks_loan(stage: Stage) -> None:
    s = build_scene(stage, late=True)
    w = stage.world
    before = snapshot(stage, s)
    for bank in ("b2", "b3"):
        refused_like_missing(
            stage, bank, "POST", "/v1/risk-compensation/claims", s.loan, {"loan_id": s.loan}
        )
    assert snapshot(stage, s) == before
    made = _ok(w.post("b1", "/v1/risk-compensation/claims", {"loan_id": s.loan}), 201)
    assert made["loan_id"] == s.loan and made["amount_fen"] > 0  # positive control
    # claimed now: still a 404 to the others, not their `already_claimed`
    for bank in ("b2", "b3"):
        refused_like_missing(
            stage, bank, "POST", "/v1/risk-compensation/claims", s.loan, {"loan_id": s.loan}
        )
    again = w.post("b1", "/v1/risk-compensation/claims", {"loan_id": s.loan})
    assert again.status_code == 409 and again.json()["code"] == "already_claimed"
    # the lists: the operator and b1 see the claim, the other banks nothing
    empty = {"data": [], "has_more": False, "next_cursor": None}
    for bank in ("b2", "b3"):
        assert _ok(w.get(bank, "/v1/risk-compensation/claims"), 200) == empty
    for who in ("op", "b1"):
        listed = _ok(w.get(who, "/v1/risk-compensation/claims"), 200)["data"]
        assert [c["claim_id"] for c in listed] == [made["claim_id"]]


def test_a_claim_on_another_banks_loan_not_defaulted_is_404_not_409(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    before = snapshot(stage, s)
    refused_like_missing(
        stage, "b2", "POST", "/v1/risk-compensation/claims", s.loan, {"loan_id": s.loan}
    )
    assert snapshot(stage, s) == before
    mine = w.post("b1", "/v1/risk-compensation/claims", {"loan_id": s.loan})
    assert mine.status_code == 409 and mine.json()["code"] == "loan_not_defaulted"


def test_deposit_references_are_each_operators_own(stage: Stage) -> None:
    s = build_scene(stage, late=True)
    w = stage.world
    fund = _ok(w.get("op", "/v1/risk-compensation/fund"), 200)
    # op2 using op's reference makes a deposit of its own: no replay, no duplicate_reference
    theirs = _ok(w.post("op2", "/v1/risk-compensation/fund/deposits", _deposit("F-1", 7)), 201)
    assert theirs["balance_fen"] == fund["balance_fen"] + 7
    replay = _ok(w.post("op", "/v1/risk-compensation/fund/deposits", _deposit("F-1")), 201)
    assert replay["balance_fen"] == 500_000  # op's own, as it answered then
    clash = w.post("op", "/v1/risk-compensation/fund/deposits", _deposit("F-1", 8))
    assert clash.status_code == 409 and clash.json()["code"] == "duplicate_reference"
    assert s.late


# --- statistics and subsidies --------------------------------------------------------------


def test_statistics_a_bank_sees_its_own_row(stage: Stage) -> None:
    build_scene(stage)
    w = stage.world
    rows = {
        who: _ok(w.get(who, "/v1/loan-statistics?month=2026-03"), 200)["data"]
        for who in ("op", "b1", "b2", "b3")
    }
    assert [r["bank_code"] for r in rows["op"]] == ["B1", "B2", "B3"]
    by_code = {r["bank_code"]: r for r in rows["op"]}
    assert (by_code["B1"]["offered"], by_code["B2"]["offered"], by_code["B3"]["offered"]) == (
        2,
        0,
        1,
    )
    for who, code in (("b1", "B1"), ("b2", "B2"), ("b3", "B3")):
        assert rows[who] == [by_code[code]]


def test_subsidies_a_channel_sees_its_firms_only(stage: Stage) -> None:
    s = build_scene(stage, late=True)
    w = stage.world
    empty = {"data": [], "has_more": False, "next_cursor": None}
    assert _ok(w.get("ch2", "/v1/subsidies"), 200) == empty
    ours = _ok(w.get("ch", "/v1/subsidies"), 200)["data"]
    assert [(x["loan_id"], x["month"], x["amount_fen"]) for x in ours] == [
        (s.loan, "2026-04", 1_000)
    ]
    assert _ok(w.get("op", "/v1/subsidies"), 200)["data"] == ours


# --- kinds the routes are not open to ---------------------------------------------------------


def _routes(s: Scene) -> list[tuple[str, str, Any, set[str], str]]:
    """(method, path, body, kinds open to, the id in it) for every §4 route."""
    product = {
        "name": "x",
        "min_score": 1,
        "max_amount_fen": 10,
        "max_term_months": 1,
        "annual_rate_bps_min": 1,
        "annual_rate_bps_max": 2,
        "industries": None,
    }
    offer = {"product_code": "P1", "amount_fen": 1_000, "annual_rate_bps": 500, "term_months": 12}
    now = clock.now().isoformat()
    apply = {
        "uscc": FIRM2,
        "firm_name": "x",
        "amount_fen": 1_000,
        "term_months": 12,
        "purpose": "x",
        "consent": consent(),
    }
    bank, channel, operator = "bank", "channel", "operator"
    app, loan = s.open_application, s.loan
    return [
        ("PUT", "/v1/loan-products/P1", product, {bank}, "P1"),
        ("GET", "/v1/loan-products", None, {bank, channel}, ""),
        ("POST", "/v1/loan-applications", apply, {channel}, ""),
        ("GET", f"/v1/loan-applications/{app}", None, {channel, bank}, app),
        ("GET", "/v1/loan-applications?status=open", None, {bank}, ""),
        ("POST", f"/v1/loan-applications/{app}/offers", offer, {bank}, app),
        ("POST", f"/v1/loan-applications/{app}/declines", {"reason": "x"}, {bank}, app),
        ("POST", f"/v1/offers/{s.offer}/accept", {}, {channel}, s.offer),
        (
            "POST",
            f"/v1/loans/{loan}/disbursements",
            {"amount_fen": AMOUNT, "bank_txn_id": "PAY", "disbursed_at": now},
            {bank},
            loan,
        ),
        ("POST", f"/v1/loans/{loan}/repayments", _repaid("X", 1, now), {bank}, loan),
        ("GET", f"/v1/loans/{loan}", None, {bank, channel}, loan),
        ("POST", "/v1/risk-compensation/claims", {"loan_id": loan}, {bank}, ""),
        ("GET", "/v1/risk-compensation/claims", None, {operator, bank}, ""),
        ("POST", "/v1/risk-compensation/fund/deposits", _deposit("K"), {operator}, ""),
        ("GET", "/v1/risk-compensation/fund", None, {operator, bank}, ""),
        ("GET", "/v1/loan-statistics?month=2026-03", None, {operator, bank}, ""),
        ("GET", "/v1/subsidies", None, {operator, channel}, ""),
    ]


KIND_OF = {"h1": "hospital", "h2": "hospital", "b2": "bank", "ch2": "channel", "op": "operator"}


def test_every_route_is_403_to_the_kinds_it_is_not_open_to(stage: Stage) -> None:
    s = build_scene(stage)
    w = stage.world
    before = snapshot(stage, s)
    checked = 0
    for method, path, body, kinds, real in _routes(s):
        for who, kind in KIND_OF.items():
            if kind in kinds:
                continue
            if method == "GET":
                r = w.get(who, path)
            elif method == "PUT":
                r = w.client.put(path, json=body, headers=w.headers(who))
            else:
                r = w.post(who, path, body)
            assert r.status_code == 403, (who, method, path, r.text)
            assert r.json()["code"] == "forbidden"
            if real:  # a made-up id gets the very same answer
                missing = _made_up(real.split("_", 1)[0]) if "_" in real else "NO-SUCH"
                probe_path = path.replace(real, missing)
                if method == "GET":
                    probe = w.get(who, probe_path)
                elif method == "PUT":
                    probe = w.client.put(probe_path, json=body, headers=w.headers(who))
                else:
                    probe = w.post(who, probe_path, body)
                a, b = r.json(), probe.json()
                a["detail"] = a["detail"].replace(real, "{id}")
                b["detail"] = b["detail"].replace(missing, "{id}")
                assert (probe.status_code, a) == (403, b)
            checked += 1
    assert checked == 61
    assert snapshot(stage, s) == before
