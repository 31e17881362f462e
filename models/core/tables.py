"""The shared core's tables: partners, the ledger, idempotency, consent and the
credit-database audit, the event outbox; and the base every programme's tables use.

Money columns are integer fen (`BigInteger`, named `*_fen`); each says who owes
whom when it grows. Instants are stored as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("instants must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Instant = UTCDateTime()
Id = String(32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def money(doc: str, **kwargs: Any) -> Mapped[int]:
    """An integer-fen column documented with who owes whom when it grows."""
    return mapped_column(BigInteger, nullable=False, default=0, doc=doc, **kwargs)


class Partner(Base):
    """A hospital, bank, channel or operator that calls the hub."""

    __tablename__ = "partners"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # The secret before the last rotation: deliveries are signed with it too until
    # `webhook_secret_previous_until`, so receivers can switch over at their pace.
    webhook_secret_previous_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_secret_previous_until: Mapped[datetime | None] = mapped_column(Instant)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(Instant)


class PartnerKey(Base):
    """An API key, stored only as its hash; a rotated key lapses at `expires_at`."""

    __tablename__ = "partner_keys"
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Instant)
    expires_at: Mapped[datetime | None] = mapped_column(Instant)


class LedgerPosting(Base):
    """One leg of a balanced journal entry; the legs of an entry sum to zero.

    Debits are positive. Rows are never updated: a mistake is undone by a
    reversing entry.
    """

    __tablename__ = "ledger_postings"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    entry_id: Mapped[str] = mapped_column(Id, index=True)
    account: Mapped[str] = mapped_column(String(160), index=True)
    amount_fen: Mapped[int] = money("Debit (positive) or credit (negative) to the account.")
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(Instant)


class IdempotencyKey(Base):
    """The first outcome of a partner's request under a key, replayed to retries."""

    __tablename__ = "idempotency_keys"
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_body: Mapped[Any] = mapped_column(JSON)
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Instant, index=True)


class Consent(Base):
    """A person's or firm's consent to one purpose, recorded by the partner that took it."""

    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    subject_hash: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    scope: Mapped[Any] = mapped_column(JSON, nullable=True)
    text_version: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(Instant)
    expires_at: Mapped[datetime | None] = mapped_column(Instant)
    withdrawn_at: Mapped[datetime | None] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)


class BureauLookup(Base):
    """The append-only audit of every use of the public credit database."""

    __tablename__ = "bureau_lookups"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    requested_by: Mapped[str] = mapped_column(String(64))
    subject_hash: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    consent_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(Instant)
    outcome: Mapped[str] = mapped_column(String(32))
    reused: Mapped[bool] = mapped_column(default=False)


class BureauRecord(Base):
    """A lookup's answer, kept (encrypted) for reuse within its validity."""

    __tablename__ = "bureau_records"
    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # None: unknown to the bureau
    fetched_at: Mapped[datetime] = mapped_column(Instant)


class EventStatus(StrEnum):
    """An outbox row: pending until delivered, or failed once its attempts run out."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Event(Base):
    """The outbox: one event for one recipient, written with the change it reports."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_due", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(Id, index=True)  # the same for every recipient
    type: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    payload: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    next_attempt_at: Mapped[datetime] = mapped_column(Instant)
    created_at: Mapped[datetime] = mapped_column(Instant)
    delivered_at: Mapped[datetime | None] = mapped_column(Instant)


def table_of(model: type[Base]) -> Table:
    """The Core table behind a model, for statements built once on hot paths."""
    return cast(Table, model.__table__)
