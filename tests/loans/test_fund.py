"""The risk-compensation fund (CONTRACT.md §4): deposits with partner references,
`GET /v1/risk-compensation/fund` from the tables, recoveries shared back in the
proportion the fund bore, and the ledger's fund:cash in step — SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hub.core import clock, ledger
from hub.core.db import get_engine, unit_of_work
from hub.loans import accounts, fund
from models.core.tables import LedgerPosting
from models.loans.tables import FundClaim, Loan, LoanStatus
from tests.conftest import World
from tests.loans.fund_world import fund_books_agree, make_loan

DEPOSITS = "/v1/risk-compensation/fund/deposits"


def deposit(world: World, amount: Any, reference: str, key: str | None = None) -> Any:
    return world.post("op", DEPOSITS, {"amount_fen": amount, "reference": reference}, key)


def fund_now(world: World, who: str = "op") -> dict[str, Any]:
    r = world.get(who, "/v1/risk-compensation/fund")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_deposits_add_up_and_a_reused_reference_replays_or_conflicts(world: World) -> None:
    first = deposit(world, 1_000_000, "GOV-2026-01")
    assert first.status_code == 201, first.text
    assert set(first.json()) == {"deposit_id", "balance_fen"}
    assert first.json()["balance_fen"] == 1_000_000
    second = deposit(world, 250_050, "GOV-2026-02")
    assert second.status_code == 201 and second.json()["balance_fen"] == 1_250_050

    # The same reference and amount under another key: the first answer, nothing added.
    again = deposit(world, 1_000_000, "GOV-2026-01")
    assert again.status_code == 201 and again.json() == first.json()
    other = deposit(world, 999, "GOV-2026-01")
    assert other.status_code == 409, other.text
    assert other.json()["code"] == "duplicate_reference"
    assert first.json()["deposit_id"] in other.json()["detail"]
    # The same Idempotency-Key replays the stored outcome, marked as a replay.
    keyed = deposit(world, 10, "GOV-2026-03", key="dep-key")
    replay = deposit(world, 10, "GOV-2026-03", key="dep-key")
    assert replay.json() == keyed.json() and replay.headers["Idempotent-Replayed"] == "true"

    assert fund_now(world) == {
        "balance_fen": 1_250_060,
        "deposited_fen": 1_250_060,
        "claimed_fen": 0,
        "recovered_fen": 0,
        "share_bps": 5_000,
    }
    assert fund_now(world, "b2") == fund_now(world)  # banks see the fund too
    with unit_of_work(get_engine(world.settings), write=False) as session:
        assert ledger.balance(session, accounts.FUND_CASH) == 1_250_060
        assert ledger.balance(session, accounts.FUND_CONTRIBUTIONS) == -1_250_060
    assert fund_books_agree(world.settings)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_fen": 0, "reference": "R"}, "amount_fen"),
        ({"amount_fen": -5, "reference": "R"}, "amount_fen"),
        ({"amount_fen": 1.5, "reference": "R"}, "amount_fen"),
        ({"amount_fen": "100", "reference": "R"}, "amount_fen"),
        ({"amount_fen": True, "reference": "R"}, "amount_fen"),
        ({"amount_fen": 10**12 + 1, "reference": "R"}, "amount_fen"),
        ({"amount_fen": 100, "reference": ""}, "reference"),
        ({"amount_fen": 100}, "reference"),
        ({"amount_fen": 100, "reference": "R", "note": "x"}, "note"),
    ],
)
def test_bad_deposits_are_422_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    r = world.post("op", DEPOSITS, body)
    assert r.status_code == 422, r.text
    assert field in {e["field"] for e in r.json()["errors"]}
    assert fund_now(world)["deposited_fen"] == 0


def test_only_operators_deposit_and_only_operators_and_banks_read_the_fund(world: World) -> None:
    for who in ("b1", "ch", "h1"):
        r = world.post(who, DEPOSITS, {"amount_fen": 100, "reference": "R"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    for who in ("ch", "h1"):
        assert world.get(who, "/v1/risk-compensation/fund").status_code == 403
    assert world.client.get("/v1/risk-compensation/fund").status_code == 401


def _claimed(world: World, unpaid: int, deposit_fen: int) -> tuple[str, FundClaim]:
    """A defaulted loan of b1 owing `unpaid`, claimed on a fund of `deposit_fen`."""
    assert deposit(world, deposit_fen, f"D-{unpaid}-{deposit_fen}").status_code == 201
    loan_id = make_loan(world, outstanding_fen=unpaid, status=LoanStatus.DEFAULTED)
    r = world.post("b1", "/v1/risk-compensation/claims", {"loan_id": loan_id})
    assert r.status_code == 201, r.text
    with unit_of_work(get_engine(world.settings), write=False) as session:
        claim = session.scalar(select(FundClaim).where(FundClaim.loan_id == loan_id))
    assert claim is not None
    return loan_id, claim


def _recover(world: World, loan_id: str, amounts: list[int]) -> list[int]:
    """The fund's shares of recoveries of `amounts`, one transaction each, as repay calls it."""
    shares = []
    for n, amount in enumerate(amounts):
        with unit_of_work(get_engine(world.settings)) as session:
            loan = session.get(Loan, loan_id, with_for_update=True)
            assert loan is not None
            shares.append(
                fund.share_recovery(session, loan.id, loan.bank_id, amount, f"rec-{n}", clock.now())
            )
    return shares


def test_recoveries_go_back_in_the_proportion_the_fund_bore(world: World) -> None:
    # A full share: the fund paid half of 1,000,001 (rounded down), so it gets half back.
    loan_id, claim = _claimed(world, 1_000_001, 10_000_000)
    assert (claim.amount_fen, claim.unpaid_principal_fen) == (500_000, 1_000_001)
    shares = _recover(world, loan_id, [1, 1, 1, 300_000, 199_999])
    # Worked out on the running total: three recoveries of 1 fen give the fund 1 fen,
    # where rounding each one down would have given it nothing.
    assert shares == [0, 0, 1, 150_000, 99_999]
    assert sum(shares) == 500_000 * 500_002 // 1_000_001 == 250_000
    whole = _recover(world, loan_id, [499_999])  # the rest of the principal
    assert sum(shares) + whole[0] == 500_000  # all of the claim back, never more
    assert _recover(world, loan_id, [1_000]) == [0]
    t = fund_now(world)
    assert t["recovered_fen"] == 500_000
    assert t["balance_fen"] == t["deposited_fen"] - t["claimed_fen"] + t["recovered_fen"]
    assert fund_books_agree(world.settings)


def test_a_capped_claim_shares_recoveries_in_its_smaller_proportion(world: World) -> None:
    # The fund held 100,000 for a share of 400,000: it bore a quarter of the loss.
    loan_id, claim = _claimed(world, 800_000, 100_000)
    assert claim.amount_fen == 100_000
    assert _recover(world, loan_id, [400_000]) == [50_000]
    assert _recover(world, loan_id, [400_000]) == [50_000]
    t = fund_now(world)
    assert (t["balance_fen"], t["claimed_fen"], t["recovered_fen"]) == (100_000, 100_000, 100_000)
    with unit_of_work(get_engine(world.settings), write=False) as session:
        assert ledger.balance(session, accounts.bank_fund_returns(world.ids["b1"])) == -100_000
        assert ledger.balance(session, accounts.bank_fund_claims(world.ids["b1"])) == 100_000
    assert fund_books_agree(world.settings)


def test_no_claim_no_share_and_nothing_booked(world: World) -> None:
    loan_id = make_loan(world, outstanding_fen=500_000, status=LoanStatus.OVERDUE)
    assert _recover(world, loan_id, [100_000, 0]) == [0, 0]
    with unit_of_work(get_engine(world.settings), write=False) as session:
        assert session.scalar(select(LedgerPosting.id).limit(1)) is None
    # A claim on an empty fund pays nothing, so nothing comes back either.
    loan_id, claim = _empty_claim(world)
    assert claim.amount_fen == 0
    assert _recover(world, loan_id, [300_000]) == [0]
    assert fund_books_agree(world.settings)


def _empty_claim(world: World) -> tuple[str, FundClaim]:
    loan_id = make_loan(world, outstanding_fen=300_000, status=LoanStatus.DEFAULTED)
    r = world.post("b1", "/v1/risk-compensation/claims", {"loan_id": loan_id})
    assert r.status_code == 201 and r.json()["amount_fen"] == 0, r.text
    with unit_of_work(get_engine(world.settings), write=False) as session:
        claim = session.scalar(select(FundClaim).where(FundClaim.loan_id == loan_id))
    assert claim is not None
    return loan_id, claim
