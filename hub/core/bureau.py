"""The public credit database, used under consent (CONTRACT.md §5).

Every use is audited (who, whom by keyed hash, purpose, consent, time,
outcome). A lookup of the same subject for the same purpose younger than its
validity, and still covered by a valid consent, is reused instead of repeated;
the reuse is audited too. No transaction is held open across the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hub.core import consent
from hub.core.db import unit_of_work
from hub.core.personal_data import Vault
from models.core.partner_errors import PartnerError
from models.core.partner_records import FirmRecord, PartnerRecord, PersonRecord
from models.core.tables import BureauLookup, BureauRecord

if TYPE_CHECKING:
    from hub.context import HubContext

PURPOSE_MEDICAL = "medical_credit"
PURPOSE_BUSINESS_LOAN = "business_loan"

R = TypeVar("R", bound=PartnerRecord)


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


def _cached(
    session: Session,
    vault: Vault,
    model: type[R],
    subject: str,
    purpose: str,
    fresh_after: datetime,
) -> R | Unknown | None:
    row = session.get(BureauRecord, (subject, purpose))
    if row is None or row.fetched_at <= fresh_after:
        return None
    if row.record_enc is None:
        return UNKNOWN
    return model.model_validate(json.loads(vault.decrypt(row.record_enc)))


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
    return _look_up(
        engine,
        vault,
        PersonRecord,
        lambda: directory.person(id_number),
        subject_key=id_number,
        consent_id=consent_id,
        purpose=purpose,
        requested_by=requested_by,
        validity=validity,
        clock=clock,
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
    return _look_up(
        engine,
        vault,
        FirmRecord,
        lambda: directory.firm(uscc),
        subject_key=uscc,
        consent_id=consent_id,
        purpose=PURPOSE_BUSINESS_LOAN,
        requested_by=requested_by,
        validity=validity,
        clock=clock,
    )


def _look_up(
    engine: Engine,
    vault: Vault,
    model: type[R],
    ask: Callable[[], R | None],
    *,
    subject_key: str,
    consent_id: str | None,
    purpose: str,
    requested_by: str,
    validity: timedelta,
    clock: Callable[[], datetime],
) -> R | Unknown:
    """One consented, audited use of the database: reused within `validity`, else
    `ask` (the partner call, made outside any transaction) and remembered."""
    subject = vault.lookup_hash(subject_key)
    audit = _Audit(requested_by, subject, purpose, consent_id)
    refused: consent.ConsentNotValid | None = None
    with unit_of_work(engine) as session:  # the audit row commits even when we refuse
        now = clock()
        try:
            consent.require(session, consent_id, subject, purpose, now)
        except consent.ConsentNotValid as exc:
            audit.write(session, "refused_no_consent", reused=False, now=now)
            refused = exc
        else:
            reused = _cached(session, vault, model, subject, purpose, now - validity)
            if reused is not None:
                audit.write(session, _outcome(reused), reused=True, now=now)
                return reused
    if refused is not None:
        raise refused
    try:
        found = ask()
    except PartnerError as exc:
        with unit_of_work(engine) as session:
            audit.write(session, f"failed:{type(exc).__name__}", reused=False, now=clock())
        raise
    result: R | Unknown = found if found is not None else UNKNOWN
    with unit_of_work(engine) as session:
        now = clock()
        try:  # a consent withdrawn while we asked stops this use too
            consent.require(session, consent_id, subject, purpose, now)
        except consent.ConsentNotValid as exc:
            audit.write(session, "discarded_no_consent", reused=False, now=now)
            refused = exc
        else:
            _keep(session, vault, subject, purpose, found, now)
            audit.write(session, _outcome(result), reused=False, now=now)
    if refused is not None:
        raise refused
    return result


def _keep(
    session: Session,
    vault: Vault,
    subject: str,
    purpose: str,
    found: PartnerRecord | None,
    now: datetime,
) -> None:
    """Remember the answer (encrypted) for reuse within its validity."""
    record_enc = vault.encrypt(found.model_dump_json()) if found is not None else None
    row = session.get(BureauRecord, (subject, purpose), with_for_update=True)
    if row is None:
        session.add(
            BureauRecord(
                subject_hash=subject, purpose=purpose, record_enc=record_enc, fetched_at=now
            )
        )
    else:
        row.record_enc, row.fetched_at = record_enc, now


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
