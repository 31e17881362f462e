"""Treat first, pay later: residents, credit lines, visits and holds, debts,
refunds and repayments, enrolments, settlement, reconciliation and collections.

Money columns are integer fen (`BigInteger`, named `*_fen`); each says who owes
whom when it grows. Instants are stored as aware UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from models.core.tables import Base, Id, Instant, money

# Statuses: stored as their values in String columns, shown as them in JSON.


class LineStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class VisitStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AuthorizationStatus(StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"
    VOIDED = "voided"
    EXPIRED = "expired"


class EnrollmentStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class WindowStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    COMPUTED = "computed"
    SETTLED = "settled"


class BatchStatus(StrEnum):
    PENDING = "pending"
    INSTRUCTED = "instructed"
    SETTLED = "settled"
    FAILED = "failed"


class SettlementLineStatus(StrEnum):
    PENDING = "pending"
    INSTRUCTED = "instructed"
    SETTLED = "settled"
    FAILED = "failed"
    CARRIED = "carried"


class MismatchStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class DebtSource(StrEnum):
    """What a debt is owed for: a closed visit now, a loan instalment next."""

    VISIT = "visit"
    LOAN_INSTALMENT = "loan_instalment"


class Resident(Base):
    """A person; identity number, name and phone encrypted, found by keyed hash."""

    __tablename__ = "residents"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    id_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Instant)


class CreditLine(Base):
    """A bank-funded medical credit line: limit = held + outstanding + available."""

    __tablename__ = "credit_lines"
    __table_args__ = (
        CheckConstraint("held_fen >= 0 AND outstanding_fen >= 0", name="balances_not_negative"),
        CheckConstraint("held_fen + outstanding_fen <= limit_fen", name="within_limit"),
        # One line that is not closed per resident, however many imports or enrolments race.
        Index(
            "uq_credit_lines_open_resident",
            "resident_id",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=LineStatus.ACTIVE)  # LineStatus
    suspension_reason: Mapped[str | None] = mapped_column(String(32))
    limit_fen: Mapped[int] = money("The most the bank lends the resident at once.")
    held_fen: Mapped[int] = money("Credit reserved for hospitals' live holds.")
    outstanding_fen: Mapped[int] = money("The resident owes the bank (captured, not yet repaid).")
    source: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(Instant)
    closed_at: Mapped[datetime | None] = mapped_column(Instant)


class LineAccess(Base):
    """A hospital may see a line once it has checked the person or opened a visit."""

    __tablename__ = "line_access"
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    credit_line_id: Mapped[str] = mapped_column(ForeignKey("credit_lines.id"), primary_key=True)


class SettlementWindow(Base):
    """Captures and refunds fall into the one open window until it is closed."""

    __tablename__ = "settlement_windows"
    __table_args__ = (
        Index(
            "uq_settlement_windows_one_open",
            "status",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # WindowStatus: open → closed → settled
    opened_at: Mapped[datetime] = mapped_column(Instant)
    closed_at: Mapped[datetime | None] = mapped_column(Instant)
    settled_at: Mapped[datetime | None] = mapped_column(Instant)
    previous_window_id: Mapped[str | None] = mapped_column(String(32))  # the chain of windows


class OpenSettlementWindow(Base):
    """The one row naming the open window: what captures lock, and a close moves on.

    Captures and refunds read this row FOR SHARE; a close locks it, closes the
    window it names, opens the next and points here to it, in one transaction.
    A capture waiting on a close then reads the row again and finds the next
    window (a read of the windows by status would find none, as the one it
    waited on is closed and the next was not yet visible to it).
    """

    __tablename__ = "open_settlement_window"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    window_id: Mapped[str] = mapped_column(ForeignKey("settlement_windows.id"))


class Visit(Base):
    """A hospital visit paid by credit; closed once with the final bill."""

    __tablename__ = "visits"
    __table_args__ = (
        UniqueConstraint("hospital_id", "his_visit_id"),
        UniqueConstraint("hospital_id", "his_bill_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    hospital_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    credit_line_id: Mapped[str] = mapped_column(ForeignKey("credit_lines.id"), index=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))  # the line's, for settlement
    his_visit_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=VisitStatus.OPEN)  # VisitStatus
    opened_at: Mapped[datetime] = mapped_column(Instant)
    closed_at: Mapped[datetime | None] = mapped_column(Instant)
    his_bill_id: Mapped[str | None] = mapped_column(String(128))
    bill: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total_fen: Mapped[int] = money("The final bill: what the visit cost in all.")
    insurance_fen: Mapped[int] = money("Medical insurance owes the hospital its share.")
    self_pay_fen: Mapped[int] = money("The patient's own share, paid by the line.")
    captured_fen: Mapped[int] = money("The bank owes the hospital; the resident owes the bank.")
    released_fen: Mapped[int] = money("Held beyond the patient's share, given back to the line.")
    refunded_fen: Mapped[int] = money("The hospital gave back to the line (and the patient).")
    due_date: Mapped[date | None] = mapped_column(Date)
    settlement_window_id: Mapped[str | None] = mapped_column(
        ForeignKey("settlement_windows.id"), index=True
    )

    @property
    def refundable_fen(self) -> int:
        """What the hospital may still refund: captured less earlier refunds."""
        return self.captured_fen - self.refunded_fen


class Authorization(Base):
    """A two-phase hold on a line for one charge: held → captured|released|voided|expired."""

    __tablename__ = "authorizations"
    __table_args__ = (
        UniqueConstraint("hospital_id", "his_order_id"),
        Index("ix_authorizations_live", "credit_line_id", "status", "expires_at"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), index=True)
    credit_line_id: Mapped[str] = mapped_column(ForeignKey("credit_lines.id"))
    hospital_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    his_order_id: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=AuthorizationStatus.HELD)
    amount_fen: Mapped[int] = money("Credit reserved on the line for this charge.")
    initial_fen: Mapped[int] = money("The amount first held (before increments).")
    captured_fen: Mapped[int] = money("Taken from this hold at the visit's close.")
    created_at: Mapped[datetime] = mapped_column(Instant)
    expires_at: Mapped[datetime] = mapped_column(Instant)


class Debt(Base):
    """What is owed to a bank for one source, and when it is due: the shared
    collections' unit of work.

    The source is a closed visit (a resident owes the bank of a credit line) or
    a past-due loan instalment (`<loan id>:<n>`: a firm owes the loan's bank,
    with no credit line; hub/loans/delinquency.py records it and keeps what was
    paid in step with the schedule). At most one debt per source. Unpaid =
    amount - paid - reduced, in Python and in SQL alike.
    """

    __tablename__ = "debts"
    __table_args__ = (
        UniqueConstraint("source_kind", "source_id"),
        Index("ix_debts_line_due", "credit_line_id", "due_date"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    source_kind: Mapped[str] = mapped_column(String(16))  # DebtSource
    source_id: Mapped[str] = mapped_column(String(64))  # the visit or `<loan id>:<n>`
    # The line a visit's debt is on; None for a loan instalment (no credit line).
    credit_line_id: Mapped[str | None] = mapped_column(ForeignKey("credit_lines.id"))
    due_date: Mapped[date] = mapped_column(Date)
    amount_fen: Mapped[int] = money("Captured at the close: the resident owes the bank.")
    paid_fen: Mapped[int] = money("Repaid by the resident to the bank.")
    reduced_fen: Mapped[int] = money("Forgiven by a refund of this visit.")

    @hybrid_property
    def unpaid_fen(self) -> int:
        """What the resident still owes on this debt (a SQL expression on the class)."""
        return self.amount_fen - self.paid_fen - self.reduced_fen


class Refund(Base):
    """Part of a closed visit given back by the hospital."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("hospital_id", "his_refund_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), index=True)
    hospital_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))  # the line's, for settlement
    his_refund_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(500))
    amount_fen: Mapped[int] = money("The hospital gives back; its next settlement shrinks.")
    debt_reduced_fen: Mapped[int] = money("Taken off what the resident still owed for the visit.")
    returned_to_patient_fen: Mapped[int] = money("The bank owes the patient (already repaid).")
    settlement_window_id: Mapped[str] = mapped_column(
        ForeignKey("settlement_windows.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(Instant)


class Repayment(Base):
    """The resident repaid the bank, as the bank reports it."""

    __tablename__ = "repayments"
    __table_args__ = (UniqueConstraint("bank_id", "bank_txn_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    credit_line_id: Mapped[str] = mapped_column(ForeignKey("credit_lines.id"), index=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    bank_txn_id: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = money("The resident paid the bank; the debt shrinks by as much.")
    outstanding_after_fen: Mapped[int] = money("What the resident still owed the bank after it.")
    paid_at: Mapped[datetime] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)


class Enrollment(Base):
    """A resident's request for a medical credit line, decided once by the enrolment flow."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index(
            "uq_enrollments_pending_resident",
            "id_number_hash",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_enrollments_due", "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"))
    id_number_hash: Mapped[str] = mapped_column(String(64))
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=EnrollmentStatus.PENDING)
    decline_reason: Mapped[str | None] = mapped_column(String(32))
    credit_line_id: Mapped[str | None] = mapped_column(ForeignKey("credit_lines.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    next_attempt_at: Mapped[datetime] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)
    decided_at: Mapped[datetime | None] = mapped_column(Instant)


class SettlementBatch(Base):
    """What one bank pays hospitals for one closed window (deferred net)."""

    __tablename__ = "settlement_batches"
    __table_args__ = (UniqueConstraint("window_id", "bank_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    window_id: Mapped[str] = mapped_column(ForeignKey("settlement_windows.id"))
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.PENDING)  # BatchStatus
    created_at: Mapped[datetime] = mapped_column(Instant)


class SettlementLine(Base):
    """One bank and hospital in one window: net = captured - refunded + carried in."""

    __tablename__ = "settlement_lines"
    __table_args__ = (
        UniqueConstraint("window_id", "bank_id", "hospital_id"),
        Index("ix_settlement_lines_batch", "batch_id"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("settlement_batches.id"))
    window_id: Mapped[str] = mapped_column(ForeignKey("settlement_windows.id"))
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    hospital_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    captured_fen: Mapped[int] = money("Captured in the window: the bank owes the hospital.")
    refunded_fen: Mapped[int] = money("Refunded in the window: the hospital gives back.")
    carried_in_fen: Mapped[int] = money("The pair's negative net brought from the window before.")
    net_fen: Mapped[int] = money("What the bank pays the hospital (carried on when not positive).")
    status: Mapped[str] = mapped_column(String(16))  # SettlementLineStatus
    transfer_ref: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(200))
    instructed_at: Mapped[datetime | None] = mapped_column(Instant)
    settled_at: Mapped[datetime | None] = mapped_column(Instant)


class Mismatch(Base):
    """A difference reconciliation found, kept until an operator resolves it."""

    __tablename__ = "reconciliation_mismatches"
    __table_args__ = (UniqueConstraint("window_id", "source", "kind", "ref"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    window_id: Mapped[str] = mapped_column(ForeignKey("settlement_windows.id"))
    source: Mapped[str] = mapped_column(String(80))  # "hospital:XMH1", "bank:XMBANK"
    kind: Mapped[str] = mapped_column(String(32))  # missing_in_hub, missing_at_partner, ...
    ref: Mapped[str] = mapped_column(String(160))
    hub_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    partner_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=MismatchStatus.OPEN)
    resolution: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Instant)
    resolved_at: Mapped[datetime | None] = mapped_column(Instant)


class CollectionStep(Base):
    """A collections step taken for one debt, once: reminders, suspension, report."""

    __tablename__ = "collection_steps"
    debt_id: Mapped[str] = mapped_column(ForeignKey("debts.id"), primary_key=True)
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    credit_line_id: Mapped[str | None] = mapped_column(ForeignKey("credit_lines.id"))  # the debt's
    business_date: Mapped[date] = mapped_column(Date)
    done_at: Mapped[datetime] = mapped_column(Instant)
