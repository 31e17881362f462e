"""Consent (CONTRACT.md §5): the hub uses the public credit database about a
person or firm only under a consent that covers the purpose, is not expired
and is not withdrawn. A withdrawal stops every further use at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import Session

from hub.core.errors import not_found
from hub.core.ids import new_id
from models.core.tables import Consent

PURPOSES = ("medical_credit", "business_loan")


class ConsentNotValid(Exception):
    """The consent does not allow this use (missing, other purpose, expired, withdrawn)."""


@dataclass(frozen=True)
class ConsentView:
    consent_id: str
    purpose: str
    status: str
    granted_at: datetime
    expires_at: datetime | None
    withdrawn_at: datetime | None


def record(
    session: Session,
    *,
    partner_id: str,
    subject_hash: str,
    purpose: str,
    text_version: str,
    granted_at: datetime,
    expires_at: datetime | None,
    scope: Any,
    now: datetime,
) -> Consent:
    consent = Consent(
        id=new_id("cns"),
        partner_id=partner_id,
        subject_hash=subject_hash,
        purpose=purpose,
        scope=scope,
        text_version=text_version,
        granted_at=granted_at,
        expires_at=expires_at,
        withdrawn_at=None,
        created_at=now,
    )
    session.add(consent)
    session.flush()
    return consent


def status(consent: Consent, now: datetime) -> str:
    if consent.withdrawn_at is not None:
        return "withdrawn"
    if consent.expires_at is not None and consent.expires_at <= now:
        return "expired"
    return "active"


def active_at(now: datetime) -> ColumnElement[bool]:
    """The SQL condition on `Consent` that `status` reads as `active` at `now`."""
    return and_(
        Consent.withdrawn_at.is_(None), or_(Consent.expires_at.is_(None), Consent.expires_at > now)
    )


def require(
    session: Session, consent_id: str | None, subject_hash: str, purpose: str, now: datetime
) -> Consent:
    """The consent, if it allows using this subject's data for this purpose now."""
    consent = session.get(Consent, consent_id) if consent_id else None
    if consent is None or consent.subject_hash != subject_hash or consent.purpose != purpose:
        raise ConsentNotValid(f"no consent for {purpose}")
    state = status(consent, now)
    if state != "active":
        raise ConsentNotValid(f"the consent is {state}")
    return consent


def withdraw(session: Session, *, partner_id: str, consent_id: str, now: datetime) -> Consent:
    """Withdraw a consent recorded by this partner; withdrawing twice changes nothing."""
    consent = session.get(Consent, consent_id, with_for_update=True)
    if consent is None or consent.partner_id != partner_id:
        raise not_found("consent", consent_id)
    if consent.withdrawn_at is None:
        consent.withdrawn_at = now
    return consent


def view(consent: Consent, now: datetime) -> ConsentView:
    return ConsentView(
        consent.id,
        consent.purpose,
        status(consent, now),
        consent.granted_at,
        consent.expires_at,
        consent.withdrawn_at,
    )
