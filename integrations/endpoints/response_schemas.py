"""What each endpoint answers, as JSON Schema for /openapi.json (CONTRACT.md §2, §4, §5).

Partners generate clients from these, and the conformance test
(tests/test_openapi_conformance.py) checks every answer against them, so each
schema says exactly what the presenters return: every field they always write
is required, `null` only where the hub can write it, enums from the hub's own
status types. Objects stay open (clients ignore fields they do not know).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from models.loans.tables import (
    ApplicationStatus,
    DeclineReason,
    LoanStatus,
    OfferStatus,
    SubsidyStatus,
)
from models.medical.tables import (
    AuthorizationStatus,
    BatchStatus,
    EnrollmentStatus,
    LineStatus,
    MismatchStatus,
    SettlementLineStatus,
    VisitStatus,
)

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
FEN: Schema = {"type": "integer", "description": "fen (CNY minor units)"}
FEN_NOT_NEGATIVE: Schema = {"type": "integer", "minimum": 0}
TIME: Schema = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC (Z)"}
DATE: Schema = {"type": "string", "format": "date", "description": "in the business zone"}
# Masked as the contract shows identity numbers and firm codes: 4, ten '*', 4.
MASKED: Schema = {"type": "string", "pattern": r"^.{4}\*{10}.{4}$"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def one_of(values: Any) -> Schema:
    """A string from a fixed set (a StrEnum or any iterable of strings)."""
    return {"type": "string", "enum": [str(v) for v in values]}


def hub_id(prefix: str) -> Schema:
    """An id the hub issued (`hub.core.ids`): its prefix, then 26 base32 characters."""
    return {"type": "string", "pattern": f"^{prefix}_[0-9a-hjkmnp-tv-z]{{26}}$"}


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object whose fields are all present, but those named `optional`."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


def page(item: str) -> Schema:
    """A list, as every list answers (CONTRACT.md §1 Lists)."""
    return obj(
        {
            "data": {"type": "array", "items": ref(item)},
            "has_more": {"type": "boolean"},
            "next_cursor": nullable(STRING),
        }
    )


class EnrollmentDeclineReason(StrEnum):
    """Enrolment decline reasons (CONTRACT.md §2 Enrolment)."""

    UNDER_AGE = "under_age"
    DISHONEST_DEBTOR = "dishonest_debtor"
    SCORE_TOO_LOW = "score_too_low"
    BANK_DECLINED = "bank_declined"
    IDENTITY_NOT_VERIFIED = "identity_not_verified"
    ALREADY_ENROLLED = "already_enrolled"
    CONSENT_WITHDRAWN = "consent_withdrawn"


_AUTHORIZATION = obj(
    {
        "authorization_id": hub_id("auth"),
        "visit_id": hub_id("vis"),
        "his_order_id": STRING,
        "description": nullable(STRING),
        "status": one_of(AuthorizationStatus),
        "amount_fen": FEN_NOT_NEGATIVE,
        "captured_fen": FEN_NOT_NEGATIVE,
        "expires_at": TIME,
        "created_at": TIME,
    }
)

_REFUND = obj(
    {
        "refund_id": hub_id("ref"),
        "visit_id": hub_id("vis"),
        "his_refund_id": STRING,
        "amount_fen": FEN_NOT_NEGATIVE,
        "debt_reduced_fen": FEN_NOT_NEGATIVE,
        "returned_to_patient_fen": FEN_NOT_NEGATIVE,
        "reason": nullable(STRING),
        "settlement_window_id": nullable(STRING),
        "created_at": TIME,
    }
)

_BILL = obj(
    {
        "his_bill_id": STRING,
        "total_fen": FEN_NOT_NEGATIVE,
        "insurance_fen": FEN_NOT_NEGATIVE,
        "self_pay_fen": FEN_NOT_NEGATIVE,
        "items": {
            "type": "array",
            "items": obj({"code": STRING, "name": STRING, "amount_fen": FEN_NOT_NEGATIVE}),
        },
    }
)

_VISIT = obj(
    {
        "visit_id": hub_id("vis"),
        "credit_line_id": STRING,
        "his_visit_id": STRING,
        "kind": one_of(("outpatient", "inpatient")),
        "department": nullable(STRING),
        "status": one_of(VisitStatus),
        "authorizations": {"type": "array", "items": ref("Authorization")},
        "bill": nullable(ref("Bill")),
        "refunds": {"type": "array", "items": ref("Refund")},
        "captured_fen": FEN_NOT_NEGATIVE,
        "released_fen": FEN_NOT_NEGATIVE,
        "refunded_fen": FEN_NOT_NEGATIVE,
        "due_date": nullable(DATE),
        "settlement_window_id": nullable(STRING),
        "opened_at": TIME,
        "closed_at": nullable(TIME),
    }
)

_CREDIT_LINE = obj(
    {
        "credit_line_id": STRING,
        "status": one_of(LineStatus),
        "limit_fen": FEN_NOT_NEGATIVE,
        "available_fen": FEN,
        "held_fen": FEN_NOT_NEGATIVE,
        "outstanding_fen": FEN_NOT_NEGATIVE,
        "overdue_fen": FEN_NOT_NEGATIVE,
        "bank_code": STRING,
        "next_due_date": nullable(DATE),
    }
)

_ELIGIBILITY = {
    "oneOf": [
        obj(
            {
                "eligible": {"const": True},
                "credit_line_id": STRING,
                "available_fen": FEN,
            }
        ),
        obj(
            {
                "eligible": {"const": False},
                "reason": one_of(("not_enrolled", "suspended", "overdue")),
                "credit_line_id": STRING,
            },
            optional=("credit_line_id",),
        ),
    ]
}

_REPAYMENT = obj(
    {
        "repayment_id": hub_id("rpy"),
        "credit_line_id": STRING,
        "bank_txn_id": STRING,
        "amount_fen": FEN_NOT_NEGATIVE,
        "applied_fen": FEN_NOT_NEGATIVE,
        "outstanding_fen": FEN_NOT_NEGATIVE,
        "paid_at": TIME,
        "created_at": TIME,
    }
)

_TRIAL_BALANCE = obj(
    {
        "accounts": {
            "type": "array",
            "items": obj({"account": STRING, "balance_fen": FEN}),
        },
        "total_fen": FEN,
    }
)

_ENROLLMENT_STARTED = obj(
    {
        "enrollment_id": hub_id("enr"),
        "consent_id": hub_id("cns"),
        "status": one_of([EnrollmentStatus.PENDING]),
    }
)

_ENROLLMENT = obj(
    {
        "enrollment_id": hub_id("enr"),
        "consent_id": hub_id("cns"),
        "status": one_of(EnrollmentStatus),
        "decline_reason": nullable(one_of(EnrollmentDeclineReason)),
        "credit_line": nullable(
            obj({"credit_line_id": STRING, "limit_fen": FEN_NOT_NEGATIVE, "bank_code": STRING})
        ),
        "created_at": TIME,
        "decided_at": nullable(TIME),
    }
)

_CONSENT = obj(
    {
        "consent_id": hub_id("cns"),
        "purpose": STRING,
        "status": one_of(("active", "withdrawn", "expired")),
        "granted_at": TIME,
        "withdrawn_at": nullable(TIME),
    }
)

_WINDOW_CLOSED = obj({"window_id": hub_id("win"), "flow_run_id": nullable(STRING)})

_SETTLEMENT = obj(
    {
        "settlement_id": hub_id("stl"),
        "window": obj({"window_id": hub_id("win"), "opened_at": TIME, "closed_at": nullable(TIME)}),
        "bank_code": STRING,
        "status": one_of(BatchStatus),
        "lines": {
            "type": "array",
            "items": obj(
                {
                    "hospital_code": STRING,
                    "captured_fen": FEN_NOT_NEGATIVE,
                    "refunded_fen": FEN_NOT_NEGATIVE,
                    "carried_in_fen": FEN,
                    "net_fen": FEN,
                    "status": one_of(SettlementLineStatus),
                    "transfer_ref": nullable(STRING),
                }
            ),
        },
        "total_fen": FEN_NOT_NEGATIVE,
    }
)

_MISMATCH = obj(
    {
        "mismatch_id": hub_id("mm"),
        "window_id": hub_id("win"),
        "source": STRING,
        "kind": one_of(("missing_in_hub", "missing_at_partner", "amount_differs", "duplicate")),
        "ref": STRING,
        "hub_amount_fen": nullable(FEN),
        "partner_amount_fen": nullable(FEN),
        "status": one_of(MismatchStatus),
        "resolution": nullable(STRING),
        "created_at": TIME,
        "resolved_at": nullable(TIME),
    }
)

_PRODUCT = obj(
    {
        "code": STRING,
        "bank_code": STRING,
        "name": STRING,
        "min_score": INTEGER,
        "max_amount_fen": FEN_NOT_NEGATIVE,
        "max_term_months": INTEGER,
        "annual_rate_bps_min": INTEGER,
        "annual_rate_bps_max": INTEGER,
        "industries": nullable({"type": "array", "items": STRING}),
        "updated_at": TIME,
    }
)

_APPLICATION_STARTED = obj(
    {
        "application_id": hub_id("lap"),
        "consent_id": hub_id("cns"),
        "status": one_of(ApplicationStatus),
    }
)

_OFFER = obj(
    {
        "offer_id": hub_id("lof"),
        "application_id": hub_id("lap"),
        "bank_code": STRING,
        "product_code": STRING,
        "amount_fen": FEN_NOT_NEGATIVE,
        "annual_rate_bps": INTEGER,
        "term_months": INTEGER,
        "status": one_of(OfferStatus),
        "expires_at": TIME,
        "created_at": TIME,
    }
)

_APPLICATION = obj(
    {
        "application_id": hub_id("lap"),
        "status": one_of(ApplicationStatus),
        "decline_reason": nullable(one_of(DeclineReason)),
        "amount_fen": FEN_NOT_NEGATIVE,
        "term_months": INTEGER,
        "purpose": STRING,
        "respond_by": nullable(TIME),
        "offers": {"type": "array", "items": ref("LoanOffer")},
        "firm": obj({"uscc": MASKED, "name": STRING}),
        "created_at": TIME,
        # A bank sees the firm's profile while the consent holds; a channel the consent.
        "profile": nullable({"type": "object"}),
        "consent_id": hub_id("cns"),
    },
    optional=("profile", "consent_id"),
)

_DECLINE = obj(
    {
        "application_id": hub_id("lap"),
        "answer": one_of(("decline",)),
        "reason": STRING,
        "answered_at": TIME,
    }
)

_LOAN_ACCEPTED = obj({"loan_id": hub_id("loan"), "status": one_of(LoanStatus)})

_STATISTICS = obj(
    {
        "month": STRING,
        "data": {
            "type": "array",
            "items": obj(
                {
                    "bank_code": STRING,
                    "offered": INTEGER,
                    "answered": INTEGER,
                    "answered_in_time": INTEGER,
                    "median_hours_to_answer": nullable({"type": "number"}),
                }
            ),
        },
        "has_more": {"type": "boolean"},
        "next_cursor": nullable(STRING),
    }
)

_DEPOSIT = obj({"deposit_id": hub_id("dep"), "balance_fen": FEN})

_FUND = obj(
    {
        "balance_fen": FEN,
        "deposited_fen": FEN_NOT_NEGATIVE,
        "claimed_fen": FEN_NOT_NEGATIVE,
        "recovered_fen": FEN_NOT_NEGATIVE,
        "share_bps": INTEGER,
    }
)

_CLAIM = obj(
    {
        "claim_id": hub_id("clm"),
        "loan_id": hub_id("loan"),
        "amount_fen": FEN_NOT_NEGATIVE,
        "bank_code": STRING,
        "unpaid_principal_fen": FEN_NOT_NEGATIVE,
        "share_bps": INTEGER,
        "recovered_fen": FEN_NOT_NEGATIVE,
        "returned_fen": FEN_NOT_NEGATIVE,
        "created_at": TIME,
    }
)

_LOAN = obj(
    {
        "loan_id": hub_id("loan"),
        "application_id": hub_id("lap"),
        "bank_code": STRING,
        "firm": obj({"uscc": STRING, "name": STRING}),
        "status": one_of(LoanStatus),
        "principal_fen": FEN_NOT_NEGATIVE,
        "annual_rate_bps": INTEGER,
        "term_months": INTEGER,
        "schedule": {
            "type": "array",
            "items": obj(
                {
                    "n": INTEGER,
                    "due_date": DATE,
                    "principal_fen": FEN_NOT_NEGATIVE,
                    "interest_fen": FEN_NOT_NEGATIVE,
                    "paid_fen": FEN_NOT_NEGATIVE,
                }
            ),
        },
        "outstanding_principal_fen": FEN_NOT_NEGATIVE,
        "days_past_due": {"type": "integer", "minimum": 0},
    }
)

_LOAN_REPAYMENT = obj(
    {
        "repayment_id": hub_id("lrp"),
        "loan_id": hub_id("loan"),
        "amount_fen": FEN_NOT_NEGATIVE,
        "overdue_interest_fen": FEN_NOT_NEGATIVE,
        "overdue_principal_fen": FEN_NOT_NEGATIVE,
        "current_interest_fen": FEN_NOT_NEGATIVE,
        "current_principal_fen": FEN_NOT_NEGATIVE,
        "early_principal_fen": FEN_NOT_NEGATIVE,
        "outstanding_principal_fen": FEN_NOT_NEGATIVE,
    }
)

_SUBSIDY = obj(
    {
        "subsidy_id": STRING,
        "loan_id": hub_id("loan"),
        "month": STRING,
        "interest_paid_fen": FEN_NOT_NEGATIVE,
        "amount_fen": FEN_NOT_NEGATIVE,
        "rule": {"type": "object"},
        "status": one_of(SubsidyStatus),
    }
)

_HEALTH = obj({"status": one_of(("ok", "unavailable"))})
_READINESS = obj(
    {
        "status": one_of(("ready", "unavailable")),
        "database": one_of(("ok", "unreachable")),
        "schema": one_of(("current", "behind", "ahead", "unknown")),
    }
)

SCHEMAS: dict[str, Schema] = {
    "Authorization": _AUTHORIZATION,
    "Refund": _REFUND,
    "Bill": _BILL,
    "Visit": _VISIT,
    "VisitPage": page("Visit"),
    "CreditLine": _CREDIT_LINE,
    "Eligibility": _ELIGIBILITY,
    "Repayment": _REPAYMENT,
    "TrialBalance": _TRIAL_BALANCE,
    "EnrollmentStarted": _ENROLLMENT_STARTED,
    "Enrollment": _ENROLLMENT,
    "Consent": _CONSENT,
    "WindowClosed": _WINDOW_CLOSED,
    "Settlement": _SETTLEMENT,
    "SettlementPage": page("Settlement"),
    "Mismatch": _MISMATCH,
    "MismatchPage": page("Mismatch"),
    "LoanProduct": _PRODUCT,
    "LoanProductPage": page("LoanProduct"),
    "LoanApplicationStarted": _APPLICATION_STARTED,
    "LoanOffer": _OFFER,
    "LoanApplication": _APPLICATION,
    "LoanApplicationPage": page("LoanApplication"),
    "LoanDecline": _DECLINE,
    "LoanAccepted": _LOAN_ACCEPTED,
    "LoanStatistics": _STATISTICS,
    "FundDeposit": _DEPOSIT,
    "Fund": _FUND,
    "FundClaim": _CLAIM,
    "FundClaimPage": page("FundClaim"),
    "Loan": _LOAN,
    "LoanRepayment": _LOAN_REPAYMENT,
    "Subsidy": _SUBSIDY,
    "SubsidyPage": page("Subsidy"),
    "Health": _HEALTH,
    "Readiness": _READINESS,
}
