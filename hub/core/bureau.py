"""The public credit database, used under consent (CONTRACT.md §5).

Every use is audited (who, whom by keyed hash, purpose, consent, time,
outcome). A lookup of the same subject for the same purpose younger than its
validity, and still covered by a valid consent, is reused instead of repeated;
the reuse is audited too. No transaction is held open across the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.core import consent
from hub.core.concurrently import each_answer
from hub.core.db import unit_of_work
from hub.core.personal_data import Vault
from models.core.partner_records import FirmRecord, PartnerRecord, PersonRecord
from models.core.tables import BureauLookup, BureauRecord, Consent

if TYPE_CHECKING:
    from hub.context import HubContext

PURPOSE_MEDICAL = "medical_credit"
PURPOSE_BUSINESS_LOAN = "business_loan"

R = TypeVar("R", bound=PartnerRecord)
T = TypeVar("T")


class PersonDirectory(Protocol):
    """The credit database's person lookup, as the hub needs it."""

    def person(self, id_number: str) -> PersonRecord | None: ...


class FirmDirectory(Protocol):
    """The credit database's firm lookup, as the hub needs it."""

    def firm(self, uscc: str) -> FirmRecord | None: ...


class Unknown:
    """The credit database does not know this person or firm."""


UNKNOWN = Unknown()


@dataclass(frozen=True)
class _Audit:
    """Who asks about whom, for what, under which consent: each use adds a row."""

    by: str
    subject: str
    purpose: str
    consent_id: str | None

    def write(self, session: Session, outcome: str, *, reused: bool, now: datetime) -> None:
        session.add(
            BureauLookup(
                requested_by=self.by,
                subject_hash=self.subject,
                purpose=self.purpose,
                consent_id=self.consent_id,
                at=now,
                outcome=outcome[:32],
                reused=reused,
            )
        )


def look_up_person(
    engine: Engine,
    vault: Vault,
    directory: PersonDirectory,
    *,
    id_number: str,
    consent_id: str | None,
    purpose: str,
    requested_by: str,
    validity: timedelta,
    clock: Callable[[], datetime],
) -> PersonRecord | Unknown:
    """The person's record, or UNKNOWN; raises ConsentNotValid or PartnerError."""
    return _only(
        look_up_people(
            engine,
            vault,
            directory,
            [(id_number, consent_id)],
            purpose=purpose,
            requested_by=requested_by,
            validity=validity,
            clock=clock,
        )
    )


def look_up_people(
    engine: Engine,
    vault: Vault,
    directory: PersonDirectory,
    wanted: Sequence[tuple[str, str | None]],
    *,
    purpose: str,
    requested_by: str,
    validity: timedelta,
    clock: Callable[[], datetime],
    concurrency: int = 1,
) -> list[PersonRecord | Unknown | Exception]:
    """Each (identity number, consent id)'s record, in order: the record, UNKNOWN, or
    why not (ConsentNotValid, PartnerError, or what the call raised). Consented and
    audited as `look_up_person`, in two transactions for the whole batch, the
    database asked `concurrency` people at a time."""
    return _look_up_all(
        engine,
        vault,
        PersonRecord,
        directory.person,
        wanted,
        purpose=purpose,
        requested_by=requested_by,
        validity=validity,
        clock=clock,
        concurrency=concurrency,
    )


def look_up_firm(
    engine: Engine,
    vault: Vault,
    directory: FirmDirectory,
    *,
    uscc: str,
    consent_id: str | None,
    requested_by: str,
    validity: timedelta,
    clock: Callable[[], datetime],
) -> FirmRecord | Unknown:
    """The firm's record for a business loan, or UNKNOWN; raises ConsentNotValid or
    PartnerError. The firm's subject is the keyed hash of its code, as a person's is
    of their identity number."""
    return _only(
        look_up_firms(
            engine,
            vault,
            directory,
            [(uscc, consent_id)],
            requested_by=requested_by,
            validity=validity,
            clock=clock,
        )
    )


def look_up_firms(
    engine: Engine,
    vault: Vault,
    directory: FirmDirectory,
    wanted: Sequence[tuple[str, str | None]],
    *,
    requested_by: str,
    validity: timedelta,
    clock: Callable[[], datetime],
    concurrency: int = 1,
) -> list[FirmRecord | Unknown | Exception]:
    """Each (code, consent id)'s record for a business loan, in order: the record,
    UNKNOWN, or why not (ConsentNotValid, PartnerError, or what the call raised).
    Each use is consented and audited exactly as `look_up_firm`'s, but the batch
    costs two transactions however long it is, and the database is asked
    `concurrency` firms at a time."""
    return _look_up_all(
        engine,
        vault,
        FirmRecord,
        directory.firm,
        wanted,
        purpose=PURPOSE_BUSINESS_LOAN,
        requested_by=requested_by,
        validity=validity,
        clock=clock,
        concurrency=concurrency,
    )


def _look_up_all(
    engine: Engine,
    vault: Vault,
    model: type[R],
    ask: Callable[[str], R | None],
    wanted: Sequence[tuple[str, str | None]],
    *,
    purpose: str,
    requested_by: str,
    validity: timedelta,
    clock: Callable[[], datetime],
    concurrency: int = 1,
) -> list[R | Unknown | Exception]:
    """Consented, audited uses of the database, one per (subject key, consent id):
    in one transaction the consents are checked and what is younger than `validity`
    reused; the rest are asked (`ask`, the partner call, outside any transaction;
    a subject wanted twice is asked once); in a second transaction the consents
    are checked again, since one withdrawn while we asked stops its use too, and
    the answers remembered. Every use adds its audit row, refusals included."""
    audits = [_Audit(requested_by, vault.lookup_hash(key), purpose, cid) for key, cid in wanted]
    results: list[R | Unknown | Exception | None] = [None] * len(wanted)
    with unit_of_work(engine) as session:  # the audit rows commit even when we refuse
        now = clock()
        allowed = _consented(session, audits, now)
        reusable = _cached(
            session,
            vault,
            model,
            {a.subject for a, ok in zip(audits, allowed, strict=True) if ok is None},
            purpose,
            now - validity,
        )
        for i, (audit, refused) in enumerate(zip(audits, allowed, strict=True)):
            if refused is not None:
                audit.write(session, "refused_no_consent", reused=False, now=now)
                results[i] = refused
            elif audit.subject in reusable:
                results[i] = reusable[audit.subject]
                audit.write(session, _outcome(reusable[audit.subject]), reused=True, now=now)
    to_ask = [i for i, result in enumerate(results) if result is None]
    if not to_ask:
        return _all_answered(results)
    keys = {audits[i].subject: wanted[i][0] for i in to_ask}  # each subject asked once
    answers = dict(zip(keys, each_answer(ask, list(keys.values()), concurrency), strict=True))
    with unit_of_work(engine) as session:
        now = clock()
        allowed = _consented(session, [audits[i] for i in to_ask], now)
        kept: dict[str, R | None] = {}
        for i, refused in zip(to_ask, allowed, strict=True):
            audit, answer = audits[i], answers[audits[i].subject]
            if isinstance(answer, Exception):
                audit.write(session, f"failed:{type(answer).__name__}", reused=False, now=now)
                results[i] = answer
            elif refused is not None:
                audit.write(session, "discarded_no_consent", reused=False, now=now)
                results[i] = refused
            else:
                result: R | Unknown = answer if answer is not None else UNKNOWN
                audit.write(session, _outcome(result), reused=audit.subject in kept, now=now)
                kept[audit.subject] = answer
                results[i] = result
        _keep(session, vault, purpose, kept, now)
    return _all_answered(results)


def _only(results: list[R | Unknown | Exception]) -> R | Unknown:
    """A batch of one's answer, its exception raised."""
    (result,) = results
    if isinstance(result, Exception):
        raise result
    return result


def _all_answered(results: list[T | None]) -> list[T]:
    assert None not in results, "every use has its answer"
    return [r for r in results if r is not None]


def _consented(
    session: Session, audits: Sequence[_Audit], now: datetime
) -> list[consent.ConsentNotValid | None]:
    """For each use, None if its consent allows it now, else why not. The consents
    are read in one query and held, so `consent.require` finds each in the session."""
    ids = {a.consent_id for a in audits if a.consent_id}
    _held = session.scalars(select(Consent).where(Consent.id.in_(ids))).all() if ids else []
    refusals: list[consent.ConsentNotValid | None] = []
    for audit in audits:
        try:
            consent.require(session, audit.consent_id, audit.subject, audit.purpose, now)
            refusals.append(None)
        except consent.ConsentNotValid as exc:
            refusals.append(exc)
    return refusals


def _cached(
    session: Session,
    vault: Vault,
    model: type[R],
    subjects: set[str],
    purpose: str,
    fresh_after: datetime,
) -> dict[str, R | Unknown]:
    """The remembered answers younger than their validity, by subject."""
    if not subjects:
        return {}
    rows = session.execute(
        select(BureauRecord.subject_hash, BureauRecord.record_enc).where(
            BureauRecord.purpose == purpose,
            BureauRecord.subject_hash.in_(subjects),
            BureauRecord.fetched_at > fresh_after,
        )
    )
    return {
        subject: UNKNOWN
        if record_enc is None
        else model.model_validate(json.loads(vault.decrypt(record_enc)))
        for subject, record_enc in rows
    }


def _keep(
    session: Session,
    vault: Vault,
    purpose: str,
    answers: dict[str, R | None],
    now: datetime,
) -> None:
    """Remember the answers (encrypted) for reuse within their validity: one upsert,
    so that runs asking about the same subject at once both succeed."""
    if not answers:
        return
    rows = [
        {
            "subject_hash": subject,
            "purpose": purpose,
            "record_enc": vault.encrypt(found.model_dump_json()) if found is not None else None,
            "fetched_at": now,
        }
        for subject, found in answers.items()
    ]
    connection = session.connection()
    builder = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = builder(BureauRecord)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["subject_hash", "purpose"],
            set_={"record_enc": statement.excluded.record_enc, "fetched_at": now},
        ),
        rows,
    )


def _outcome(result: PartnerRecord | Unknown) -> str:
    return "not_found" if isinstance(result, Unknown) else "found"


def audit_of(session: Session, vault: Vault, id_number: str) -> list[BureauLookup]:
    """Every recorded use of the credit database about this person, oldest first."""
    return list(
        session.scalars(
            select(BureauLookup)
            .where(BureauLookup.subject_hash == vault.lookup_hash(id_number))
            .order_by(BureauLookup.id)
        )
    )


def person_audit(ctx: HubContext, id_number: str) -> list[BureauLookup]:
    """Use case: `audit_of`, for an operator (`credithub audit person`)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return audit_of(session, ctx.vault, id_number)
