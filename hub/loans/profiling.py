"""Profiling and matching (CONTRACT.md §4 Profile, Matching; §5): what happens to
an application between `profiling` and `open` or `declined`.

For each application being profiled: the firm's record from the public credit
database under the firm's consent (`bureau.look_up_firms`: audited, reused
within 24 h, a batch at two transactions, none held open across the calls);
then the decisions, a chunk of applications per transaction. A consent no
longer valid, a firm the database does not know, or a dishonest entity is
declined before any bank sees anything.
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

from collections.abc import Callable, Sequence
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
from hub.loans import applications, loans, matching, policy, products
from hub.loans.applications import Viewer, view
from hub.loans.profile import Profile, build_profile, screen_firm
from models.core.partner_errors import PartnerError
from models.core.partner_records import FirmRecord
from models.core.tables import Consent, Partner
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


def due(
    ctx: HubContext, limit: int, after: str | None = None, until: str | None = None
) -> list[str]:
    """Applications being profiled, oldest first, after the id `after` and up to
    `until` (a run walks forward through them, so one that cannot progress does not
    hold up the rest; helper runs each walk a range of their own)."""
    query = select(LoanApplication.id).where(LoanApplication.status == ApplicationStatus.PROFILING)
    if after is not None:
        query = query.where(LoanApplication.id > after)
    if until is not None:
        query = query.where(LoanApplication.id <= until)
    with unit_of_work(ctx.engine, write=False) as session:
        return list(session.scalars(query.order_by(LoanApplication.id).limit(limit)))


@dataclass(frozen=True)
class Waiting:
    """An application waiting to be profiled, as read before any partner is asked."""

    application_id: str
    uscc: str
    consent_id: str
    amount_fen: int
    profiled: bool


@dataclass(frozen=True)
class Looked:
    """A waiting application and what the credit database said: the record, UNKNOWN,
    None when the consent refused the lookup (decided under the consent as it stands
    then), or `postponed` when the database failed (asked again on the next run)."""

    waiting: Waiting
    record: FirmRecord | bureau.Unknown | None
    postponed: bool = False


def waiting(ctx: HubContext, application_ids: Sequence[str]) -> list[Waiting]:
    """Those of the applications still being profiled, in one read (by id)."""
    if not application_ids:
        return []
    with unit_of_work(ctx.engine, write=False) as session:
        rows = session.execute(
            select(
                LoanApplication.id,
                Firm.uscc,
                LoanApplication.consent_id,
                LoanApplication.amount_fen,
                LoanApplication.profile,  # read, not tested in SQL: a JSON null is None too
            )
            .join(Firm, Firm.id == LoanApplication.firm_id)
            .where(
                LoanApplication.id.in_(application_ids),
                LoanApplication.status == ApplicationStatus.PROFILING,
            )
            .order_by(LoanApplication.id)
        )
        return [
            Waiting(app_id, uscc, consent_id, amount, profiled=profile is not None)
            for app_id, uscc, consent_id, amount, profile in rows
        ]


def look_up(
    ctx: HubContext,
    partners: Directory,
    items: Sequence[Waiting],
    clock: Callable[[], datetime],
    concurrency: int = 1,
) -> list[Looked | Exception]:
    """Each firm's record under its consent, in order, except for applications that
    have their profile already (the database is not asked again); an exception is
    the result of an application whose lookup failed unexpectedly. The batch costs
    two transactions however long it is, none held open across the calls, and the
    database is asked `concurrency` firms at a time (`bureau.look_up_firms`)."""
    asking = [item for item in items if not item.profiled]
    answers = bureau.look_up_firms(
        ctx.engine,
        ctx.vault,
        partners.bureau,
        [(item.uscc, item.consent_id) for item in asking],
        requested_by=REQUESTED_BY,
        validity=timedelta(hours=ctx.settings.bureau_lookup_validity_hours),
        clock=clock,
        concurrency=concurrency,
    )
    answered = {item.application_id: a for item, a in zip(asking, answers, strict=True)}
    return [_looked(item, answered.get(item.application_id)) for item in items]


def _looked(
    item: Waiting, answer: FirmRecord | bureau.Unknown | Exception | None
) -> Looked | Exception:
    if answer is None or isinstance(answer, consent.ConsentNotValid):
        return Looked(item, None)  # decided under the consent as it stands then
    if isinstance(answer, PartnerError):
        return Looked(item, None, postponed=True)
    if isinstance(answer, Exception):
        return answer
    return Looked(item, answer)


def decide(
    ctx: HubContext, looked: Sequence[Looked], clock: Callable[[], datetime], chunk: int = 50
) -> dict[str, Done | Exception]:
    """The decisions, `chunk` applications a transaction: each application locked
    as `profiling` (in id order, so concurrent runs never deadlock) and decided in
    a savepoint of its own, so that one failing leaves the others decided (its
    exception is its result). What every decision of a chunk reads — the overdue
    ratio, the products, the banks — is read once for the chunk."""
    results: dict[str, Done | Exception] = {}
    for item in looked:
        if item.postponed:
            results[item.waiting.application_id] = Done(Outcome.POSTPONED, item.waiting.amount_fen)
    todo = sorted((i for i in looked if not i.postponed), key=lambda i: i.waiting.application_id)
    for start in range(0, len(todo), chunk):
        with unit_of_work(ctx.engine) as session:
            results.update(_decide_chunk(session, ctx, todo[start : start + chunk], clock()))
    return results


def process(
    ctx: HubContext, partners: Directory, application_id: str, clock: Callable[[], datetime]
) -> Done:
    """Take one application as far as it goes now: declined, open, or still profiling."""
    found = waiting(ctx, [application_id])
    if not found:
        return Done(Outcome.ALREADY_DECIDED, 0)
    (looked,) = look_up(ctx, partners, found, clock)
    if isinstance(looked, Exception):
        raise looked
    result = decide(ctx, [looked], clock)[application_id]
    if isinstance(result, Exception):
        raise result
    return result


class _Market:
    """What a chunk's decisions share, read when first needed: whether offers are
    paused, the active products, the banks' ids by code and those with webhooks."""

    def __init__(self, session: Session, settings: Settings, now: datetime):
        self._session, self._settings = session, settings
        self.respond_by = respond_by(now, settings)  # the same for every decision of the chunk
        self._paused: bool | None = None
        self._products: list[matching.Product] | None = None
        self._bank_ids: dict[str, str] | None = None
        self._hooked: set[str] | None = None

    @property
    def paused(self) -> bool:
        if self._paused is None:
            principal = loans.portfolio_principal(self._session)
            self._paused = policy.offers_paused(*principal, self._settings.overdue_stop_bps)
        return self._paused

    @property
    def products(self) -> list[matching.Product]:
        if self._products is None:
            self._products = products.active_products(self._session)
        return self._products

    @property
    def bank_ids(self) -> dict[str, str]:
        if self._bank_ids is None:
            rows = self._session.execute(
                select(Partner.code, Partner.id).where(Partner.kind == "bank")
            )
            self._bank_ids = {code: partner_id for code, partner_id in rows}
        return self._bank_ids

    @property
    def hooked(self) -> set[str]:
        if self._hooked is None:
            self._hooked = events.with_webhooks(self._session, self.bank_ids.values())
        return self._hooked


def _decide_chunk(
    session: Session, ctx: HubContext, chunk: Sequence[Looked], now: datetime
) -> dict[str, Done | Exception]:
    ids = [i.waiting.application_id for i in chunk]
    applications = {
        a.id: a
        for a in session.scalars(
            select(LoanApplication)
            .where(LoanApplication.id.in_(ids))
            .order_by(LoanApplication.id)
            .with_for_update()
        )
    }
    # Into the session's identity map, so the consent checks and the views below read
    # them without a query each (held here: the map keeps only what is referenced).
    consent_ids = {a.consent_id for a in applications.values()}
    firm_ids = {a.firm_id for a in applications.values()}
    _held = (
        session.scalars(select(Consent).where(Consent.id.in_(consent_ids))).all(),
        session.scalars(select(Firm).where(Firm.id.in_(firm_ids))).all(),
    )
    market = _Market(session, ctx.settings, now)
    results: dict[str, Done | Exception] = {}
    todo: list[tuple[LoanApplication, Looked]] = []
    for item in chunk:
        application = applications.get(item.waiting.application_id)
        if application is None or application.status != ApplicationStatus.PROFILING:
            results[item.waiting.application_id] = Done(Outcome.ALREADY_DECIDED, 0)
        else:
            todo.append((application, item))
    # The whole chunk at once, written in one flush at the end (nothing a decision
    # reads depends on another's writes). Should any decision fail, the chunk is
    # undone and decided again one application per savepoint, so that only the
    # failing one is left out.
    try:
        with session.begin_nested(), session.no_autoflush:
            decided = {
                application.id: Done(
                    _decide(session, ctx, market, application, item, now),
                    item.waiting.amount_fen,
                )
                for application, item in todo
            }
        return results | decided
    except Exception:  # undone: decided again below, one by one, each failure its own result
        pass
    for application, item in todo:
        try:
            with session.begin_nested():
                outcome = _decide(session, ctx, market, application, item, now)
            results[application.id] = Done(outcome, item.waiting.amount_fen)
        except Exception as exc:  # one bad application must not undo the others
            results[application.id] = exc
    return results


def _decide(
    session: Session,
    ctx: HubContext,
    market: _Market,
    application: LoanApplication,
    item: Looked,
    now: datetime,
) -> Outcome:
    """The decision on the application, locked as `profiling`."""
    settings = ctx.settings
    subject = ctx.vault.lookup_hash(item.waiting.uscc)
    try:
        granted = consent.require(
            session, application.consent_id, subject, bureau.PURPOSE_BUSINESS_LOAN, now
        )
    except consent.ConsentNotValid:
        return _decline(session, application, DeclineReason.CONSENT_EXPIRED, now)
    record = item.record
    profile: Profile | None = None
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
    if market.paused:
        return Outcome.PAUSED
    if profile is None:  # profiled on an earlier run (offers were paused then)
        profile = Profile.model_validate(application.profile)
    request = matching.Request(
        score=profile.score,
        industry=profile.industry,
        amount_fen=application.amount_fen,
        term_months=application.term_months,
    )
    consented = list((granted.scope or {}).get("banks", []))
    banks = matching.banks_to_offer(market.products, request, consented)
    if not banks:
        return _decline(session, application, DeclineReason.NO_MATCHING_PRODUCT, now)
    _open(session, application, [market.bank_ids[code] for code in banks], market, now)
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
    application: LoanApplication,
    bank_ids: list[str],
    market: _Market,
    now: datetime,
) -> None:
    application.status = ApplicationStatus.OPEN
    application.opened_at = now
    application.respond_by = market.respond_by
    for bank_id in bank_ids:
        session.add(ApplicationBank(application_id=application.id, bank_id=bank_id, offered_at=now))
    # One event to every bank offered to: just opened, the application has no offer
    # yet, so each bank's view of it (the profile, its own offers) is the same.
    data = view(session, application, Viewer(bank_ids[0], "bank"), now, offers=())
    events.emit(session, "loan_application.offered", data, bank_ids, now, hooked=market.hooked)


def _decline(
    session: Session, application: LoanApplication, reason: DeclineReason, now: datetime
) -> Outcome:
    """Declined before any bank saw it: the channel is told."""
    applications.decline(session, application, reason, now)
    return _declined(reason)
