"""Disbursement (CONTRACT.md §4 Loans) through the real app, on SQLite and PostgreSQL:
the payout fixes the annuity schedule — the contract's rounding, the last
instalment absorbing the remainder, due dates on month ends — once, for the
offered amount; the same bank_txn_id replays; the books agree."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from hub.core import clock
from hub.loans.schedule import annuity_schedule
from hub.settings import Settings
from tests.books import books_agree
from tests.conftest import World, make_world
from tests.live import live_server
from tests.loans.factory import approved_loan
from tests.racing import race_posts

# 12:00 on 31 January 2026 in Shanghai: due dates run through the month ends.
T0 = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)


def payout(world: World, loan_id: str, amount: int, txn: str = "PAY1", at: Any = None) -> Any:
    when = (at or clock.now()).isoformat()
    body = {"amount_fen": amount, "bank_txn_id": txn, "disbursed_at": when}
    return world.post("b1", f"/v1/loans/{loan_id}/disbursements", body)


def accounts(world: World) -> dict[str, int]:
    tb = world.get("op", "/v1/ledger/trial-balance").json()
    assert tb["total_fen"] == 0
    return {a["account"]: a["balance_fen"] for a in tb["accounts"]}


def test_the_payout_fixes_the_annuity_schedule_and_the_loan_is_active(world: World) -> None:
    clock.set_now(T0)
    loan_id = approved_loan(world, amount_fen=1_200_000, annual_rate_bps=600, term_months=12)
    r = payout(world, loan_id, 1_200_000)
    assert r.status_code == 201, r.text
    loan = r.json()
    assert loan == world.get("b1", f"/v1/loans/{loan_id}").json()  # the loan as GET returns it
    assert loan["status"] == "active" and loan["outstanding_principal_fen"] == 1_200_000
    schedule = loan["schedule"]
    # Monthly rate 600/120000 = 0.5%: payment 1,200,000 × 0.005 / (1 - 1.005^-12)
    # = 103,279.72 → 103,280 fen; interest on the outstanding principal, half up.
    assert schedule[0] == {
        "n": 1,
        "due_date": "2026-02-28",  # 31 January: the month's last day
        "principal_fen": 97_280,
        "interest_fen": 6_000,
        "paid_fen": 0,
    }
    assert schedule[1]["interest_fen"] == 5_514  # 1,102,720 × 0.005 = 5,513.6
    assert [s["due_date"] for s in schedule[1:4]] == ["2026-03-31", "2026-04-30", "2026-05-31"]
    assert schedule[-1]["due_date"] == "2027-01-31"
    assert all(s["principal_fen"] + s["interest_fen"] == 103_280 for s in schedule[:-1])
    assert sum(s["principal_fen"] for s in schedule) == 1_200_000  # the last one absorbs
    assert (schedule[-1]["principal_fen"], schedule[-1]["interest_fen"]) == (102_764, 514)
    assert accounts(world)[f"loan:{loan_id}:principal"] == 1_200_000
    assert accounts(world)[f"bank:{world.ids['b1']}:lent"] == -1_200_000
    assert books_agree(world.settings)


@pytest.mark.parametrize(
    ("amount", "bps", "term", "rows"),
    [
        (100, 600, 1, [(100, 1)]),  # 100 × 0.005 = 0.5 fen of interest: half up is 1
        (1_000, 0, 3, [(333, 0), (333, 0), (334, 0)]),  # the last absorbs the remainder
        (1_001, 0, 2, [(501, 0), (500, 0)]),  # 500.5 → 501 each, the last takes what is left
    ],
)
def test_rounding_is_half_up_and_the_last_instalment_absorbs(
    world: World, amount: int, bps: int, term: int, rows: list[tuple[int, int]]
) -> None:
    clock.set_now(T0)
    loan_id = approved_loan(world, amount_fen=amount, annual_rate_bps=bps, term_months=term)
    schedule = payout(world, loan_id, amount).json()["schedule"]
    assert [(s["principal_fen"], s["interest_fen"]) for s in schedule] == rows
    assert books_agree(world.settings)


def test_due_dates_follow_the_business_date_of_the_payout(world: World) -> None:
    # 17:30 UTC on 30 March is 01:30 on 31 March in Shanghai: due on the 31st or the
    # month's last day; and a payout on 31 January 2028 is due on 29 February.
    clock.set_now(datetime(2028, 2, 1, tzinfo=UTC))
    march = approved_loan(world, amount_fen=600_000, term_months=6, now=T0)
    at = datetime(2026, 3, 30, 17, 30, tzinfo=UTC)
    due = [s["due_date"] for s in payout(world, march, 600_000, "M", at).json()["schedule"]]
    assert due == [
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
    ]
    leap = approved_loan(world, amount_fen=300_000, term_months=3, now=T0)
    at = datetime(2028, 1, 31, 2, 0, tzinfo=UTC)
    due = [s["due_date"] for s in payout(world, leap, 300_000, "L", at).json()["schedule"]]
    assert due == ["2028-02-29", "2028-03-31", "2028-04-30"]
    expected = annuity_schedule(300_000, 600, 3, date(2028, 1, 31))
    got = world.get("ch", f"/v1/loans/{leap}").json()["schedule"]
    assert [(s["principal_fen"], s["interest_fen"]) for s in got] == [
        (i.principal_fen, i.interest_fen) for i in expected
    ]


def test_once_for_the_offered_amount_and_the_same_reference_replays(world: World) -> None:
    clock.set_now(T0)
    loan_id = approved_loan(world, amount_fen=500_000)
    wrong = payout(world, loan_id, 499_999)
    assert wrong.status_code == 422 and wrong.json()["code"] == "amount_not_offered"
    assert wrong.json()["errors"][0]["field"] == "amount_fen"
    first = payout(world, loan_id, 500_000, "PAY1", T0)
    assert first.status_code == 201
    again = payout(world, loan_id, 500_000, "PAY1", T0)  # another Idempotency-Key
    assert (again.status_code, again.json()) == (201, first.json())
    clash = payout(world, loan_id, 500_000, "PAY1", T0 - timedelta(minutes=1))
    assert clash.status_code == 409 and clash.json()["code"] == "duplicate_reference"
    assert loan_id in clash.json()["detail"]
    second = payout(world, loan_id, 500_000, "PAY2", T0)
    assert second.status_code == 409 and second.json()["code"] == "already_disbursed"
    other = approved_loan(world, amount_fen=500_000)  # the bank's reference is its own
    reused = payout(world, other, 500_000, "PAY1", T0)
    assert reused.status_code == 409 and reused.json()["code"] == "duplicate_reference"
    assert accounts(world)[f"bank:{world.ids['b1']}:lent"] == -500_000  # paid out once
    assert books_agree(world.settings)


def test_bad_payouts_are_refused(world: World) -> None:
    clock.set_now(T0)
    loan_id = approved_loan(world, amount_fen=500_000)
    path = f"/v1/loans/{loan_id}/disbursements"
    future = payout(world, loan_id, 500_000, "F", T0 + timedelta(minutes=6))
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "disbursed_at"
    early = payout(world, loan_id, 500_000, "E", T0 - timedelta(seconds=1))  # before approval
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "disbursed_at"
    body = {"amount_fen": 500_000, "bank_txn_id": "X", "disbursed_at": T0.isoformat()}
    assert world.post("b2", path, body).status_code == 404  # another bank: as if none
    assert world.post("b1", "/v1/loans/loan_nope/disbursements", body).status_code == 404
    for who in ("ch", "h1", "op"):
        assert world.post(who, path, body).status_code == 403
    for bad in ({**body, "amount_fen": 1.5}, {**body, "extra": 1}, {**body, "disbursed_at": "x"}):
        assert world.post("b1", path, bad).status_code == 422
    naive = {**body, "disbursed_at": "2026-01-31T12:00:00"}
    assert world.post("b1", path, naive).status_code == 422
    assert world.get("b1", f"/v1/loans/{loan_id}").json()["status"] == "approved"
    assert books_agree(world.settings)


@pytest.mark.pg
def test_racing_payouts_pay_the_loan_out_once(pg_settings: Settings) -> None:
    clock.set_now(None)
    world = make_world(pg_settings)
    with world.client:
        loan_id = approved_loan(world, amount_fen=500_000, now=clock.now() - timedelta(hours=1))
        when = clock.now().isoformat()
        with live_server(pg_settings) as base:
            responses = race_posts(
                base,
                [
                    (
                        f"/v1/loans/{loan_id}/disbursements",
                        {"amount_fen": 500_000, "bank_txn_id": f"P{i}", "disbursed_at": when},
                        world.headers("b1", uuid.uuid4().hex),
                    )
                    for i in range(8)
                ],
            )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 7, statuses
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {
            "already_disbursed"
        }
        assert accounts(world)[f"bank:{world.ids['b1']}:lent"] == -500_000
        assert books_agree(pg_settings)


@pytest.mark.pg
def test_racing_payouts_of_two_loans_under_one_reference(pg_settings: Settings) -> None:
    clock.set_now(None)
    world = make_world(pg_settings)
    with world.client:
        an_hour_ago = clock.now() - timedelta(hours=1)
        loans = [approved_loan(world, amount_fen=500_000, now=an_hour_ago) for _ in range(2)]
        when = clock.now().isoformat()
        body = {"amount_fen": 500_000, "bank_txn_id": "SAME", "disbursed_at": when}
        with live_server(pg_settings) as base:
            responses = race_posts(
                base,
                [
                    (f"/v1/loans/{loan_id}/disbursements", body, world.headers("b1", str(i)))
                    for i, loan_id in enumerate(loans)
                ],
            )
        assert sorted(r.status_code for r in responses) == [201, 409]
        clash = next(r.json() for r in responses if r.status_code == 409)
        paid = next(r.json()["loan_id"] for r in responses if r.status_code == 201)
        assert clash["code"] == "duplicate_reference" and paid in clash["detail"]
        assert books_agree(pg_settings)
