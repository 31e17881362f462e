"""Treat first, pay later: the contract's request shapes (CONTRACT.md §2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.core.schemas import (
    AmountFen,
    IdNumber,
    Instant,
    MoneyFen,
    ObjectId,
    Reference,
    Request,
    Str,
    Text,
    example,
)


class EligibilityCheckRequest(Request):
    model_config = example({"id_number": "11010519491231002X"})

    id_number: IdNumber


class OpenVisitRequest(Request):
    model_config = example(
        {
            "credit_line_id": "cl_01kbm6ykc0vd5y0tq7wq2f3x9a",
            "his_visit_id": "HIS-V-1001",
            "kind": "outpatient",
            "department": "cardiology",
        }
    )

    credit_line_id: ObjectId
    his_visit_id: Reference
    kind: Literal["outpatient", "inpatient"]
    department: Text | None = None


class HoldRequest(Request):
    model_config = example(
        {"amount_fen": 12000, "his_order_id": "HIS-O-1", "description": "blood test"}
    )

    amount_fen: AmountFen
    his_order_id: Reference
    description: Text | None = None


class IncrementRequest(Request):
    amount_fen: AmountFen


class VoidRequest(Request):
    pass


class BillItem(Request):
    code: Annotated[Str, Field(min_length=1, max_length=64)]
    name: Annotated[Str, Field(min_length=1, max_length=200)]
    amount_fen: MoneyFen


class CloseVisitRequest(Request):
    model_config = example(
        {
            "his_bill_id": "HIS-B-1",
            "total_fen": 15000,
            "insurance_fen": 5000,
            "self_pay_fen": 10000,
            "items": [{"code": "LAB01", "name": "blood test", "amount_fen": 15000}],
        }
    )

    his_bill_id: Reference
    total_fen: MoneyFen
    insurance_fen: MoneyFen
    self_pay_fen: MoneyFen
    items: Annotated[list[BillItem], Field(max_length=2000)]


class RefundRequest(Request):
    amount_fen: AmountFen
    his_refund_id: Reference
    reason: Text | None = None


class RepaymentRequest(Request):
    credit_line_id: ObjectId
    amount_fen: AmountFen
    bank_txn_id: Reference
    paid_at: Instant


class ConsentGrant(Request):
    purpose: Literal["medical_credit"]
    granted_at: Instant
    text_version: Annotated[Str, Field(min_length=1, max_length=64)]


class EnrollmentRequest(Request):
    model_config = example(
        {
            "id_number": "110101199003070011",
            "name": "李四",
            "phone": "13800001234",
            "bank_code": "B1",
            "consent": {
                "purpose": "medical_credit",
                "granted_at": "2026-03-01T10:00:00+08:00",
                "text_version": "v1",
            },
        }
    )

    id_number: IdNumber
    name: Annotated[Str, Field(min_length=1, max_length=100)]
    phone: Annotated[Str, Field(pattern=r"^\+?[0-9][0-9 -]{4,19}$")]
    bank_code: Annotated[Str, Field(min_length=1, max_length=64)]
    consent: ConsentGrant


class CloseWindowRequest(Request):
    pass
