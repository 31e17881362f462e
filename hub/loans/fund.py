"""The risk-compensation fund (CONTRACT.md §4): the operator's deposits, claims on
defaulted loans, and the fund's share of what banks recover after a claim.

The fund's balance is worked out from the tables — deposits, less claims, plus
the recovered shares returned — and the ledger's `fund:cash` says the same
(`hub.loans.fund_views.discrepancies` checks it):

    deposit   Dr fund:cash               / Cr fund:contributions
    claim     Dr bank:{B}:fund_claims    / Cr fund:cash
    recovery  Dr fund:cash               / Cr bank:{B}:fund_returns

Every change of the balance takes the fund's lock first (a transaction-scoped
advisory lock on PostgreSQL; SQLite serialises writers anyway), so two claims on
different loans cannot both spend the same money, and a deposit's answer holds
the balance just after it. Lock order: the loan, then its claim, then the fund.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hub.core import clock, ledger, references
from hub.core.db import unit_of_work
from hub.core.errors import Conflict, FieldError, Invalid, not_found
from hub.core.ids import new_id
from hub.loans import accounts, policy
from models.core.tables import Partner
from models.loans.tables import FundClaim, FundDeposit, Loan, LoanStatus

if TYPE_CHECKING:
    from hub.context import HubContext

# One advisory lock key for the fund (the idempotency keys' locks are hashes of
# partner and key: a clash with this constant is as unlikely as any other).
_FUND_LOCK = 0x66756E645F6C6F63  # "fund_loc"
MAX_FEN = 10**12
MAX_REFERENCE = 128


@dataclass(frozen=True)
class FundTotals:
    """The fund in total, from the tables (fen)."""

    deposited_fen: int
    claimed_fen: int
    recovered_fen: int  # the shares of recoveries returned to the fund

    @property
    def balance_fen(self) -> int:
        return self.deposited_fen - self.claimed_fen + self.recovered_fen


def lock_fund(session: Session) -> None:
    """Hold the fund until the transaction ends (PostgreSQL; SQLite's writers are serial)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FUND_LOCK})


def totals(session: Session) -> FundTotals:
    deposited = session.scalar(select(func.coalesce(func.sum(FundDeposit.amount_fen), 0)))
    claimed, returned = session.execute(
        select(
            func.coalesce(func.sum(FundClaim.amount_fen), 0),
            func.coalesce(func.sum(FundClaim.returned_fen), 0),
        )
    ).one()
    return FundTotals(int(deposited or 0), int(claimed), int(returned))


def deposit(
    session: Session, *, operator_id: str, amount_fen: int, reference: str, now: datetime
) -> tuple[FundDeposit, bool]:
    """Add money to the fund under the operator's `reference`: the deposit and True, or
    the earlier deposit of the same reference and amount and False (a replay);
    `duplicate_reference` when the reference was used for another amount."""
    check_deposit(amount_fen, reference)
    lock_fund(session)
    values = {
        "id": new_id("dep"),
        "operator_id": operator_id,
        "reference": reference,
        "amount_fen": amount_fen,
        "balance_after_fen": totals(session).balance_fen + amount_fen,
        "created_at": now,
    }
    made, new = references.insert_or_replay(
        session, FundDeposit, values, ("operator_id", "reference"), ("amount_fen",)
    )
    if new:
        ledger.transfer(
            session,
            "fund_deposit",
            made.id,
            accounts.FUND_CASH,
            accounts.FUND_CONTRIBUTIONS,
            amount_fen,
            now,
        )
    return made, new


def check_deposit(amount_fen: int, reference: str) -> None:
    """The contract's limits on a deposit, for callers that are not the API (the CLI)."""
    errors = []
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        errors.append(FieldError("amount_fen", "must be a whole number of fen"))
    elif not 1 <= amount_fen <= MAX_FEN:
        errors.append(FieldError("amount_fen", f"must be from 1 to {MAX_FEN} fen"))
    if not reference.strip() or len(reference) > MAX_REFERENCE:
        errors.append(FieldError("reference", f"must be 1 to {MAX_REFERENCE} characters"))
    if errors:
        raise Invalid("; ".join(f"{e.field} {e.message}" for e in errors), errors=errors)


def claim(
    session: Session, *, bank_id: str, loan_id: str, share_bps: int, now: datetime
) -> FundClaim:
    """The fund's share of a defaulted loan's unpaid principal, paid to its bank once.

    `policy.claim_amount`: the share rounded down to the fen, no more than the
    fund's balance — so an empty fund pays 0, and the loan's claim is spent.
    """
    loan = session.scalar(select(Loan).where(Loan.id == loan_id).with_for_update())
    if loan is None or loan.bank_id != bank_id:
        raise not_found("loan", loan_id)
    earlier = session.scalar(select(FundClaim.id).where(FundClaim.loan_id == loan.id))
    if earlier is not None:
        raise Conflict(f"loan {loan.id} was claimed by {earlier}", code="already_claimed")
    if loan.status != LoanStatus.DEFAULTED:
        raise Conflict(f"loan {loan.id} is {loan.status}, not defaulted", code="loan_not_defaulted")
    lock_fund(session)
    unpaid = loan.outstanding_principal_fen
    amount = policy.claim_amount(unpaid, totals(session).balance_fen, share_bps)
    claim_id = new_id("clm")
    values = {
        "id": claim_id,
        "loan_id": loan.id,
        "bank_id": loan.bank_id,
        "unpaid_principal_fen": unpaid,
        "share_bps": share_bps,
        "amount_fen": amount,
        "recovered_fen": 0,
        "returned_fen": 0,
        "created_at": now,
    }
    # The loan's lock already keeps a second claim out; the unique loan_id is the last word.
    if not references.insert_new(session, FundClaim, values):
        raise Conflict(f"loan {loan.id} is already claimed", code="already_claimed")
    ledger.transfer(
        session,
        "fund_claim",
        claim_id,
        accounts.bank_fund_claims(loan.bank_id),
        accounts.FUND_CASH,
        amount,
        now,
    )
    made = session.get(FundClaim, claim_id)
    assert made is not None
    return made


def share_recovery(
    session: Session, loan_id: str, bank_id: str, recovered_fen: int, ref: str, now: datetime
) -> int:
    """The fund's part of `recovered_fen` that the loan's bank recovered after a claim
    (0 when the fund paid no claim on the loan); posted to the ledger under `ref`.

    The repayment's code calls it in its transaction, holding the loan: what the
    bank recovered is the principal the repayment paid off (the claim was worked
    out on principal). The share follows `policy.recovery_share`: in the
    proportion the fund bore at the claim, on the running total, never more than
    the fund paid.
    """
    claim = session.scalar(select(FundClaim).where(FundClaim.loan_id == loan_id).with_for_update())
    if claim is None or recovered_fen <= 0:
        return 0
    share = policy.recovery_share(
        claim.recovered_fen, recovered_fen, claim.amount_fen, claim.unpaid_principal_fen
    )
    lock_fund(session)  # the balance grows: deposits' answers stay exact
    claim.recovered_fen += recovered_fen
    claim.returned_fen += share
    session.flush()
    ledger.transfer(
        session,
        "fund_recovery",
        ref,
        accounts.FUND_CASH,
        accounts.bank_fund_returns(bank_id),
        share,
        now,
    )
    return share


# The operator's command line (`credithub fund deposit`): a use case of its own.


@dataclass(frozen=True)
class DepositOutcome:
    deposit_id: str
    operator_code: str
    reference: str
    amount_fen: int
    balance_fen: int  # the fund's balance just after the deposit
    replayed: bool  # the reference was used before, for the same amount


def deposit_as_operator(
    ctx: HubContext, *, operator_code: str | None, amount_fen: int, reference: str
) -> DepositOutcome:
    """A deposit in the name of an operator partner (by code; the only active operator
    when none is named), in one transaction, with the API's rules."""
    check_deposit(amount_fen, reference)
    with unit_of_work(ctx.engine) as session:
        operator = _operator(session, operator_code)
        made, new = deposit(
            session,
            operator_id=operator.id,
            amount_fen=amount_fen,
            reference=reference,
            now=clock.now(),
        )
        return DepositOutcome(
            made.id, operator.code, reference, amount_fen, made.balance_after_fen, not new
        )


def _operator(session: Session, code: str | None) -> Partner:
    found = session.scalars(
        select(Partner).where(Partner.kind == "operator", Partner.status == "active")
    ).all()
    if code is not None:
        named = [p for p in found if p.code == code]
        if not named:
            raise Invalid(
                f"no active operator with code {code}",
                errors=[FieldError("operator", "not an active operator's code")],
            )
        return named[0]
    if len(found) != 1:
        raise Invalid(
            f"{len(found)} active operators: name one by its code",
            errors=[FieldError("operator", "required when there is not exactly one operator")],
        )
    return found[0]
