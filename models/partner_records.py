"""What the partner systems answer: the public credit database's records and the bank's replies.

These are the shapes our outbound clients parse. Unlike our own contract's
shapes (`models/schemas.py`, which refuse unknown fields), these ignore fields
they do not know: a partner adding a field must not break the hub. Money is
integer fen and must arrive as a JSON integer.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Fen = Annotated[StrictInt, Field(ge=0)]


class PartnerRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PersonRecord(PartnerRecord):
    """A person as the public credit database knows them."""

    id_number: str
    name: str
    score: Annotated[int, Field(ge=0, le=1000)]
    dishonest_debtor: bool
    insured: bool


class FirmRecord(PartnerRecord):
    """A firm as the public credit database knows it."""

    uscc: str
    name: str
    registered_on: dt.date
    industry: str
    tax_credit_rating: Literal["A", "B", "M", "C", "D"]
    employees_insured: Annotated[int, Field(ge=0)]
    utilities_on_time_months: Annotated[int, Field(ge=0)]
    court_judgments_3y: Annotated[int, Field(ge=0)]
    penalties_3y: Annotated[int, Field(ge=0)]
    dishonest_entity: bool


class OverdueReceipt(PartnerRecord):
    """The database's acknowledgement of an overdue-debt report."""

    report_id: str
    status: Literal["recorded"]


class CreditLineApproved(PartnerRecord):
    """The bank opened a line; `limit_fen` may be less than we asked for."""

    enrollment_id: str
    decision: Literal["approved"]
    bank_line_ref: str
    limit_fen: Fen


class CreditLineDeclined(PartnerRecord):
    enrollment_id: str
    decision: Literal["declined"]
    reason: str


CreditLineDecision = Annotated[
    CreditLineApproved | CreditLineDeclined, Field(discriminator="decision")
]


class Payout(PartnerRecord):
    """Money the bank paid to a hospital on our instruction."""

    payout_id: str
    status: Literal["pending", "settled", "failed"]
    bank_txn_id: str
    hospital_code: str | None = None
    amount_fen: Fen | None = None
    value_date: dt.date | None = None


class StatementItem(PartnerRecord):
    bank_txn_id: str
    payout_id: str
    hospital_code: str
    amount_fen: Fen
    value_date: dt.date


class Statement(PartnerRecord):
    """The bank's account of one value date: what reconciliation compares with our ledger."""

    date: dt.date
    items: list[StatementItem]


class HospitalTransaction(PartnerRecord):
    """One capture or refund as the hospital's own system (HIS) recorded it."""

    ref: str  # his_bill_id or his_refund_id
    kind: Literal["capture", "refund"]
    amount_fen: Fen


class HospitalTransactions(PartnerRecord):
    """A hospital's transaction list for one business date."""

    hospital_code: str
    date: dt.date
    items: list[HospitalTransaction]
