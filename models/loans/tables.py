"""Credit-easy loans for small firms (CONTRACT.md §4): banks' products, firms,
applications under a firm's consent and the banks they were offered to, offers,
loans with their schedules and repayments, the risk-compensation fund, and
interest subsidies.

Money columns are integer fen (`BigInteger`, named `*_fen`); each says who owes
whom when it grows. Instants are stored as aware UTC; business dates as dates.
A firm's credit-database record is never stored here: only the profile banks
may see (score, grade, banded indicators), on the application.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from models.core.tables import Base, Id, Instant, money

# Statuses: stored as their values in String columns, shown as them in JSON.


class ApplicationStatus(StrEnum):
    PROFILING = "profiling"  # waiting for the profiling flow
    OPEN = "open"  # offered to at least one bank, awaiting answers
    ACCEPTED = "accepted"  # the firm took an offer
    DECLINED = "declined"  # see DeclineReason
    EXPIRED = "expired"  # no offer by respond_by


PENDING_APPLICATION = (ApplicationStatus.PROFILING, ApplicationStatus.OPEN)


class DeclineReason(StrEnum):
    DISHONEST_ENTITY = "dishonest_entity"
    NO_MATCHING_PRODUCT = "no_matching_product"
    CONSENT_EXPIRED = "consent_expired"
    FIRM_UNKNOWN = "firm_unknown"
    ALL_BANKS_DECLINED = "all_banks_declined"


class Answer(StrEnum):
    """A bank's answer to an application offered to it."""

    OFFER = "offer"
    DECLINE = "decline"


class OfferStatus(StrEnum):
    OPEN = "open"  # the firm may accept it until expires_at
    ACCEPTED = "accepted"
    LAPSED = "lapsed"  # the firm took another offer, or the application closed
    EXPIRED = "expired"


class LoanStatus(StrEnum):
    APPROVED = "approved"  # accepted, not yet paid out
    ACTIVE = "active"
    OVERDUE = "overdue"  # 1+ days past due
    DEFAULTED = "defaulted"  # 90+ days past due; ends only when closed
    CLOSED = "closed"  # repaid in full


class SubsidyStatus(StrEnum):
    GRANTED = "granted"  # recorded; the bank is to be instructed
    INSTRUCTED = "instructed"  # the bank accepted the instruction to pay the firm
    FAILED = "failed"  # the bank refused it for good


class LoanProduct(Base):
    """A bank's loan product; a change applies to applications matched after it."""

    __tablename__ = "loan_products"
    __table_args__ = (UniqueConstraint("bank_id", "code"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    min_score: Mapped[int] = mapped_column(Integer)
    max_amount_fen: Mapped[int] = mapped_column(BigInteger)  # a limit, not a balance
    max_term_months: Mapped[int] = mapped_column(Integer)
    annual_rate_bps_min: Mapped[int] = mapped_column(Integer)
    annual_rate_bps_max: Mapped[int] = mapped_column(Integer)
    industries: Mapped[Any] = mapped_column(JSON, nullable=True)  # None: every industry
    created_at: Mapped[datetime] = mapped_column(Instant)
    updated_at: Mapped[datetime] = mapped_column(Instant)


class Firm(Base):
    """A small firm, known by its unified social credit code (GB 32100)."""

    __tablename__ = "firms"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))  # as the channel gave it
    created_at: Mapped[datetime] = mapped_column(Instant)


class LoanApplication(Base):
    """A firm's application through a channel, under its consent.

    `profile` is exactly the contract's profile (what banks may see); the
    credit database's record behind it is not kept. At most one application of
    a firm is pending (profiling or open) at a time.
    """

    __tablename__ = "loan_applications"
    __table_args__ = (
        Index(
            "uq_loan_applications_pending_firm",
            "firm_id",
            unique=True,
            postgresql_where=text("status IN ('profiling', 'open')"),
            sqlite_where=text("status IN ('profiling', 'open')"),
        ),
        Index("ix_loan_applications_status_respond_by", "status", "respond_by"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    firm_id: Mapped[str] = mapped_column(ForeignKey("firms.id"), index=True)
    channel_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # asked for, not yet owed
    term_months: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=ApplicationStatus.PROFILING)
    decline_reason: Mapped[str | None] = mapped_column(String(32))
    profile: Mapped[Any] = mapped_column(JSON, nullable=True)
    respond_by: Mapped[datetime | None] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)
    opened_at: Mapped[datetime | None] = mapped_column(Instant)
    decided_at: Mapped[datetime | None] = mapped_column(Instant)


class ApplicationBank(Base):
    """A bank an application was offered to, and its one answer."""

    __tablename__ = "application_banks"
    __table_args__ = (Index("ix_application_banks_bank_offered", "bank_id", "offered_at"),)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("loan_applications.id"), primary_key=True
    )
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    offered_at: Mapped[datetime] = mapped_column(Instant)
    answer: Mapped[str | None] = mapped_column(String(16))  # Answer; None: not yet
    decline_reason: Mapped[str | None] = mapped_column(String(500))
    answered_at: Mapped[datetime | None] = mapped_column(Instant)


class LoanOffer(Base):
    """A bank's offer on an application, within one of its products."""

    __tablename__ = "loan_offers"
    __table_args__ = (UniqueConstraint("application_id", "bank_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("loan_applications.id"))
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    product_code: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # offered, not yet owed
    annual_rate_bps: Mapped[int] = mapped_column(Integer)
    term_months: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.OPEN)
    expires_at: Mapped[datetime] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)


class Loan(Base):
    """The loan an accepted offer became; its schedule is fixed at disbursement."""

    __tablename__ = "loans"
    __table_args__ = (
        UniqueConstraint("bank_id", "disbursement_txn_id"),
        Index("ix_loans_status", "status"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("loan_applications.id"), unique=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("loan_offers.id"), unique=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    channel_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    firm_id: Mapped[str] = mapped_column(ForeignKey("firms.id"), index=True)
    grade: Mapped[str] = mapped_column(String(1))  # the profile's, when the loan was taken
    principal_fen: Mapped[int] = mapped_column(BigInteger)  # the offered amount
    annual_rate_bps: Mapped[int] = mapped_column(Integer)
    term_months: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=LoanStatus.APPROVED)
    outstanding_principal_fen: Mapped[int] = money("The firm owes the bank this principal.")
    days_past_due: Mapped[int] = mapped_column(Integer, default=0)
    disbursement_txn_id: Mapped[str | None] = mapped_column(String(128))
    disbursed_on: Mapped[date | None] = mapped_column(Date)  # business date; sets due dates
    disbursed_at: Mapped[datetime | None] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)
    defaulted_at: Mapped[datetime | None] = mapped_column(Instant)
    closed_at: Mapped[datetime | None] = mapped_column(Instant)


class LoanInstalment(Base):
    """One month of a loan's annuity schedule and what has been paid on it."""

    __tablename__ = "loan_instalments"
    __table_args__ = (Index("ix_loan_instalments_due_date", "due_date"),)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    due_date: Mapped[date] = mapped_column(Date)
    principal_fen: Mapped[int] = money("Principal due on this date: the firm owes the bank.")
    interest_fen: Mapped[int] = money("Interest due on this date: the firm owes the bank.")
    paid_fen: Mapped[int] = money("Paid towards this instalment (interest first).")

    @hybrid_property
    def unpaid_fen(self) -> int:
        """What the firm still owes on this instalment (a SQL expression on the class)."""
        return self.principal_fen + self.interest_fen - self.paid_fen


class LoanRepayment(Base):
    """A repayment the bank reported, and how it was allocated."""

    __tablename__ = "loan_repayments"
    __table_args__ = (UniqueConstraint("bank_id", "bank_txn_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id"), index=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    bank_txn_id: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = money("The firm paid the bank.")
    overdue_interest_fen: Mapped[int] = money("Of it, interest past due.")
    overdue_principal_fen: Mapped[int] = money("Of it, principal past due.")
    current_interest_fen: Mapped[int] = money("Of it, the current instalment's interest.")
    current_principal_fen: Mapped[int] = money("Of it, the current instalment's principal.")
    early_principal_fen: Mapped[int] = money("Of it, principal repaid before it was due.")
    fund_share_fen: Mapped[int] = money("Of it, owed back to the fund after a claim.")
    outstanding_after_fen: Mapped[int] = money(
        "The loan's principal the firm still owed the bank after it (what a replay shows)."
    )
    paid_at: Mapped[datetime] = mapped_column(Instant)
    paid_on: Mapped[date] = mapped_column(Date)  # business date: the subsidy's month
    created_at: Mapped[datetime] = mapped_column(Instant)


class FundDeposit(Base):
    """Money the operator added to the risk-compensation fund."""

    __tablename__ = "fund_deposits"
    __table_args__ = (UniqueConstraint("operator_id", "reference"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    reference: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = money("Added to the fund.")
    # The fund's balance just after this deposit: what the deposit answered, so that
    # a repeat of its reference replays the same answer (as Repayment's outstanding).
    balance_after_fen: Mapped[int] = money("The fund held this much after the deposit.")
    created_at: Mapped[datetime] = mapped_column(Instant)


class FundClaim(Base):
    """The fund's share of a defaulted loan, paid to its bank once."""

    __tablename__ = "fund_claims"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id"), unique=True)
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    unpaid_principal_fen: Mapped[int] = money("Unpaid principal when claimed.")
    share_bps: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = money("The fund paid the bank.")
    recovered_fen: Mapped[int] = money("Recovered by the bank since (all of it, not the share).")
    returned_fen: Mapped[int] = money("The fund's share of the recoveries, back to the fund.")
    created_at: Mapped[datetime] = mapped_column(Instant)


class Subsidy(Base):
    """An interest subsidy granted without application: one per loan and month."""

    __tablename__ = "subsidies"
    __table_args__ = (UniqueConstraint("loan_id", "month"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id"))
    bank_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    channel_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, business time: the interest's
    interest_paid_fen: Mapped[int] = money("Interest the firm paid in the month.")
    amount_fen: Mapped[int] = money("The programme pays the firm, through the bank.")
    # Why this amount: the rule (hub/loans/subsidies.RULES names its formula) and its
    # figures besides the interest and the amount above, as the loan stood then.
    rule: Mapped[str] = mapped_column(String(32))
    grade: Mapped[str] = mapped_column(String(1))
    annual_rate_bps: Mapped[int] = mapped_column(Integer)
    points_bps: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=SubsidyStatus.GRANTED)
    bank_reference: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Instant)
    instructed_at: Mapped[datetime | None] = mapped_column(Instant)
