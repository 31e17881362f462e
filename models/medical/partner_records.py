"""What the banks' and hospitals' systems answer for medical credit: line
decisions, payouts, statements and the hospitals' transaction lists.

Like every partner record these ignore fields they do not know.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from models.core.partner_records import Fen, PartnerRecord


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
