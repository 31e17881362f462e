"""A firm's loan consent that no longer holds (CONTRACT.md §4 Applications, §5:
"a withdrawn consent stops every further use at once").

When the channel withdraws the firm's `business_loan` consent, every application
under it still `profiling` or `open` is declined `consent_expired` in the same
transaction: its open offers lapse (as when the firm takes another offer) and
the channel is told `loan_application.declined`, as for every other decline.
A consent that expires while its application is open is declined the same way
by the deadlines flow; until then the application already shows banks no
profile and takes no answer and no acceptance (`applications`, `answers`).
Accepted applications are contracts: their loans are left as they are.

Each decline is a conditional change of a locked pending application, so a
second withdrawal, or a rerun of the flow, changes and announces nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.loans.answers import lapse_offers
from hub.loans.applications import consent_holds, decline
from models.loans.tables import PENDING_APPLICATION, DeclineReason, LoanApplication


def decline_if_consent_ended(session: Session, application: LoanApplication, now: datetime) -> bool:
    """Decline the application (locked by the caller) `consent_expired` if it is
    still pending and its consent no longer holds; whether it did."""
    if application.status not in PENDING_APPLICATION or consent_holds(session, application, now):
        return False
    lapse_offers(session, application.id)
    decline(session, application, DeclineReason.CONSENT_EXPIRED, now)
    return True


def consent_withdrawn(session: Session, consent_id: str, now: datetime) -> int:
    """In the withdrawal's transaction, after `hub.core.consent.withdraw`: decline the
    pending applications under the consent; how many."""
    pending = session.scalars(
        select(LoanApplication)
        .where(
            LoanApplication.consent_id == consent_id,
            LoanApplication.status.in_(PENDING_APPLICATION),
        )
        .order_by(LoanApplication.id)
        .with_for_update()
        # As locked: an acceptance or a flow that changed it first has committed by then.
        .execution_options(populate_existing=True)
    )
    return sum(decline_if_consent_ended(session, a, now) for a in pending.all())
