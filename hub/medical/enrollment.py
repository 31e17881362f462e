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

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from hub.core import bureau, consent, events
from hub.core.clock import business_date
from hub.core.concurrently import each_answer
from hub.core.db import unit_of_work
from hub.core.errors import Invalid, not_found
from hub.core.ids import new_id
from hub.core.personal_data import Vault, birth_date
from hub.medical.lines import AlreadyEnrolled, current_line, find_resident, open_line
from models.core.partner_errors import PartnerError
from models.core.partner_records import PersonRecord
from models.core.tables import Consent, Partner
from models.medical.partner_records import CreditLineApproved, CreditLineDecision
from models.medical.tables import CreditLine, Enrollment, EnrollmentStatus, LineStatus, Resident


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
    return _view(enrollment, line)


def _view(enrollment: Enrollment, line: dict[str, Any] | None) -> dict[str, Any]:
    """The enrolment as the contract shows it, its line (id, limit, bank code) given."""
    return {
        "enrollment_id": enrollment.id,
        "consent_id": enrollment.consent_id,
        "status": enrollment.status,
        "decline_reason": enrollment.decline_reason,
        "credit_line": line,
        "created_at": enrollment.created_at,
        "decided_at": enrollment.decided_at,
    }


def _due(now: datetime) -> ColumnElement[bool]:
    return (Enrollment.status == EnrollmentStatus.PENDING) & (Enrollment.next_attempt_at <= now)


def count_due(session: Session, now: datetime) -> int:
    """How many pending enrolments are due now."""
    return session.scalar(select(func.count()).select_from(Enrollment).where(_due(now))) or 0


def claim(session: Session, now: datetime, limit: int, claim_for: timedelta) -> list[str]:
    """Up to `limit` due enrolments, oldest first, taken for one run to decide: their
    next attempt is moved `claim_for` ahead, so that runs deciding side by side never
    take the same one (rows another run is claiming are skipped, not waited for), and
    a run that dies leaves its batch to be taken again when the claim runs out."""
    ids = list(
        session.scalars(
            select(Enrollment.id)
            .where(_due(now))
            .order_by(Enrollment.next_attempt_at, Enrollment.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(Enrollment)
            .where(Enrollment.id.in_(ids))
            .values(next_attempt_at=now + claim_for)
            .execution_options(synchronize_session=False)
        )
    return ids


def _applicants(session: Session, vault: Vault, enrollment_ids: list[str]) -> list[Applicant]:
    """The batch's enrolments still pending, as the checks need them (one query)."""
    rows = session.execute(
        select(Enrollment, Partner.code)
        .join(Partner, Partner.id == Enrollment.bank_id)
        .where(Enrollment.id.in_(enrollment_ids), Enrollment.status == EnrollmentStatus.PENDING)
        .order_by(Enrollment.next_attempt_at, Enrollment.id)
    )
    return [
        Applicant(
            e.id,
            vault.decrypt(e.id_number_enc),
            vault.decrypt(e.name_enc),
            vault.decrypt(e.phone_enc) if e.phone_enc else None,
            bank_code,
            e.consent_id,
            e.attempts,
        )
        for e, bank_code in rows
    ]


def _age(id_number: str, today: date) -> int:
    born = birth_date(id_number)
    assert born is not None, "identity numbers are validated on the way in"
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class Verdict:
    """What the checks and the bank made of one enrolment, to be recorded: declined
    with a reason, approved with a limit, or postponed (a partner was down)."""

    reason: str | None = None
    limit_fen: int = 0
    down: PartnerError | None = None


def decide_batch(
    engine: Engine,
    vault: Vault,
    partners: PartnerSystems,
    enrollment_ids: list[str],
    rules: Rules,
    clock: Callable[[], datetime],
    concurrency: int = 1,
) -> dict[str, str]:
    """Take each pending enrolment of the batch as far as it can go now; what happened
    to each, by id. Set-based: one read of the applicants, the credit database asked
    about all of them (two transactions), the bank about those eligible (calls
    `concurrency` at a time, outside any transaction), and every outcome recorded in
    one transaction. An enrolment whose check failed unexpectedly is left pending
    ("error:<kind>"); the next run tries it again."""
    with unit_of_work(engine, write=False) as session:
        applicants = _applicants(session, vault, enrollment_ids)
    outcomes = dict.fromkeys(enrollment_ids, "already_decided")
    verdicts: dict[str, Verdict] = {}
    today = business_date(clock(), rules.zone)
    adults = []
    for who in applicants:
        if _age(who.id_number, today) < rules.min_age:
            verdicts[who.enrollment_id] = Verdict("under_age")
        else:
            adults.append(who)
    records = bureau.look_up_people(
        engine,
        vault,
        partners.bureau,
        [(who.id_number, who.consent_id) for who in adults],
        purpose=bureau.PURPOSE_MEDICAL,
        requested_by="flow:enrollment",
        validity=rules.lookup_validity,
        clock=clock,
        concurrency=concurrency,
    )
    eligible: list[tuple[Applicant, PersonRecord]] = []
    for who, record in zip(adults, records, strict=True):
        checked = _check(who, record, rules)
        if isinstance(checked, Verdict):
            verdicts[who.enrollment_id] = checked
        elif isinstance(checked, Exception):
            outcomes[who.enrollment_id] = f"error:{type(checked).__name__}"
        else:
            eligible.append((who, checked))
    answers = _ask_the_banks(partners, eligible, rules, concurrency)
    for (who, record), answer in zip(eligible, answers, strict=True):
        asked = rules.limit_for(record.score)
        if isinstance(answer, PartnerError):
            verdicts[who.enrollment_id] = Verdict(down=answer)
        elif isinstance(answer, Exception):
            outcomes[who.enrollment_id] = f"error:{type(answer).__name__}"
        elif not isinstance(answer, CreditLineApproved) or answer.limit_fen <= 0:
            verdicts[who.enrollment_id] = Verdict("bank_declined")
        else:
            verdicts[who.enrollment_id] = Verdict(limit_fen=min(answer.limit_fen, asked))
    outcomes.update(_record(engine, vault, applicants, verdicts, rules, clock))
    return outcomes


def _check(
    who: Applicant, record: PersonRecord | bureau.Unknown | Exception, rules: Rules
) -> Verdict | Exception | PersonRecord:
    """The credit database's answer judged: a verdict, an unexpected failure, or the
    record of a resident the bank is to be asked about."""
    if isinstance(record, consent.ConsentNotValid):
        return Verdict("consent_withdrawn")
    if isinstance(record, PartnerError):
        return Verdict(down=record)
    if isinstance(record, Exception):
        return record
    if isinstance(record, bureau.Unknown) or record.name.strip() != who.name.strip():
        return Verdict("identity_not_verified")
    if record.dishonest_debtor:
        return Verdict("dishonest_debtor")
    if record.score < rules.min_score or rules.limit_for(record.score) <= 0:
        return Verdict("score_too_low")
    return record


def _ask_the_banks(
    partners: PartnerSystems,
    eligible: list[tuple[Applicant, PersonRecord]],
    rules: Rules,
    concurrency: int,
) -> list[CreditLineDecision | Exception]:
    """Each eligible resident's bank asked for a line, under a key derived from the
    enrolment (a rerun asks again under the same key and gets the same decision)."""

    def ask(pair: tuple[Applicant, PersonRecord]) -> CreditLineDecision:
        who, record = pair
        return partners.bank(who.bank_code).request_credit_line(
            enrollment_id=who.enrollment_id,
            id_number=who.id_number,
            name=who.name,
            phone=who.phone,
            requested_limit_fen=rules.limit_for(record.score),
            score=record.score,
            idempotency_key=f"enrollment:{who.enrollment_id}",
        )

    return each_answer(ask, eligible, concurrency)


def _record(
    engine: Engine,
    vault: Vault,
    applicants: list[Applicant],
    verdicts: dict[str, Verdict],
    rules: Rules,
    clock: Callable[[], datetime],
) -> dict[str, str]:
    """Every verdict recorded in one transaction, each enrolment decided once: the
    pending rows are locked, an approval's consent is checked again, the lines are
    opened, the enrolments updated and their events queued; postponements wait
    longer each time. What happened to each, by id."""
    if not verdicts:
        return {}
    by_id = {who.enrollment_id: who for who in applicants}
    with unit_of_work(engine) as session:
        now = clock()
        pending = {
            e.id: e
            for e in session.scalars(
                select(Enrollment)
                .where(Enrollment.id.in_(verdicts), Enrollment.status == EnrollmentStatus.PENDING)
                .order_by(Enrollment.id)  # locks in one order: concurrent runs never deadlock
                .with_for_update()
            )
        }
        outcomes = {i: "already_decided" for i in verdicts if i not in pending}
        decided = {i: v for i, v in verdicts.items() if i in pending and v.down is None}
        reasons = {i: v.reason for i, v in decided.items() if v.reason is not None}
        approved = {i: v.limit_fen for i, v in decided.items() if v.reason is None}
        reasons.update(_consents_withdrawn(session, pending, approved, now))
        approved = {i: limit for i, limit in approved.items() if i not in reasons}
        lines = _open_lines(
            session, vault, [(by_id[i], pending[i], approved[i]) for i in approved], now
        )
        hooked = events.with_webhooks(session, {pending[i].partner_id for i in decided})
        for enrollment_id in decided:
            enrollment = pending[enrollment_id]
            line = lines.get(enrollment_id)
            reason = reasons.get(enrollment_id) or (None if line else "already_enrolled")
            enrollment.status = EnrollmentStatus.DECLINED if reason else EnrollmentStatus.APPROVED
            enrollment.decline_reason, enrollment.decided_at = reason, now
            enrollment.credit_line_id = line["credit_line_id"] if line else None
            events.emit(
                session,
                f"enrollment.{enrollment.status}",
                _view(enrollment, line),
                [enrollment.partner_id],
                now,
                hooked=hooked,
            )
            outcomes[enrollment_id] = reason or EnrollmentStatus.APPROVED.value
        postponed = [(pending[i], v.down) for i, v in verdicts.items() if i in pending and v.down]
        _postpone(session, postponed, rules, now)
        outcomes.update((enrollment.id, "postponed") for enrollment, _ in postponed)
    return outcomes


def _consents_withdrawn(
    session: Session, pending: dict[str, Enrollment], approved: dict[str, int], now: datetime
) -> dict[str, str]:
    """The approvals whose consent was withdrawn (or lapsed) while the partners were
    asked: declined instead. The consents are read in one query."""
    consent_ids = {pending[i].consent_id for i in approved}
    _held = session.scalars(select(Consent).where(Consent.id.in_(consent_ids))).all()
    withdrawn = {}
    for enrollment_id in approved:
        enrollment = pending[enrollment_id]
        try:
            consent.require(
                session,
                enrollment.consent_id,
                enrollment.id_number_hash,
                bureau.PURPOSE_MEDICAL,
                now,
            )
        except consent.ConsentNotValid:
            withdrawn[enrollment_id] = "consent_withdrawn"
    return withdrawn


def _open_lines(
    session: Session,
    vault: Vault,
    approvals: list[tuple[Applicant, Enrollment, int]],
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """A line for each approval, by enrolment id, as events show it; an approval left
    out lost to a line opened first (an import, another enrolment of the resident).
    One read of the residents and their lines, one insert of each; if a concurrent
    writer got in between (a unique index says so), each line is opened on its own."""
    if not approvals:
        return {}
    codes = {
        partner_id: code for partner_id, code in session.execute(select(Partner.id, Partner.code))
    }
    hashes = {who.enrollment_id: enrollment.id_number_hash for who, enrollment, _ in approvals}
    residents = {
        subject: resident_id
        for subject, resident_id in session.execute(
            select(Resident.id_number_hash, Resident.id).where(
                Resident.id_number_hash.in_(set(hashes.values()))
            )
        )
    }
    holding = set(
        session.scalars(
            select(CreditLine.resident_id).where(
                CreditLine.resident_id.in_(set(residents.values())),
                CreditLine.status != LineStatus.CLOSED,
            )
        )
    )
    new_residents, new_lines, opened = [], [], {}
    for who, enrollment, limit in approvals:
        resident_id = residents.get(hashes[who.enrollment_id])
        if resident_id in holding:
            continue  # already enrolled
        if resident_id is None:
            resident_id = new_id("res")
            residents[hashes[who.enrollment_id]] = resident_id
            new_residents.append(
                {
                    "id": resident_id,
                    "id_number_hash": hashes[who.enrollment_id],
                    "id_number_enc": vault.encrypt(who.id_number),
                    "name_enc": vault.encrypt(who.name),
                    "phone_enc": vault.encrypt(who.phone) if who.phone else None,
                    "created_at": now,
                }
            )
        holding.add(resident_id)
        line_id = new_id("cl")
        new_lines.append(
            {
                "id": line_id,
                "resident_id": resident_id,
                "bank_id": enrollment.bank_id,
                "status": LineStatus.ACTIVE,
                "limit_fen": limit,
                "held_fen": 0,
                "outstanding_fen": 0,
                "source": "enrollment",
                "opened_at": now,
            }
        )
        opened[who.enrollment_id] = {
            "credit_line_id": line_id,
            "limit_fen": limit,
            "bank_code": codes[enrollment.bank_id],
        }
    try:
        with session.begin_nested():
            if new_residents:
                session.execute(insert(Resident), new_residents)
            if new_lines:
                session.execute(insert(CreditLine), new_lines)
    except IntegrityError:  # a concurrent writer: one at a time, each as it stands now
        return _open_each(session, vault, approvals, codes, now)
    return opened


def _open_each(
    session: Session,
    vault: Vault,
    approvals: list[tuple[Applicant, Enrollment, int]],
    codes: dict[str, str],
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """A line for each approval that can still have one, each in its own savepoint."""
    opened = {}
    for who, enrollment, limit in approvals:
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
            continue
        opened[who.enrollment_id] = {
            "credit_line_id": line.id,
            "limit_fen": line.limit_fen,
            "bank_code": codes[enrollment.bank_id],
        }
    return opened


def _postpone(
    session: Session,
    postponed: list[tuple[Enrollment, PartnerError]],
    rules: Rules,
    now: datetime,
) -> None:
    """A partner was down: each tried again later, waiting longer each time (at most
    an hour); the error's kind is kept, never its message (it may name the person)."""
    for enrollment, error in postponed:
        wait = min(rules.retry_after * 2 ** min(enrollment.attempts, 10), timedelta(hours=1))
        enrollment.attempts += 1
        enrollment.next_attempt_at = now + wait
        enrollment.last_error = type(error).__name__
