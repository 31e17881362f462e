"""Hub objects shaped as the contract's responses (identity data never in full)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.core.db import Transaction
from hub.medical.eligibility import Eligibility
from hub.medical.holds import effective_status
from hub.medical.lines import LineView
from hub.medical.listings import visit_refunds
from hub.medical.visits import visit_authorizations
from models.medical.tables import Authorization, Refund, Repayment, Visit, VisitStatus


def credit_line(view: LineView) -> dict[str, Any]:
    return view.as_contract()


def eligibility(result: Eligibility) -> dict[str, Any]:
    if result.eligible:
        return {
            "eligible": True,
            "credit_line_id": result.credit_line_id,
            "available_fen": result.available_fen,
        }
    body: dict[str, Any] = {"eligible": False, "reason": result.reason}
    if result.credit_line_id:
        body["credit_line_id"] = result.credit_line_id
    return body


def authorization(auth: Authorization, now: datetime) -> dict[str, Any]:
    return {
        "authorization_id": auth.id,
        "visit_id": auth.visit_id,
        "his_order_id": auth.his_order_id,
        "description": auth.description,
        "status": effective_status(auth, now),
        "amount_fen": auth.amount_fen,
        "captured_fen": auth.captured_fen,
        "expires_at": auth.expires_at,
        "created_at": auth.created_at,
    }


def refund(item: Refund) -> dict[str, Any]:
    return {
        "refund_id": item.id,
        "visit_id": item.visit_id,
        "his_refund_id": item.his_refund_id,
        "amount_fen": item.amount_fen,
        "debt_reduced_fen": item.debt_reduced_fen,
        "returned_to_patient_fen": item.returned_to_patient_fen,
        "reason": item.reason,
        "settlement_window_id": item.settlement_window_id,
        "created_at": item.created_at,
    }


def visit(session: Transaction, item: Visit, now: datetime) -> dict[str, Any]:
    refunds = visit_refunds(session, item.id)
    bill = None
    if item.status == VisitStatus.CLOSED:
        bill = {
            "his_bill_id": item.his_bill_id,
            "total_fen": item.total_fen,
            "insurance_fen": item.insurance_fen,
            "self_pay_fen": item.self_pay_fen,
            "items": (item.bill or {}).get("items", []),
        }
    return {
        "visit_id": item.id,
        "credit_line_id": item.credit_line_id,
        "his_visit_id": item.his_visit_id,
        "kind": item.kind,
        "department": item.department,
        "status": item.status,
        "authorizations": [authorization(a, now) for a in visit_authorizations(session, item.id)],
        "bill": bill,
        "refunds": [refund(r) for r in refunds],
        "captured_fen": item.captured_fen,
        "released_fen": item.released_fen,
        "refunded_fen": item.refunded_fen,
        "due_date": item.due_date,
        "settlement_window_id": item.settlement_window_id,
        "opened_at": item.opened_at,
        "closed_at": item.closed_at,
    }


def repayment(item: Repayment) -> dict[str, Any]:
    return {
        "repayment_id": item.id,
        "credit_line_id": item.credit_line_id,
        "bank_txn_id": item.bank_txn_id,
        "amount_fen": item.amount_fen,
        "applied_fen": item.amount_fen,
        "outstanding_fen": item.outstanding_after_fen,
        "paid_at": item.paid_at,
        "created_at": item.created_at,
    }
