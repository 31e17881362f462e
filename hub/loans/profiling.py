"""Profiling and matching (CONTRACT.md §4 Profile, Matching; §5): what happens to
an application between `profiling` and `open` or `declined`.

For each application being profiled: the firm's record from the public credit
database under the firm's consent (`bureau.look_up_firm`: audited, reused
within 24 h, and no transaction held open across the call); then, in one
transaction, the decision. A consent no longer valid, a firm the database does
not know, or a dishonest entity is declined before any bank sees anything.
Otherwise the profile — exactly the contract's fields, never the record — is
stored, and the application matched against the banks' products now: offered
to the banks with a matching product that the consent covers (one
`loan_application.offered` event to each, with the application as that bank
sees it), or declined `no_matching_product`.

While the programme's overdue ratio pauses offers, an application stays
`profiling` with its profile kept, and is matched on a later run: once an
application has its profile, the database is not asked again. Every step is
a conditional change of a `profiling` row, so a rerun never offers twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import bureau, consent, events
from hub.core.clock import business_date, end_of_business_day
from hub.core.db import unit_of_work
from hub.core.workdays import add_working_days
from hub.loans import loans, matching, policy, products
from hub.loans.applications import Viewer, view
from hub.loans.profile import Profile, build_profile, screen_firm
from models.core.partner_errors import PartnerError
from models.core.partner_records import FirmRecord
from models.core.tables import Partner
from models.loans.tables import (
    ApplicationBank,
    ApplicationStatus,
    DeclineReason,
    Firm,
    LoanApplication,
)

if TYPE_CHECKING:
    from hub.context import HubContext
    from hub.settings import Settings

REQUESTED_BY = "flow:loan-profiling"


class Outcome(StrEnum):
    """What one run did with an application (the flow's artifact counts these)."""

    OFFERED = "offered"
    PAUSED = "paused"  # profiled; not offered while the overdue ratio pauses offers
    POSTPONED = "postponed"  # the credit database failed; tried again on the next run
    ALREADY_DECIDED = "already_decided"
    DECLINED_CONSENT_EXPIRED = f"declined:{DeclineReason.CONSENT_EXPIRED}"
    DECLINED_FIRM_UNKNOWN = f"declined:{DeclineReason.FIRM_UNKNOWN}"
    DECLINED_DISHONEST_ENTITY = f"declined:{DeclineReason.DISHONEST_ENTITY}"
    DECLINED_NO_MATCHING_PRODUCT = f"declined:{DeclineReason.NO_MATCHING_PRODUCT}"


def _declined(reason: DeclineReason) -> Outcome:
    return Outcome(f"declined:{reason}")


@dataclass(frozen=True)
class Done:
    outcome: Outcome
    amount_fen: int  # what the firm asked for (the artifact shows it in yuan)


class Directory(Protocol):
    """The partner systems profiling needs: the credit database's firm lookup."""

    @property
    def bureau(self) -> bureau.FirmDirectory: ...


def due(ctx: HubContext, limit: int, after: str | None = None) -> list[str]:
    """Applications being profiled, oldest first, after the id `after` (a run walks
    forward through them, so one that cannot progress does not hold up the rest)."""
    query = select(LoanApplication.id).where(LoanApplication.status == ApplicationStatus.PROFILING)
    if after is not None:
        query = query.where(LoanApplication.id > after)
    with unit_of_work(ctx.engine, write=False) as session:
        return list(session.scalars(query.order_by(LoanApplication.id).limit(limit)))


@dataclass(frozen=True)
class _Pending:
    application_id: str
    uscc: str
    consent_id: str
    amount_fen: int
    profiled: bool


def _pending(session: Session, application_id: str) -> _Pending | None:
    row = session.execute(
        select(LoanApplication, Firm.uscc)
        .join(Firm, Firm.id == LoanApplication.firm_id)
        .where(
            LoanApplication.id == application_id,
            LoanApplication.status == ApplicationStatus.PROFILING,
        )
    ).first()
    if row is None:
        return None
    application, uscc = row
    return _Pending(
        application.id,
        uscc,
        application.consent_id,
        application.amount_fen,
        application.profile is not None,
    )


def process(
    ctx: HubContext, partners: Directory, application_id: str, clock: Callable[[], datetime]
) -> Done:
    """Take one application as far as it goes now: declined, open, or still profiling."""
    with unit_of_work(ctx.engine, write=False) as session:
        pending = _pending(session, application_id)
    if pending is None:
        return Done(Outcome.ALREADY_DECIDED, 0)
    record: FirmRecord | bureau.Unknown | None = None
    if not pending.profiled:
        try:
            record = bureau.look_up_firm(
                ctx.engine,
                ctx.vault,
                partners.bureau,
                uscc=pending.uscc,
                consent_id=pending.consent_id,
                requested_by=REQUESTED_BY,
                validity=timedelta(hours=ctx.settings.bureau_lookup_validity_hours),
                clock=clock,
            )
        except consent.ConsentNotValid:
            record = None  # decided below, under the consent as it stands then
        except PartnerError:
            return Done(Outcome.POSTPONED, pending.amount_fen)
    with unit_of_work(ctx.engine) as session:
        return Done(_decide(session, ctx, pending, record, clock()), pending.amount_fen)


def _decide(
    session: Session,
    ctx: HubContext,
    pending: _Pending,
    record: FirmRecord | bureau.Unknown | None,
    now: datetime,
) -> Outcome:
    """The decision, in one transaction, on the application locked as `profiling`."""
    settings = ctx.settings
    application = session.get(LoanApplication, pending.application_id, with_for_update=True)
    if application is None or application.status != ApplicationStatus.PROFILING:
        return Outcome.ALREADY_DECIDED
    subject = ctx.vault.lookup_hash(pending.uscc)
    try:
        granted = consent.require(
            session, application.consent_id, subject, bureau.PURPOSE_BUSINESS_LOAN, now
        )
    except consent.ConsentNotValid:
        return _decline(session, application, DeclineReason.CONSENT_EXPIRED, now)
    if application.profile is None:
        if record is None:  # refused before asking, yet valid now: ask on the next run
            return Outcome.POSTPONED
        reason = screen_firm(None if isinstance(record, bureau.Unknown) else record)
        if reason is not None:
            return _decline(session, application, DeclineReason(reason), now)
        assert isinstance(record, FirmRecord)
        profile = build_profile(
            record, business_date(now, settings.business_timezone), settings.scorecard
        )
        application.profile = profile.model_dump(mode="json")
    if policy.offers_paused(*loans.portfolio_principal(session), settings.overdue_stop_bps):
        return Outcome.PAUSED
    profile = Profile.model_validate(application.profile)
    request = matching.Request(
        score=profile.score,
        industry=profile.industry,
        amount_fen=application.amount_fen,
        term_months=application.term_months,
    )
    consented = list((granted.scope or {}).get("banks", []))
    banks = matching.banks_to_offer(products.active_products(session), request, consented)
    if not banks:
        return _decline(session, application, DeclineReason.NO_MATCHING_PRODUCT, now)
    _open(session, ctx, application, banks, now)
    return Outcome.OFFERED


def respond_by(now: datetime, settings: Settings) -> datetime:
    """23:59:59 business time on the `answer_working_days`th (3rd) working day after
    the business date of `now` (as `hub.core.workdays.respond_by`, with the setting)."""
    zone = settings.business_timezone
    day = add_working_days(
        business_date(now, zone), settings.answer_working_days, settings.working_calendar()
    )
    return end_of_business_day(day, zone)


def _open(
    session: Session,
    ctx: HubContext,
    application: LoanApplication,
    bank_codes: list[str],
    now: datetime,
) -> None:
    application.status = ApplicationStatus.OPEN
    application.opened_at = now
    application.respond_by = respond_by(now, ctx.settings)
    bank_ids = dict(
        session.execute(
            select(Partner.code, Partner.id).where(
                Partner.code.in_(bank_codes), Partner.kind == "bank"
            )
        ).all()
    )
    for code in bank_codes:
        session.add(
            ApplicationBank(application_id=application.id, bank_id=bank_ids[code], offered_at=now)
        )
    session.flush()
    for code in bank_codes:
        bank_id = bank_ids[code]
        data = view(session, application, Viewer(bank_id, "bank"), now)
        events.emit(session, "loan_application.offered", data, [bank_id], now)


def _decline(
    session: Session, application: LoanApplication, reason: DeclineReason, now: datetime
) -> Outcome:
    """Declined before any bank saw it: the channel is told."""
    application.status = ApplicationStatus.DECLINED
    application.decline_reason = reason
    application.decided_at = now
    session.flush()
    data = view(session, application, Viewer(application.channel_id, "channel"), now)
    events.emit(session, "loan_application.declined", data, [application.channel_id], now)
    return _declined(reason)
