"""Claims on the risk-compensation fund (CONTRACT.md §4): the share of the unpaid
principal rounded down, capped by the balance, once per loan, only on a defaulted
loan of the claiming bank; racing claims on PostgreSQL never pay twice or overdraw."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from models.loans.tables import LoanStatus
from tests.conftest import World, make_world
from tests.live import live_server
from tests.loans.fund_world import fund_books_agree, make_loan
from tests.racing import race_posts

CLAIMS = "/v1/risk-compensation/claims"


def fund(world: World, amount: int) -> None:
    r = world.post(
        "op", "/v1/risk-compensation/fund/deposits", {"amount_fen": amount, "reference": "D"}
    )
    assert r.status_code == 201, r.text


def claim(world: World, loan_id: str, who: str = "b1", key: str | None = None) -> Any:
    return world.post(who, CLAIMS, {"loan_id": loan_id}, key)


def balance(world: World) -> int:
    return int(world.get("op", "/v1/risk-compensation/fund").json()["balance_fen"])


def test_the_share_of_the_unpaid_principal_rounded_down(world: World) -> None:
    fund(world, 10_000_000)
    loan_id = make_loan(
        world, principal_fen=2_000_000, outstanding_fen=1_234_567, status=LoanStatus.DEFAULTED
    )
    r = claim(world, loan_id)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("loan_id", "amount_fen")} == {
        "loan_id": loan_id,
        "amount_fen": 617_283,  # floor(1,234,567 × 50%)
    }
    assert body["claim_id"].startswith("clm_") and body["bank_code"] == "B1"
    assert balance(world) == 10_000_000 - 617_283
    assert fund_books_agree(world.settings)


def test_the_claim_is_capped_by_the_balance_and_an_empty_fund_pays_nothing(
    world: World,
) -> None:
    fund(world, 300_000)
    first = make_loan(world, outstanding_fen=1_000_000, status=LoanStatus.DEFAULTED)
    second = make_loan(world, outstanding_fen=1_000_000, status=LoanStatus.DEFAULTED)
    assert claim(world, first).json()["amount_fen"] == 300_000  # not 500,000
    assert balance(world) == 0
    r = claim(world, second)
    assert r.status_code == 201 and r.json()["amount_fen"] == 0, r.text
    assert claim(world, second).json()["code"] == "already_claimed"  # spent, even at 0
    totals = world.get("op", "/v1/risk-compensation/fund").json()
    assert (totals["claimed_fen"], totals["balance_fen"]) == (300_000, 0)
    assert fund_books_agree(world.settings)


def test_once_per_loan_and_only_when_defaulted(world: World) -> None:
    fund(world, 10_000_000)
    for status in (LoanStatus.APPROVED, LoanStatus.ACTIVE, LoanStatus.OVERDUE, LoanStatus.CLOSED):
        r = claim(world, make_loan(world, status=status))
        assert r.status_code == 409 and r.json()["code"] == "loan_not_defaulted", status
    loan_id = make_loan(world, outstanding_fen=100_001, status=LoanStatus.DEFAULTED)
    first = claim(world, loan_id, key="claim-1")
    assert first.status_code == 201, first.text
    replay = claim(world, loan_id, key="claim-1")
    assert replay.status_code == 201 and replay.json() == first.json()
    again = claim(world, loan_id)
    assert again.status_code == 409 and again.json()["code"] == "already_claimed"
    assert first.json()["claim_id"] in again.json()["detail"]
    assert balance(world) == 10_000_000 - 50_000
    assert fund_books_agree(world.settings)


def test_another_banks_loan_is_not_found_and_only_banks_claim(world: World) -> None:
    fund(world, 10_000_000)
    loan_id = make_loan(world, bank="b1", status=LoanStatus.DEFAULTED)
    foreign = claim(world, loan_id, who="b2")
    unknown = claim(world, "loan_nothing")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == "not_found" and loan_id in foreign.json()["detail"]
    for who in ("op", "ch", "h1"):
        assert claim(world, loan_id, who=who).status_code == 403
    assert world.post("b1", CLAIMS, {"loan_id": loan_id, "x": 1}).status_code == 422
    assert world.post("b1", CLAIMS, {}).status_code == 422
    assert claim(world, loan_id).status_code == 201  # still claimable by its own bank


def test_claims_are_listed_to_operators_all_and_to_banks_their_own(world: World) -> None:
    fund(world, 10_000_000)
    mine = [make_loan(world, bank="b1", status=LoanStatus.DEFAULTED) for _ in range(3)]
    theirs = make_loan(world, bank="b2", status=LoanStatus.DEFAULTED)
    ids = [claim(world, loan_id).json()["claim_id"] for loan_id in mine]
    their_claim = claim(world, theirs, who="b2").json()["claim_id"]

    everything = world.get("op", f"{CLAIMS}?limit=100").json()
    assert [c["claim_id"] for c in everything["data"]] == [their_claim, *reversed(ids)]
    page = world.get("b1", f"{CLAIMS}?limit=2").json()
    assert [c["claim_id"] for c in page["data"]] == [ids[2], ids[1]] and page["has_more"]
    rest = world.get("b1", f"{CLAIMS}?limit=2&cursor={page['next_cursor']}").json()
    assert [c["claim_id"] for c in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert rest["next_cursor"] is None
    assert [c["claim_id"] for c in world.get("b2", CLAIMS).json()["data"]] == [their_claim]
    assert world.get("ch", CLAIMS).status_code == 403
    assert world.get("op", f"{CLAIMS}?limit=0").status_code == 422


# --------------------------------------------------------------------------
# Races, PostgreSQL over real HTTP

RACERS = 16


def _race(base: str, calls: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST every claim at once."""
    return race_posts(base, [(CLAIMS, {"loan_id": loan}, headers) for loan, headers in calls])


@pytest.mark.pg
def test_racing_claims_on_one_loan_pay_once(pg_settings: Settings) -> None:
    world = make_world(pg_settings)
    with world.client:
        fund(world, 10_000_000)
        loan_id = make_loan(world, outstanding_fen=1_000_000, status=LoanStatus.DEFAULTED)
        with live_server(pg_settings) as base:
            calls = [(loan_id, world.headers("b1", uuid.uuid4().hex)) for _ in range(RACERS)]
            responses = _race(base, calls)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (RACERS - 1), [r.text for r in responses]
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_claimed"}
        assert balance(world) == 10_000_000 - 500_000
        assert fund_books_agree(pg_settings)


@pytest.mark.pg
def test_racing_claims_on_many_loans_never_overdraw_the_fund(pg_settings: Settings) -> None:
    world = make_world(pg_settings)
    with world.client:
        fund(world, 1_000_000)  # enough for two and a half shares of 400,000
        loans = [
            make_loan(world, outstanding_fen=800_000, status=LoanStatus.DEFAULTED)
            for _ in range(RACERS)
        ]
        with live_server(pg_settings) as base:
            calls = [(loan_id, world.headers("b1", uuid.uuid4().hex)) for loan_id in loans]
            responses = _race(base, calls)
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
        paid = sorted((r.json()["amount_fen"] for r in responses), reverse=True)
        assert paid == [400_000, 400_000, 200_000] + [0] * (RACERS - 3)
        assert balance(world) == 0
        assert fund_books_agree(pg_settings)
