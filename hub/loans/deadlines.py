"""Deadlines (CONTRACT.md §4): what time closes, as the daily deadlines flow runs it.

- An offer past its `expires_at` is `expired` (reads already show it so; this
  brings the stored status up to date).
- An open application whose firm's consent has expired (or was withdrawn) is
  `declined` `consent_expired`, its open offers lapsed, as a withdrawal declines
  it at once (`hub.loans.consents`); this comes first, the consent's end being
  the reason that stands whatever else is due.
- An open application past `respond_by` with no offer that can still be taken
  is `expired`: no bank offered in time, or every offer has expired. The
  channel is told (`loan_application.expired`).

Each change is conditional on the state it leaves, so a rerun changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from hub.core import clock, consent, events
from hub.core.db import unit_of_work
from hub.loans.applications import Viewer, view
from hub.loans.consents import decline_if_consent_ended
from models.core.tables import Consent
from models.loans.tables import ApplicationStatus, LoanApplication, LoanOffer, OfferStatus

if TYPE_CHECKING:
    from hub.context import HubContext


@dataclass
class Swept:
    """What one sweep changed: offers expired, applications expired and what they
    asked, applications declined as their consent ended and what they asked."""

    offers: int = 0
    applications: int = 0
    applications_fen: int = 0
    declined: int = 0
    declined_fen: int = 0


def expire_offers(session: Session, now: datetime) -> int:
    """Mark every open offer past its expires_at expired; how many."""
    done = session.execute(
        update(LoanOffer)
        .where(LoanOffer.status == OfferStatus.OPEN, LoanOffer.expires_at <= now)
        .values(status=OfferStatus.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(done, "rowcount", 0) or 0)


def lapsed_applications(session: Session, now: datetime, limit: int) -> list[str]:
    """Open applications past respond_by with no open offer, oldest deadline first."""
    return list(
        session.scalars(
            select(LoanApplication.id)
            .where(
                LoanApplication.status == ApplicationStatus.OPEN,
                LoanApplication.respond_by < now,
                ~exists().where(
                    LoanOffer.application_id == LoanApplication.id,
                    LoanOffer.status == OfferStatus.OPEN,
                ),
            )
            .order_by(LoanApplication.respond_by, LoanApplication.id)
            .limit(limit)
        )
    )


def consent_ended(session: Session, now: datetime, limit: int) -> list[str]:
    """Open applications whose consent no longer holds, oldest first."""
    return list(
        session.scalars(
            select(LoanApplication.id)
            .join(Consent, Consent.id == LoanApplication.consent_id)
            .where(LoanApplication.status == ApplicationStatus.OPEN, ~consent.active_at(now))
            .order_by(LoanApplication.id)
            .limit(limit)
        )
    )


def decline_application(session: Session, application_id: str, now: datetime) -> int | None:
    """Decline one application `consent_expired` if it still qualifies; the amount it
    asked for, or None."""
    application = session.get(
        LoanApplication, application_id, with_for_update=True, populate_existing=True
    )
    if application is None or application.status != ApplicationStatus.OPEN:
        return None
    if not decline_if_consent_ended(session, application, now):
        return None
    return application.amount_fen


def expire_application(session: Session, application_id: str, now: datetime) -> int | None:
    """Expire one application if it still qualifies; the amount it asked for, or None."""
    application = session.get(LoanApplication, application_id, with_for_update=True)
    if (
        application is None
        or application.status != ApplicationStatus.OPEN
        or application.respond_by is None
        or application.respond_by >= now
    ):
        return None
    live = session.scalar(
        select(LoanOffer.id).where(
            LoanOffer.application_id == application.id, LoanOffer.status == OfferStatus.OPEN
        )
    )
    if live is not None:
        return None
    application.status = ApplicationStatus.EXPIRED
    application.decided_at = now
    session.flush()
    data = view(session, application, Viewer(application.channel_id, "channel"), now)
    events.emit(session, "loan_application.expired", data, [application.channel_id], now)
    return application.amount_fen


def sweep(ctx: HubContext, batch: int) -> Swept:
    """One batch: expire the offers due, then decline up to `batch` applications whose
    consent ended, then expire up to `batch` applications."""
    swept = Swept()
    now = clock.now()
    # Offers first, in a transaction of their own: it takes no application's lock, so it
    # never waits in a cycle with an acceptance (which locks the application, then offers).
    with unit_of_work(ctx.engine) as session:
        swept.offers = expire_offers(session, now)
    with unit_of_work(ctx.engine) as session:
        for application_id in consent_ended(session, now, batch):
            asked = decline_application(session, application_id, now)
            if asked is not None:
                swept.declined += 1
                swept.declined_fen += asked
    with unit_of_work(ctx.engine) as session:
        for application_id in lapsed_applications(session, now, batch):
            asked = expire_application(session, application_id, now)
            if asked is not None:
                swept.applications += 1
                swept.applications_fen += asked
    return swept
