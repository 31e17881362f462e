"""Credit-easy loans, servicing: the contract's request shapes for a loan's payout
and its repayments (CONTRACT.md §4 Loans)."""

from __future__ import annotations

from models.core.schemas import AmountFen, Instant, Reference, Request


class DisbursementRequest(Request):
    amount_fen: AmountFen  # must be the offered amount (checked against the loan)
    bank_txn_id: Reference
    disbursed_at: Instant


class LoanRepaymentRequest(Request):
    amount_fen: AmountFen
    bank_txn_id: Reference
    paid_at: Instant
