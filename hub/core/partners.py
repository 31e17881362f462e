"""Partners: the hospitals, banks, channels and operators that call the hub.

An API key is shown once and kept only as its SHA-256 hash (keys are 256-bit
random, so a plain hash is enough). Rotating a key lets the old one work for a
grace period; disabling a partner stops all its keys at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core import clock, webhook_secrets
from hub.core.clock import as_utc
from hub.core.db import unit_of_work
from hub.core.errors import Conflict, Invalid, NotFound
from hub.core.ids import new_id
from hub.core.personal_data import Vault
from models.core.tables import Partner, PartnerKey

if TYPE_CHECKING:
    from hub.context import HubContext

KINDS = ("hospital", "bank", "channel", "operator")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: what the endpoints need to authorise a request."""

    partner_id: str
    kind: str
    code: str


@dataclass(frozen=True)
class NewPartner:
    partner_id: str
    kind: str
    code: str
    api_key: str
    webhook_secret: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _new_api_key() -> str:
    return f"chk_{secrets.token_urlsafe(32)}"


def add_partner(
    session: Session,
    vault: Vault,
    *,
    kind: str,
    name: str,
    code: str,
    webhook_url: str | None,
    now: datetime,
) -> NewPartner:
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    if not _CODE.match(code):
        raise Invalid("code must be 1-64 letters, digits, '_', '.' or '-'")
    if not name.strip():
        raise Invalid("name must not be empty")
    if session.scalar(select(Partner.id).where(Partner.code == code)):
        raise Conflict(f"a partner with code {code} exists already", code="partner_exists")
    api_key, webhook_secret = _new_api_key(), webhook_secrets.new_secret()
    partner = Partner(
        id=new_id("prt"),
        kind=kind,
        code=code,
        name=name.strip(),
        webhook_url=webhook_url,
        webhook_secret_enc=vault.encrypt(webhook_secret),
        status="active",
        created_at=now,
    )
    session.add(partner)
    session.flush()  # before its key: the ORM orders inserts only along relationships
    session.add(PartnerKey(key_hash=hash_key(api_key), partner_id=partner.id, created_at=now))
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a partner with code {code} exists already", code="partner_exists") from exc
    return NewPartner(partner.id, kind, code, api_key, webhook_secret)


def _partner_by_code(session: Session, code: str) -> Partner:
    partner = session.scalar(select(Partner).where(Partner.code == code))
    if partner is None:
        raise NotFound(f"no partner with code {code}")
    return partner


def rotate_key(session: Session, code: str, *, grace: timedelta, now: datetime) -> str:
    """Issue a new key; keys issued before keep working for `grace`."""
    partner = _partner_by_code(session, code)
    session.execute(
        update(PartnerKey)
        .where(
            PartnerKey.partner_id == partner.id,
            or_(PartnerKey.expires_at.is_(None), PartnerKey.expires_at > now + grace),
        )
        .values(expires_at=now + grace)
    )
    api_key = _new_api_key()
    session.add(PartnerKey(key_hash=hash_key(api_key), partner_id=partner.id, created_at=now))
    return api_key


def disable(session: Session, code: str) -> None:
    partner = _partner_by_code(session, code)
    partner.status = "disabled"


def authenticate(session: Session, api_key: str, now: datetime) -> Caller | None:
    """The active partner holding `api_key`, or None."""
    row = session.execute(
        select(Partner.id, Partner.kind, Partner.code, PartnerKey.expires_at)
        .join(PartnerKey, PartnerKey.partner_id == Partner.id)
        .where(PartnerKey.key_hash == hash_key(api_key), Partner.status == "active")
    ).first()
    if row is None or (row.expires_at is not None and as_utc(row.expires_at) <= now):
        return None
    return Caller(partner_id=row.id, kind=row.kind, code=row.code)


def identify(ctx: HubContext, api_key: str) -> Caller | None:
    """Use case: who holds this API key now (None when nobody active does)."""
    with unit_of_work(ctx.engine, write=False) as session:
        return authenticate(session, api_key, clock.now())
