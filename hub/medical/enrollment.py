"""Enrolment (CONTRACT.md §2): a resident asks once for a medical credit line.

The request is recorded and answered at once (202); the enrolment flow then
decides it: age, the public credit database under the resident's consent, the
eligibility rules, and the chosen bank. Each enrolment is decided exactly once
— the decision is a conditional UPDATE of a pending row, in the same
transaction as the line it opens and the event it announces — and a partner
that is down only postpones it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core import bureau, consent, events
from hub.core.clock import business_date
from hub.core.db import unit_of_work
from hub.core.errors import Invalid, not_found
from hub.core.ids import new_id
from hub.core.personal_data import Vault, birth_date
from hub.medical.lines import AlreadyEnrolled, current_line, find_resident, open_line
from models.core.partner_errors import PartnerError
from models.core.tables import Partner
from models.medical.partner_records import CreditLineApproved, CreditLineDecision
from models.medical.tables import CreditLine, Enrollment, EnrollmentStatus


class UnknownBank(Invalid):
    code = "unknown_bank"
    title = "No bank partner has this code"


@dataclass(frozen=True)
class Rules:
    """The eligibility rules (settings): age, score, and the limit asked per score tier."""

    min_age: int
    min_score: int
    limit_tiers: list[tuple[int, int]]  # (lowest score, limit in fen), any order
    zone: str
    lookup_validity: timedelta
    retry_after: timedelta

    def limit_for(self, score: int) -> int:
        eligible = [limit for floor, limit in self.limit_tiers if score >= floor]
        return max(eligible, default=0)


class CreditLineGranter(Protocol):
    def request_credit_line(
        self,
        *,
        enrollment_id: str,
        id_number: str,
        name: str,
        phone: str | None,
        requested_limit_fen: int,
        score: int,
        idempotency_key: str,
    ) -> CreditLineDecision: ...


class PartnerSystems(Protocol):
    """The partner systems the enrolment needs, however they are reached."""

    @property
    def bureau(self) -> bureau.PersonDirectory: ...

    def bank(self, code: str) -> CreditLineGranter: ...


@dataclass(frozen=True)
class Applicant:
    enrollment_id: str
    id_number: str
    name: str
    phone: str | None
    bank_code: str
    consent_id: str
    attempts: int


def start(
    session: Session,
    vault: Vault,
    *,
    partner_id: str,
    id_number: str,
    name: str,
    phone: str | None,
    bank_code: str,
    purpose: str,
    granted_at: datetime,
    text_version: str,
    now: datetime,
) -> Enrollment:
    """Record a pending enrolment with its consent; refuses a resident already enrolled."""
    bank = session.scalar(select(Partner).where(Partner.code == bank_code, Partner.kind == "bank"))
    if bank is None:
        raise UnknownBank(f"no bank partner has the code {bank_code!r}")
    subject = vault.lookup_hash(id_number)
    resident = find_resident(session, vault, id_number)
    line = current_line(session, resident.id) if resident is not None else None
    if line is not None:
        raise AlreadyEnrolled(line.id)
    pending = session.scalar(
        select(Enrollment.id).where(
            Enrollment.id_number_hash == subject, Enrollment.status == EnrollmentStatus.PENDING
        )
    )
    if pending is not None:
        raise AlreadyEnrolled(pending)
    granted = consent.record(
        session,
        partner_id=partner_id,
        subject_hash=subject,
        purpose=purpose,
        text_version=text_version,
        granted_at=granted_at,
        expires_at=None,
        scope=None,
        now=now,
    )
    enrollment = Enrollment(
        id=new_id("enr"),
        partner_id=partner_id,
        bank_id=bank.id,
        consent_id=granted.id,
        id_number_hash=subject,
        id_number_enc=vault.encrypt(id_number),
        name_enc=vault.encrypt(name),
        phone_enc=vault.encrypt(phone) if phone else None,
        status=EnrollmentStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(enrollment)
    try:
        session.flush()
    except IntegrityError as exc:  # a racing request for the same resident got in first
        raise AlreadyEnrolled("a pending enrolment") from exc
    return enrollment


def get(session: Session, partner_id: str, enrollment_id: str) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.partner_id != partner_id:
        raise not_found("enrollment", enrollment_id)
    return enrollment


def view(session: Session, enrollment: Enrollment) -> dict[str, Any]:
    """The enrolment as `GET /v1/enrollments/{id}` shows it."""
    line = None
    if enrollment.credit_line_id is not None:
        row = session.execute(
            select(CreditLine.id, CreditLine.limit_fen, Partner.code)
            .join(Partner, Partner.id == CreditLine.bank_id)
            .where(CreditLine.id == enrollment.credit_line_id)
        ).one()
        line = {"credit_line_id": row.id, "limit_fen": row.limit_fen, "bank_code": row.code}
    return {
        "enrollment_id": enrollment.id,
        "consent_id": enrollment.consent_id,
        "status": enrollment.status,
        "decline_reason": enrollment.decline_reason,
        "credit_line": line,
        "created_at": enrollment.created_at,
        "decided_at": enrollment.decided_at,
    }


def due(session: Session, now: datetime, limit: int) -> list[str]:
    """Pending enrolments whose (next) attempt is due, oldest first."""
    return list(
        session.scalars(
            select(Enrollment.id)
            .where(Enrollment.status == EnrollmentStatus.PENDING, Enrollment.next_attempt_at <= now)
            .order_by(Enrollment.next_attempt_at, Enrollment.id)
            .limit(limit)
        )
    )


def _applicant(session: Session, vault: Vault, enrollment_id: str) -> Applicant | None:
    row = session.execute(
        select(Enrollment, Partner.code)
        .join(Partner, Partner.id == Enrollment.bank_id)
        .where(Enrollment.id == enrollment_id, Enrollment.status == EnrollmentStatus.PENDING)
    ).first()
    if row is None:
        return None
    e, bank_code = row
    return Applicant(
        e.id,
        vault.decrypt(e.id_number_enc),
        vault.decrypt(e.name_enc),
        vault.decrypt(e.phone_enc) if e.phone_enc else None,
        bank_code,
        e.consent_id,
        e.attempts,
    )


def _age(id_number: str, today: date) -> int:
    born = birth_date(id_number)
    assert born is not None, "identity numbers are validated on the way in"
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def process(
    engine: Engine,
    vault: Vault,
    partners: PartnerSystems,
    enrollment_id: str,
    rules: Rules,
    clock: Callable[[], datetime],
) -> str:
    """Take one pending enrolment as far as it can go now; returns what happened."""
    with unit_of_work(engine, write=False) as session:
        who = _applicant(session, vault, enrollment_id)
    if who is None:
        return "already_decided"
    if _age(who.id_number, business_date(clock(), rules.zone)) < rules.min_age:
        return _decide(engine, vault, who, "under_age", None, clock)
    try:
        record = bureau.look_up_person(
            engine,
            vault,
            partners.bureau,
            id_number=who.id_number,
            consent_id=who.consent_id,
            purpose=bureau.PURPOSE_MEDICAL,
            requested_by="flow:enrollment",
            validity=rules.lookup_validity,
            clock=clock,
        )
    except consent.ConsentNotValid:
        return _decide(engine, vault, who, "consent_withdrawn", None, clock)
    except PartnerError as exc:
        return _postpone(engine, who, exc, rules, clock)
    if isinstance(record, bureau.Unknown) or record.name.strip() != who.name.strip():
        return _decide(engine, vault, who, "identity_not_verified", None, clock)
    if record.dishonest_debtor:
        return _decide(engine, vault, who, "dishonest_debtor", None, clock)
    if record.score < rules.min_score or rules.limit_for(record.score) <= 0:
        return _decide(engine, vault, who, "score_too_low", None, clock)
    asked = rules.limit_for(record.score)
    try:
        answer = partners.bank(who.bank_code).request_credit_line(
            enrollment_id=who.enrollment_id,
            id_number=who.id_number,
            name=who.name,
            phone=who.phone,
            requested_limit_fen=asked,
            score=record.score,
            idempotency_key=f"enrollment:{who.enrollment_id}",
        )
    except PartnerError as exc:
        return _postpone(engine, who, exc, rules, clock)
    if not isinstance(answer, CreditLineApproved) or answer.limit_fen <= 0:
        return _decide(engine, vault, who, "bank_declined", None, clock)
    return _decide(engine, vault, who, None, min(answer.limit_fen, asked), clock)


def _decide(
    engine: Engine,
    vault: Vault,
    who: Applicant,
    reason: str | None,
    limit_fen: int | None,
    clock: Callable[[], datetime],
) -> str:
    """Record the decision once: approved with a new line, or declined with its reason."""
    with unit_of_work(engine) as session:
        now = clock()
        enrollment = session.get(Enrollment, who.enrollment_id, with_for_update=True)
        if enrollment is None or enrollment.status != EnrollmentStatus.PENDING:
            return "already_decided"  # another run decided it first
        if reason is None:
            try:
                consent.require(
                    session, who.consent_id, enrollment.id_number_hash, bureau.PURPOSE_MEDICAL, now
                )
                reason = _open(session, vault, who, enrollment, limit_fen or 0, now)
            except consent.ConsentNotValid:
                reason = "consent_withdrawn"
        enrollment.status = EnrollmentStatus.DECLINED if reason else EnrollmentStatus.APPROVED
        enrollment.decline_reason, enrollment.decided_at = reason, now
        session.flush()
        events.emit(
            session,
            f"enrollment.{enrollment.status}",
            view(session, enrollment),
            [enrollment.partner_id],
            now,
        )
        return reason or EnrollmentStatus.APPROVED


def _open(
    session: Session,
    vault: Vault,
    who: Applicant,
    enrollment: Enrollment,
    limit: int,
    now: datetime,
) -> str | None:
    """Open the line; the decline reason if a concurrent enrolment or import won."""
    try:
        with session.begin_nested():
            line = open_line(
                session,
                vault,
                id_number=who.id_number,
                name=who.name,
                phone=who.phone,
                bank_id=enrollment.bank_id,
                limit_fen=limit,
                source="enrollment",
                now=now,
            )
    except (AlreadyEnrolled, IntegrityError):
        return "already_enrolled"
    enrollment.credit_line_id = line.id
    return None


def _postpone(
    engine: Engine, who: Applicant, error: PartnerError, rules: Rules, clock: Callable[[], datetime]
) -> str:
    """A partner is down: try again later, waiting longer each time (at most an hour)."""
    with unit_of_work(engine) as session:
        now = clock()
        wait = min(rules.retry_after * 2 ** min(who.attempts, 10), timedelta(hours=1))
        session.execute(
            update(Enrollment)
            .where(
                Enrollment.id == who.enrollment_id, Enrollment.status == EnrollmentStatus.PENDING
            )
            .values(
                attempts=Enrollment.attempts + 1,
                next_attempt_at=now + wait,
                last_error=type(error).__name__,
            )  # never the message: it may name the person
            .execution_options(synchronize_session=False)
        )
    return "postponed"
