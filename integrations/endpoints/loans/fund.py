"""The risk-compensation fund's endpoints (CONTRACT.md §4): deposits, the fund in
total, claims on defaulted loans."""

from __future__ import annotations

from typing import Any

from hub.core.db import Transaction
from hub.loans import fund, fund_views
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable
from models.loans import fund_schemas as schemas

routes = RouteTable()
BANK, OPERATOR = "bank", "operator"


@routes.add(
    "POST",
    "/v1/risk-compensation/fund/deposits",
    kinds={OPERATOR},
    body=schemas.DepositRequest,
    status=201,
    response="FundDeposit",
    problems={409: ("duplicate_reference",)},
)
def deposit(call: Call, session: Transaction) -> tuple[int, Any]:
    """Add money to the fund (a reused reference replays, or is a duplicate_reference)."""
    made, _ = fund.deposit(
        session,
        operator_id=call.caller.partner_id,
        amount_fen=call.body.amount_fen,
        reference=call.body.reference,
        now=call.now,
    )
    return 201, fund_views.deposit_view(made)


@routes.add("GET", "/v1/risk-compensation/fund", kinds={OPERATOR, BANK}, response="Fund")
def get_fund(call: Call, session: Transaction) -> tuple[int, Any]:
    """The fund's balance, deposits, claims and recoveries in total."""
    return 200, fund_views.fund_view(session, call.settings.risk_share_bps)


@routes.add(
    "POST",
    "/v1/risk-compensation/claims",
    kinds={BANK},
    body=schemas.ClaimRequest,
    status=201,
    response="FundClaim",
    problems={404: ("not_found",), 409: ("already_claimed", "loan_not_defaulted")},
    links={"get_loan": {"loan_id": "loan_id"}},
)
def claim(call: Call, session: Transaction) -> tuple[int, Any]:
    """Claim on the fund for a defaulted loan of this bank."""
    made = fund.claim(
        session,
        bank_id=call.caller.partner_id,
        loan_id=call.body.loan_id,
        share_bps=call.settings.risk_share_bps,
        now=call.now,
    )
    return 201, fund_views.claim_view(session, made)


@routes.add(
    "GET",
    "/v1/risk-compensation/claims",
    kinds={OPERATOR, BANK},
    query=("limit", "cursor"),
    response="FundClaimPage",
)
def list_claims(call: Call, session: Transaction) -> tuple[int, Any]:
    """Claims, newest first: every claim for operators, its own for a bank."""
    page = fund_views.claims(session, call.caller.partner_id, call.caller.kind, call.query)
    return 200, page.as_contract(lambda item: fund_views.claim_view(session, item))
