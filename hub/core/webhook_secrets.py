"""Webhook secrets (CONTRACT.md §3): issuing one, rotating it with an overlap, and
which secrets sign a delivery now.

A partner verifies our events with its webhook secret. Rotating it at once would
break every delivery until the partner installs the new one, so the secret
before the last rotation stays valid for an overlap: meanwhile each delivery
carries a `v1=` signature per valid secret (the new one first), and a receiver
holding either accepts it. Secrets are kept encrypted by the vault, never plain.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.errors import Invalid, NotFound
from hub.core.personal_data import Vault
from models.core.tables import Partner


@dataclass(frozen=True)
class Rotated:
    """A rotation's outcome: the new secret (shown once), and until when the old one signs too."""

    code: str
    webhook_secret: str
    previous_valid_until: datetime


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(24)}"


def rotate(
    session: Session, vault: Vault, code: str, *, overlap: timedelta, now: datetime
) -> Rotated:
    """Issue a new secret; the current one keeps signing until now + `overlap`.

    At most two secrets are ever valid: rotating again during an overlap drops
    the oldest, and the one being replaced becomes the previous one."""
    if overlap < timedelta(0):
        raise Invalid("the overlap must not be negative")
    partner = session.scalar(select(Partner).where(Partner.code == code).with_for_update())
    if partner is None:
        raise NotFound(f"no partner with code {code}")
    secret = new_secret()
    partner.webhook_secret_previous_enc = partner.webhook_secret_enc
    partner.webhook_secret_previous_until = now + overlap
    partner.webhook_secret_enc = vault.encrypt(secret)
    return Rotated(code, secret, now + overlap)


def signing(
    vault: Vault,
    current_enc: bytes,
    previous_enc: bytes | None,
    previous_until: datetime | None,
    now: datetime,
) -> tuple[str, ...]:
    """The secrets a delivery is signed with at `now`: the current one, then the
    previous one while its overlap lasts."""
    valid = [vault.decrypt(current_enc)]
    if previous_enc is not None and previous_until is not None and now < previous_until:
        valid.append(vault.decrypt(previous_enc))
    return tuple(valid)
