"""The risk-compensation fund and interest subsidies (CONTRACT.md §4): the contract's
request shapes, and what a bank answers when told to pay a firm its subsidy."""

from __future__ import annotations

from typing import Literal

from models.core.partner_records import Fen, PartnerRecord
from models.core.schemas import AmountFen, ObjectId, Reference, Request


class DepositRequest(Request):
    """`POST /v1/risk-compensation/fund/deposits`: the operator adds money to the fund."""

    amount_fen: AmountFen
    reference: Reference


class ClaimRequest(Request):
    """`POST /v1/risk-compensation/claims`: the loan's bank claims on the fund."""

    loan_id: ObjectId


class SubsidyPayout(PartnerRecord):
    """The bank took the instruction to pay a firm its subsidy (once per subsidy id)."""

    subsidy_id: str
    status: Literal["accepted", "paid"]
    bank_reference: str
    amount_fen: Fen | None = None
