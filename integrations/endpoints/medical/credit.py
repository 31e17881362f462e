"""The medical-credit endpoints (CONTRACT.md §2): eligibility, lines, visits,
holds, closing, refunds, repayments and the trial balance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hub.core import ledger
from hub.core.db import Transaction
from hub.core.errors import FieldError, Invalid
from hub.core.personal_data import normalize_id_number
from hub.medical import debts, eligibility, holds, lines, listings, visits
from integrations.endpoints.medical import presenters as present
from integrations.endpoints.pipeline import Call
from integrations.endpoints.problems import invalid_id_number
from integrations.endpoints.routing import RouteTable
from models.medical import schemas

routes = RouteTable()
HOSPITAL, BANK, OPERATOR = "hospital", "bank", "operator"


def _hold_policy(call: Call) -> holds.HoldPolicy:
    s = call.settings
    return holds.HoldPolicy(
        outpatient_ttl=timedelta(hours=s.hold_ttl_outpatient_hours),
        inpatient_ttl=timedelta(days=s.hold_ttl_inpatient_days),
    )


@routes.add(
    "POST",
    "/v1/eligibility-checks",
    kinds={HOSPITAL},
    body=schemas.EligibilityCheckRequest,
    response="Eligibility",
    problems={422: ("invalid_id_number",)},
    links={
        "get_credit_line": {"credit_line_id": "credit_line_id"},
        "open_visit": {"body.credit_line_id": "credit_line_id"},
    },
)
def check_eligibility(call: Call, session: Transaction) -> tuple[int, Any]:
    """May this person pay by credit now?"""
    id_number = normalize_id_number(call.body.id_number)
    if id_number is None:
        raise invalid_id_number()
    result = eligibility.check_eligibility(
        session,
        call.vault,
        hospital_id=call.caller.partner_id,
        id_number=id_number,
        zone=call.settings.business_timezone,
        now=call.now,
    )
    return 200, present.eligibility(result)


@routes.add(
    "GET", "/v1/credit-lines/{credit_line_id}", kinds={HOSPITAL, BANK}, response="CreditLine"
)
def get_credit_line(call: Call, session: Transaction) -> tuple[int, Any]:
    """A credit line's balances and state."""
    line = lines.line_visible_to(
        session, call.params["credit_line_id"], call.caller.partner_id, call.caller.kind
    )
    return 200, present.credit_line(
        lines.view_line(session, line, call.now, call.settings.business_timezone)
    )


@routes.add(
    "POST",
    "/v1/visits",
    kinds={HOSPITAL},
    body=schemas.OpenVisitRequest,
    status=201,
    response="Visit",
    problems={404: ("not_found",), 409: ("line_not_active", "duplicate_reference")},
    links={
        "get_visit": {"visit_id": "visit_id"},
        "place_hold": {"visit_id": "visit_id"},
        "close_visit": {"visit_id": "visit_id"},
        "refund_visit": {"visit_id": "visit_id"},
        "get_credit_line": {"credit_line_id": "credit_line_id"},
    },
)
def open_visit(call: Call, session: Transaction) -> tuple[int, Any]:
    """Open a visit on a credit line."""
    b = call.body
    visit, _ = visits.open_visit(
        session,
        hospital_id=call.caller.partner_id,
        credit_line_id=b.credit_line_id,
        his_visit_id=b.his_visit_id,
        kind=b.kind,
        department=b.department,
        now=call.now,
    )
    return 201, present.visit(session, visit, call.now)


@routes.add("GET", "/v1/visits/{visit_id}", kinds={HOSPITAL}, response="Visit")
def get_visit(call: Call, session: Transaction) -> tuple[int, Any]:
    """A visit with its holds, bill and refunds."""
    visit = visits.get_visit(session, call.caller.partner_id, call.params["visit_id"])
    return 200, present.visit(session, visit, call.now)


@routes.add(
    "GET",
    "/v1/visits",
    kinds={HOSPITAL},
    query=(
        {"name": "his_visit_id", "in": "query", "schema": {"type": "string"}},
        "limit",
        "cursor",
    ),
    response="VisitPage",
)
def list_visits(call: Call, session: Transaction) -> tuple[int, Any]:
    """The hospital's visits, newest first (filter by his_visit_id)."""
    page = listings.visits(session, call.caller.partner_id, call.query)
    return 200, page.as_contract(lambda visit: present.visit(session, visit, call.now))


@routes.add(
    "POST",
    "/v1/visits/{visit_id}/authorizations",
    kinds={HOSPITAL},
    body=schemas.HoldRequest,
    status=201,
    response="Authorization",
    problems={
        402: ("insufficient_credit",),
        409: ("visit_not_open", "line_not_active", "duplicate_reference"),
    },
    links={
        "get_authorization": {"authorization_id": "authorization_id"},
        "increment_hold": {"authorization_id": "authorization_id"},
        "void_hold": {"authorization_id": "authorization_id"},
        "get_visit": {"visit_id": "visit_id"},
    },
)
def place_hold(call: Call, session: Transaction) -> tuple[int, Any]:
    """Hold an amount on the line for a charge."""
    b = call.body
    auth, _ = holds.place_hold(
        session,
        hospital_id=call.caller.partner_id,
        visit_id=call.params["visit_id"],
        amount_fen=b.amount_fen,
        his_order_id=b.his_order_id,
        description=b.description,
        policy=_hold_policy(call),
        now=call.now,
    )
    return 201, present.authorization(auth, call.now)


@routes.add(
    "GET", "/v1/authorizations/{authorization_id}", kinds={HOSPITAL}, response="Authorization"
)
def get_authorization(call: Call, session: Transaction) -> tuple[int, Any]:
    """One hold."""
    auth = holds.get_authorization(session, call.caller.partner_id, call.params["authorization_id"])
    return 200, present.authorization(auth, call.now)


@routes.add(
    "POST",
    "/v1/authorizations/{authorization_id}/increments",
    kinds={HOSPITAL},
    body=schemas.IncrementRequest,
    response="Authorization",
    problems={
        402: ("insufficient_credit",),
        409: ("authorization_not_held", "line_not_active"),
    },
)
def increment_hold(call: Call, session: Transaction) -> tuple[int, Any]:
    """Raise a hold."""
    auth = holds.increment_hold(
        session,
        hospital_id=call.caller.partner_id,
        auth_id=call.params["authorization_id"],
        amount_fen=call.body.amount_fen,
        now=call.now,
    )
    return 200, present.authorization(auth, call.now)


@routes.add(
    "POST",
    "/v1/authorizations/{authorization_id}/void",
    kinds={HOSPITAL},
    body=schemas.VoidRequest,
    response="Authorization",
    problems={409: ("authorization_not_held",)},
)
def void_hold(call: Call, session: Transaction) -> tuple[int, Any]:
    """Release a hold."""
    auth = holds.void_hold(
        session,
        hospital_id=call.caller.partner_id,
        auth_id=call.params["authorization_id"],
        now=call.now,
    )
    return 200, present.authorization(auth, call.now)


def _bill(body: schemas.CloseVisitRequest) -> visits.Bill:
    items_total = sum(item.amount_fen for item in body.items)
    if body.total_fen != body.insurance_fen + body.self_pay_fen or items_total != body.total_fen:
        raise Invalid(
            f"total_fen must equal insurance_fen + self_pay_fen and the items' sum "
            f"(items sum to {items_total})",
            code="bill_does_not_add_up",
            errors=[FieldError("total_fen", "does not add up")],
        )
    return visits.Bill(
        his_bill_id=body.his_bill_id,
        total_fen=body.total_fen,
        insurance_fen=body.insurance_fen,
        self_pay_fen=body.self_pay_fen,
        items=[item.model_dump() for item in body.items],
    )


@routes.add(
    "POST",
    "/v1/visits/{visit_id}/close",
    kinds={HOSPITAL},
    body=schemas.CloseVisitRequest,
    response="Visit",
    problems={
        402: ("insufficient_credit",),
        409: ("visit_not_open", "line_not_active", "duplicate_reference"),
        422: ("bill_does_not_add_up",),
    },
    links={"refund_visit": {"visit_id": "visit_id"}, "get_visit": {"visit_id": "visit_id"}},
)
def close_visit(call: Call, session: Transaction) -> tuple[int, Any]:
    """Final bill: capture the patient's share and release the rest."""
    visit, _ = visits.close_visit(
        session,
        hospital_id=call.caller.partner_id,
        visit_id=call.params["visit_id"],
        bill=_bill(call.body),
        repay_days=call.settings.repayment_window_days,
        zone=call.settings.business_timezone,
        now=call.now,
    )
    return 200, present.visit(session, visit, call.now)


@routes.add(
    "POST",
    "/v1/visits/{visit_id}/refunds",
    kinds={HOSPITAL},
    body=schemas.RefundRequest,
    status=201,
    response="Refund",
    problems={
        409: ("visit_not_closed", "duplicate_reference"),
        422: ("refund_exceeds_captured",),
    },
    links={"get_refund": {"refund_id": "refund_id"}},
)
def refund_visit(call: Call, session: Transaction) -> tuple[int, Any]:
    """Refund part of a closed visit."""
    b = call.body
    refund, _ = debts.refund_visit(
        session,
        hospital_id=call.caller.partner_id,
        visit_id=call.params["visit_id"],
        amount_fen=b.amount_fen,
        his_refund_id=b.his_refund_id,
        reason=b.reason,
        now=call.now,
    )
    return 201, present.refund(refund)


@routes.add("GET", "/v1/refunds/{refund_id}", kinds={HOSPITAL}, response="Refund")
def get_refund(call: Call, session: Transaction) -> tuple[int, Any]:
    """One refund."""
    return 200, present.refund(
        debts.get_refund(session, call.caller.partner_id, call.params["refund_id"])
    )


@routes.add(
    "POST",
    "/v1/repayments",
    kinds={BANK},
    body=schemas.RepaymentRequest,
    status=201,
    response="Repayment",
    problems={404: ("not_found",), 409: ("duplicate_reference",), 422: ("overpayment",)},
    links={
        "get_repayment": {"repayment_id": "repayment_id"},
        "get_credit_line": {"credit_line_id": "credit_line_id"},
    },
)
def repay(call: Call, session: Transaction) -> tuple[int, Any]:
    """The patient repaid the bank."""
    b = call.body
    limit = timedelta(seconds=call.settings.max_paid_at_future_seconds)
    if b.paid_at > call.now + limit:
        raise Invalid(
            "paid_at is in the future",
            errors=[FieldError("paid_at", "more than 5 minutes in the future")],
        )
    repayment, _ = debts.repay(
        session,
        bank_id=call.caller.partner_id,
        credit_line_id=b.credit_line_id,
        amount_fen=b.amount_fen,
        bank_txn_id=b.bank_txn_id,
        paid_at=b.paid_at,
        zone=call.settings.business_timezone,
        now=call.now,
    )
    return 201, present.repayment(repayment)


@routes.add("GET", "/v1/repayments/{repayment_id}", kinds={BANK}, response="Repayment")
def get_repayment(call: Call, session: Transaction) -> tuple[int, Any]:
    """One repayment."""
    return 200, present.repayment(
        debts.get_repayment(session, call.caller.partner_id, call.params["repayment_id"])
    )


@routes.add("GET", "/v1/ledger/trial-balance", kinds={OPERATOR}, response="TrialBalance")
def trial_balance(call: Call, session: Transaction) -> tuple[int, Any]:
    """Balances of every ledger account; they total 0."""
    accounts = ledger.trial_balance(session, holds.expiry_legs(session, call.now))
    return 200, {
        "accounts": [{"account": a, "balance_fen": b} for a, b in accounts],
        "total_fen": sum(b for _, b in accounts),
    }
