"""Loan applications (CONTRACT.md §4 Applications): a firm applies through a
channel under its consent, and the application as each partner may see it.

Submitting records the consent (purpose `business_loan`, scope: the banks it
names, or all) and the firm, and leaves the application `profiling` for the
profiling flow. A firm has at most one pending (profiling or open) application:
a partial unique index holds that under races, and the loser gets a 409.

Who sees what: the channel that submitted it sees the application with every
offer; a bank it was offered to sees the profile and its own offer; anyone else
gets a 404. The firm's code is always masked, and nothing of the credit
database's record but the profile is ever shown — and the profile only while
the firm's consent holds: once it is withdrawn or expired a bank reads
`profile: null` (§5: a withdrawal stops every further use at once).

Every decline is recorded and announced the same way (`decline`): the channel
is told `loan_application.declined`, with the application as it sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core import consent, events
from hub.core.bureau import PURPOSE_BUSINESS_LOAN
from hub.core.clock import as_utc
from hub.core.errors import Conflict, FieldError, Invalid, not_found
from hub.core.ids import new_id
from hub.core.pagination import Page, newest_first
from hub.core.personal_data import Vault
from hub.core.uscc import mask_uscc, normalize_uscc
from hub.loans.matching import ALL_BANKS
from models.core.tables import Consent, Partner
from models.loans.tables import (
    PENDING_APPLICATION,
    ApplicationBank,
    ApplicationStatus,
    DeclineReason,
    Firm,
    LoanApplication,
    LoanOffer,
    OfferStatus,
)

CONSENT_TEXT_VERSION = "business_loan"  # the contract's loan consent carries no text version
CLOCK_SKEW = timedelta(minutes=5)  # a partner's clock may run this far ahead of ours


class ApplicationPending(Conflict):
    code = "application_pending"
    title = "The firm already has a pending application"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a channel or a bank (by partner id)."""

    partner_id: str
    kind: str


@dataclass(frozen=True)
class Ask:
    """What the firm asks for, through the channel, under which consent."""

    uscc: str
    firm_name: str
    amount_fen: int
    term_months: int
    purpose: str
    granted_at: datetime
    expires_at: datetime
    banks: list[str]


def invalid_uscc(field: str = "uscc") -> Invalid:
    """A firm code that fails GB 32100 (never echoed back)."""
    return Invalid(
        f"{field} is not a valid unified social credit code (GB 32100)",
        code="invalid_uscc",
        errors=[FieldError(field, "not a valid 18-character unified social credit code")],
    )


def _consented_banks(session: Session, banks: list[str]) -> list[str]:
    """`["*"]`, or the named banks (each an active bank partner), sorted and once each."""
    if banks == [ALL_BANKS]:
        return banks
    if ALL_BANKS in banks:
        raise Invalid(
            'consent.banks is ["*"] or a list of bank codes, not both',
            errors=[FieldError("consent.banks", 'either ["*"] or bank codes')],
        )
    known = set(
        session.scalars(
            select(Partner.code).where(
                Partner.code.in_(banks), Partner.kind == "bank", Partner.status == "active"
            )
        )
    )
    unknown = [FieldError(f"consent.banks.{i}", "no such bank") for i, code in enumerate(banks)]
    unknown = [e for e, code in zip(unknown, banks, strict=True) if code not in known]
    if unknown:
        raise Invalid("consent.banks names no bank partner", code="unknown_bank", errors=unknown)
    return sorted(set(banks))


def _check_consent(ask: Ask, now: datetime) -> None:
    if ask.granted_at > now + CLOCK_SKEW:
        raise Invalid(
            "consent.granted_at is in the future",
            errors=[FieldError("consent.granted_at", "must not be in the future")],
        )
    if ask.expires_at <= ask.granted_at:
        raise Invalid(
            "consent.expires_at is not after consent.granted_at",
            errors=[FieldError("consent.expires_at", "must be after granted_at")],
        )


def _firm(session: Session, uscc: str, name: str, now: datetime) -> Firm:
    """The firm with this code, made on its first application."""
    found = session.scalar(select(Firm).where(Firm.uscc == uscc))
    if found is not None:
        return found
    try:
        with session.begin_nested():  # a racing first application may insert it first
            firm = Firm(id=new_id("firm"), uscc=uscc, name=name, created_at=now)
            session.add(firm)
        return firm
    except IntegrityError:
        found = session.scalar(select(Firm).where(Firm.uscc == uscc))
        assert found is not None, "the racing insert committed"
        return found


def submit(
    session: Session, vault: Vault, *, channel_id: str, ask: Ask, now: datetime
) -> LoanApplication:
    """Record the consent, the firm and a `profiling` application; 409 when one is pending."""
    uscc = normalize_uscc(ask.uscc)
    if uscc is None:
        raise invalid_uscc()
    _check_consent(ask, now)
    banks = _consented_banks(session, ask.banks)
    firm = _firm(session, uscc, ask.firm_name, now)
    pending = session.scalar(
        select(LoanApplication.id).where(
            LoanApplication.firm_id == firm.id, LoanApplication.status.in_(PENDING_APPLICATION)
        )
    )
    if pending is not None:
        raise ApplicationPending("the firm already has an application being profiled or open")
    granted = consent.record(
        session,
        partner_id=channel_id,
        subject_hash=vault.lookup_hash(uscc),
        purpose=PURPOSE_BUSINESS_LOAN,
        text_version=CONSENT_TEXT_VERSION,
        granted_at=ask.granted_at,
        expires_at=ask.expires_at,
        scope={"banks": banks},
        now=now,
    )
    application = LoanApplication(
        id=new_id("lap"),
        firm_id=firm.id,
        channel_id=channel_id,
        consent_id=granted.id,
        amount_fen=ask.amount_fen,
        term_months=ask.term_months,
        purpose=ask.purpose,
        status=ApplicationStatus.PROFILING,
        created_at=now,
    )
    try:
        with session.begin_nested():  # the partial unique index: a racing submission won
            session.add(application)
    except IntegrityError as exc:
        raise ApplicationPending(
            "the firm already has an application being profiled or open"
        ) from exc
    return application


def visible(session: Session, application_id: str, viewer: Viewer) -> LoanApplication:
    """The application, if the viewer may see it (else 404, as if it did not exist)."""
    application = session.get(LoanApplication, application_id)
    if application is not None and may_see(session, application, viewer):
        return application
    raise not_found("loan application", application_id)


def may_see(session: Session, application: LoanApplication, viewer: Viewer) -> bool:
    if viewer.kind == "channel":
        return application.channel_id == viewer.partner_id
    if viewer.kind == "bank":
        return session.get(ApplicationBank, (application.id, viewer.partner_id)) is not None
    return False


def consent_holds(session: Session, application: LoanApplication, now: datetime) -> bool:
    """Whether the firm's consent still allows using its profile (not withdrawn,
    not expired)."""
    granted = session.get_one(Consent, application.consent_id)
    return consent.status(granted, now) == "active"


def decline(
    session: Session, application: LoanApplication, reason: DeclineReason, now: datetime
) -> None:
    """Decline the application (locked by the caller) and tell the channel, with the
    application as it sees it (every decline, whatever its reason)."""
    application.status = ApplicationStatus.DECLINED
    application.decline_reason = reason
    application.decided_at = now
    session.flush()
    data = view(session, application, Viewer(application.channel_id, "channel"), now)
    events.emit(session, "loan_application.declined", data, [application.channel_id], now)


def offer_status(offer: LoanOffer, now: datetime) -> str:
    """An open offer reads `expired` from its expires_at on, whether or not the
    deadlines flow has run."""
    if offer.status == OfferStatus.OPEN and as_utc(offer.expires_at) <= now:
        return OfferStatus.EXPIRED
    return offer.status


def offer_view(offer: LoanOffer, bank_code: str, now: datetime) -> dict[str, Any]:
    return {
        "offer_id": offer.id,
        "application_id": offer.application_id,
        "bank_code": bank_code,
        "product_code": offer.product_code,
        "amount_fen": offer.amount_fen,
        "annual_rate_bps": offer.annual_rate_bps,
        "term_months": offer.term_months,
        "status": offer_status(offer, now),
        "expires_at": as_utc(offer.expires_at),
        "created_at": as_utc(offer.created_at),
    }


def view(
    session: Session,
    application: LoanApplication,
    viewer: Viewer,
    now: datetime,
    *,
    offers: Sequence[tuple[LoanOffer, str]] | None = None,
) -> dict[str, Any]:
    """The application as `GET /v1/loan-applications/{id}` shows it to this viewer.
    `offers`: the viewer's offers with their banks' codes, oldest first, when the
    caller knows them without asking (an application just opened has none)."""
    firm = session.get_one(Firm, application.firm_id)
    if offers is None:
        query = select(LoanOffer, Partner.code).join(Partner, Partner.id == LoanOffer.bank_id)
        query = query.where(LoanOffer.application_id == application.id)
        if viewer.kind != "channel":
            query = query.where(LoanOffer.bank_id == viewer.partner_id)
        offers = [(o, code) for o, code in session.execute(query.order_by(LoanOffer.id))]
    body: dict[str, Any] = {
        "application_id": application.id,
        "status": application.status,
        "decline_reason": application.decline_reason,
        "amount_fen": application.amount_fen,
        "term_months": application.term_months,
        "purpose": application.purpose,
        "respond_by": as_utc(application.respond_by) if application.respond_by else None,
        "offers": [offer_view(offer, code, now) for offer, code in offers],
        "firm": {"uscc": mask_uscc(firm.uscc), "name": firm.name},
        "created_at": as_utc(application.created_at),
    }
    if viewer.kind == "bank":
        # Only while the consent holds: a withdrawn or expired one stops the use at once,
        # before any flow has declined the application.
        shown = application.profile is not None and consent_holds(session, application, now)
        body["profile"] = application.profile if shown else None
    else:
        body["consent_id"] = application.consent_id
    return body


def awaiting_answer(
    session: Session, bank_id: str, params: Mapping[str, str], now: datetime
) -> Page[LoanApplication]:
    """Applications offered to the bank, open, before respond_by, under a consent that
    still holds, not yet answered by it."""
    status = params.get("status")
    if status != ApplicationStatus.OPEN:
        raise Invalid(
            "list the applications awaiting your answer with status=open",
            errors=[FieldError("status", "must be open")],
        )
    query = (
        select(LoanApplication)
        .join(ApplicationBank, ApplicationBank.application_id == LoanApplication.id)
        .join(Consent, Consent.id == LoanApplication.consent_id)
        .where(
            ApplicationBank.bank_id == bank_id,
            ApplicationBank.answer.is_(None),
            LoanApplication.status == ApplicationStatus.OPEN,
            LoanApplication.respond_by > now,
            consent.active_at(now),
        )
    )
    return newest_first(session, query, LoanApplication.id, params)
