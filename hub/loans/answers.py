"""Banks' answers and the firm's acceptance (CONTRACT.md §4 Matching, deadlines,
answers).

Each bank the application was offered to answers once, before `respond_by`,
with an offer within one of its products (and no more than the firm asked for)
or a decline; when every bank has declined, the application is declined
`all_banks_declined`. An offer is valid until 7 days (setting) after
`respond_by`. The firm takes one open offer through its channel: the other
offers lapse, the application is `accepted` and the offer becomes a loan.

Once the firm's consent is withdrawn or expired, the application takes no more
answers and no acceptance (409 `application_not_open`), even before the
withdrawal or the deadlines flow has declined it: no further use of the firm's
profile, and no loan.

Every answer and acceptance first locks the application row, so answers to one
application, the deadlines flow and acceptances take turns: two answers of one
bank give one 201 and one `already_answered`, two acceptances one loan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.core import events
from hub.core.errors import Conflict, FieldError, Invalid, not_found
from hub.core.ids import new_id
from hub.loans import loans, matching, products
from hub.loans.applications import Viewer, consent_holds, view
from hub.loans.applications import decline as decline_application
from models.loans.tables import (
    Answer,
    ApplicationBank,
    ApplicationStatus,
    DeclineReason,
    Loan,
    LoanApplication,
    LoanOffer,
    OfferStatus,
)


class ApplicationNotOpen(Conflict):
    code = "application_not_open"
    title = "The application no longer takes answers"


CONSENT_ENDED = "the firm's consent is withdrawn or expired"


class AlreadyAnswered(Conflict):
    code = "already_answered"
    title = "This bank has already answered the application"


class OfferExpired(Conflict):
    code = "offer_expired"
    title = "The offer has expired"


@dataclass(frozen=True)
class Answering:
    """An application locked for a bank's answer, with that bank's row."""

    application: LoanApplication
    row: ApplicationBank


def _lock_for_answer(session: Session, application_id: str, bank_id: str) -> Answering:
    """404 unless offered to this bank; locks the application, then the bank's row."""
    application = session.get(LoanApplication, application_id, with_for_update=True)
    row = (
        session.get(ApplicationBank, (application_id, bank_id), with_for_update=True)
        if application is not None
        else None
    )
    if application is None or row is None:
        raise not_found("loan application", application_id)
    return Answering(application, row)


def _may_answer(session: Session, answering: Answering, now: datetime) -> None:
    if answering.row.answer is not None:
        raise AlreadyAnswered(f"the bank answered with a {answering.row.answer} already")
    application = answering.application
    if application.status != ApplicationStatus.OPEN:
        raise ApplicationNotOpen(f"the application is {application.status}")
    assert application.respond_by is not None, "an open application has its deadline"
    if now > application.respond_by:
        raise ApplicationNotOpen("respond_by has passed")
    if not consent_holds(session, application, now):
        raise ApplicationNotOpen(CONSENT_ENDED)


def offer(
    session: Session,
    *,
    bank_id: str,
    application_id: str,
    product_code: str,
    terms: matching.Offer,
    offer_valid_days: int,
    now: datetime,
) -> LoanOffer:
    """The bank's offer on an application offered to it (201), within its product."""
    answering = _lock_for_answer(session, application_id, bank_id)
    product = products.bank_product(session, bank_id, product_code)
    if product is None:
        raise Invalid(
            "you have no product with this code",
            code="unknown_product",
            errors=[FieldError("product_code", "not one of your products")],
        )
    problems = matching.offer_problems(product, terms, answering.application.amount_fen)
    if problems:
        raise Invalid("the offer does not fit the product or the request", errors=problems)
    _may_answer(session, answering, now)
    application = answering.application
    assert application.respond_by is not None
    made = LoanOffer(
        id=new_id("lof"),
        application_id=application.id,
        bank_id=bank_id,
        product_code=product_code,
        amount_fen=terms.amount_fen,
        annual_rate_bps=terms.annual_rate_bps,
        term_months=terms.term_months,
        status=OfferStatus.OPEN,
        expires_at=application.respond_by + timedelta(days=offer_valid_days),
        created_at=now,
    )
    session.add(made)
    answering.row.answer, answering.row.answered_at = Answer.OFFER, now
    session.flush()
    _announce_answer(session, application, bank_id, now)
    return made


def decline(
    session: Session, *, bank_id: str, application_id: str, reason: str, now: datetime
) -> dict[str, Any]:
    """The bank declines an application offered to it (201); the last decline of all
    the banks declines the application."""
    answering = _lock_for_answer(session, application_id, bank_id)
    _may_answer(session, answering, now)
    row, application = answering.row, answering.application
    row.answer, row.decline_reason, row.answered_at = Answer.DECLINE, reason, now
    session.flush()
    _announce_answer(session, application, bank_id, now)
    answers = session.scalars(
        select(ApplicationBank.answer).where(ApplicationBank.application_id == application.id)
    ).all()
    if all(answer == Answer.DECLINE for answer in answers):
        decline_application(session, application, DeclineReason.ALL_BANKS_DECLINED, now)
    return {
        "application_id": application.id,
        "answer": Answer.DECLINE,
        "reason": reason,
        "answered_at": now,
    }


def _announce_answer(
    session: Session, application: LoanApplication, bank_id: str, now: datetime
) -> None:
    """`loan_application.answered` to the channel and the bank, each as it sees it."""
    for viewer in (Viewer(application.channel_id, "channel"), Viewer(bank_id, "bank")):
        data = view(session, application, viewer, now)
        events.emit(session, "loan_application.answered", data, [viewer.partner_id], now)


def accept(session: Session, *, channel_id: str, offer_id: str, now: datetime) -> Loan:
    """The firm takes an open offer (201): the others lapse, the offer becomes a loan."""
    found = session.get(LoanOffer, offer_id)
    application = (
        session.get(LoanApplication, found.application_id, with_for_update=True)
        if found is not None
        else None
    )
    if found is None or application is None or application.channel_id != channel_id:
        raise not_found("offer", offer_id)
    # Read again under the application's lock: what was read before it may be stale.
    chosen = session.get_one(LoanOffer, offer_id, with_for_update=True, populate_existing=True)
    if chosen.status == OfferStatus.EXPIRED or (
        chosen.status == OfferStatus.OPEN and chosen.expires_at <= now
    ):
        raise OfferExpired(f"the offer expired at {chosen.expires_at.isoformat()}")
    if application.status != ApplicationStatus.OPEN or chosen.status != OfferStatus.OPEN:
        raise ApplicationNotOpen(f"the application is {application.status}")
    if not consent_holds(session, application, now):
        raise ApplicationNotOpen(CONSENT_ENDED)  # no loan on a consent that no longer holds
    chosen.status = OfferStatus.ACCEPTED
    lapse_offers(session, application.id, but=chosen.id)
    application.status = ApplicationStatus.ACCEPTED
    application.decided_at = now
    session.flush()
    loan = loans.approve(session, application, chosen, now)
    for viewer in (Viewer(channel_id, "channel"), Viewer(chosen.bank_id, "bank")):
        data = view(session, application, viewer, now)
        events.emit(session, "loan_application.accepted", data, [viewer.partner_id], now)
    return loan


def lapse_offers(session: Session, application_id: str, but: str | None = None) -> None:
    """Every offer on the application still open lapses (but the one the firm took):
    the firm took another, or the application was declined under it."""
    lapsing = update(LoanOffer).where(
        LoanOffer.application_id == application_id, LoanOffer.status == OfferStatus.OPEN
    )
    if but is not None:
        lapsing = lapsing.where(LoanOffer.id != but)
    session.execute(lapsing.values(status=OfferStatus.LAPSED))
