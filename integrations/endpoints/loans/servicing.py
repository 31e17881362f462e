"""Loan servicing endpoints (CONTRACT.md §4 Loans): the bank reports the payout and
repayments; the channel and the bank read the loan with its schedule."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hub.core.db import Transaction
from hub.core.errors import FieldError, Invalid
from hub.loans import servicing, views
from integrations.endpoints.pipeline import Call
from integrations.endpoints.routing import RouteTable
from models.loans.servicing_schemas import DisbursementRequest, LoanRepaymentRequest
from models.loans.tables import LoanRepayment

routes = RouteTable()
BANK, CHANNEL = "bank", "channel"


def _not_in_future(call: Call, field: str, instant: datetime) -> None:
    """A payout or repayment reported more than a few minutes ahead of the hub's clock
    has not happened yet (the same allowance as medical repayments)."""
    if instant > call.now + timedelta(seconds=call.settings.max_paid_at_future_seconds):
        raise Invalid(
            f"{field} is in the future",
            errors=[FieldError(field, "more than 5 minutes in the future")],
        )


@routes.add(
    "POST",
    "/v1/loans/{loan_id}/disbursements",
    kinds={BANK},
    body=DisbursementRequest,
    status=201,
    response="Loan",
    problems={
        409: ("duplicate_reference", "already_disbursed"),
        422: ("amount_not_offered",),
    },
    links={"get_loan": {"loan_id": "loan_id"}, "repay_loan": {"loan_id": "loan_id"}},
)
def disburse(call: Call, session: Transaction) -> tuple[int, Any]:
    """The bank paid the loan out; its schedule is fixed."""
    b = call.body
    _not_in_future(call, "disbursed_at", b.disbursed_at)
    zone = call.settings.business_timezone
    loan, _ = servicing.disburse(
        session,
        bank_id=call.caller.partner_id,
        loan_id=call.params["loan_id"],
        amount_fen=b.amount_fen,
        bank_txn_id=b.bank_txn_id,
        disbursed_at=b.disbursed_at,
        zone=zone,
        now=call.now,
    )
    return 201, views.loan_view(session, loan, call.now, zone)


def _repayment(repayment: LoanRepayment) -> dict[str, Any]:
    return {
        "repayment_id": repayment.id,
        "loan_id": repayment.loan_id,
        "amount_fen": repayment.amount_fen,
        "overdue_interest_fen": repayment.overdue_interest_fen,
        "overdue_principal_fen": repayment.overdue_principal_fen,
        "current_interest_fen": repayment.current_interest_fen,
        "current_principal_fen": repayment.current_principal_fen,
        "early_principal_fen": repayment.early_principal_fen,
        "outstanding_principal_fen": repayment.outstanding_after_fen,
    }


@routes.add(
    "POST",
    "/v1/loans/{loan_id}/repayments",
    kinds={BANK},
    body=LoanRepaymentRequest,
    status=201,
    response="LoanRepayment",
    problems={
        409: ("duplicate_reference", "loan_not_disbursed", "loan_closed"),
        422: ("overpayment",),
    },
    links={"get_loan": {"loan_id": "loan_id"}},
)
def repay_loan(call: Call, session: Transaction) -> tuple[int, Any]:
    """The firm repaid the bank; the answer is the allocation."""
    b = call.body
    _not_in_future(call, "paid_at", b.paid_at)
    repayment, _ = servicing.repay(
        session,
        bank_id=call.caller.partner_id,
        loan_id=call.params["loan_id"],
        amount_fen=b.amount_fen,
        bank_txn_id=b.bank_txn_id,
        paid_at=b.paid_at,
        zone=call.settings.business_timezone,
        now=call.now,
    )
    return 201, _repayment(repayment)


@routes.add("GET", "/v1/loans/{loan_id}", kinds={BANK, CHANNEL}, response="Loan")
def get_loan(call: Call, session: Transaction) -> tuple[int, Any]:
    """The loan with its schedule."""
    loan = views.loan_visible_to(
        session, call.params["loan_id"], call.caller.partner_id, call.caller.kind
    )
    return 200, views.loan_view(session, loan, call.now, call.settings.business_timezone)
