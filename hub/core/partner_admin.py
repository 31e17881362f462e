"""Managing partners, as operators do it from the command line (and `up` for its
demo partners): use cases, each one transaction over `hub.core.partners`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import clock, partners, webhook_secrets
from hub.core.db import unit_of_work
from hub.core.partners import NewPartner
from models.core.tables import Partner

if TYPE_CHECKING:
    from hub.context import HubContext

Wanted = tuple[str, str, str, str | None]  # kind, code, name, webhook URL


def add(ctx: HubContext, *, kind: str, name: str, code: str, webhook_url: str | None) -> NewPartner:
    """Add one partner; its API key is in the answer, and nowhere else."""
    return add_all(ctx, [(kind, code, name, webhook_url)])[0]


def add_all(ctx: HubContext, wanted: Iterable[Wanted]) -> list[NewPartner]:
    """Add these partners together: all of them, or (on any error) none."""
    with unit_of_work(ctx.engine) as session:
        return [_add(ctx, session, partner) for partner in wanted]


def _add(ctx: HubContext, session: Session, wanted: Wanted) -> NewPartner:
    kind, code, name, webhook_url = wanted
    return partners.add_partner(
        session, ctx.vault, kind=kind, name=name, code=code, webhook_url=webhook_url,
        now=clock.now(),
    )  # fmt: skip


def ensure(ctx: HubContext, wanted: Iterable[Wanted], keys_known: set[str]) -> dict[str, str]:
    """New API keys by code: for each wanted partner that is missing, added; for one
    that exists but whose key is not among `keys_known`, a new key (old ones stop)."""
    fresh: dict[str, str] = {}
    with unit_of_work(ctx.engine) as session:
        for partner in wanted:
            code = partner[1]
            if session.scalar(select(Partner.id).where(Partner.code == code)) is None:
                fresh[code] = _add(ctx, session, partner).api_key
            elif code not in keys_known:
                fresh[code] = partners.rotate_key(
                    session, code, grace=timedelta(0), now=clock.now()
                )
    return fresh


def rotate_key(ctx: HubContext, code: str) -> str:
    """A new API key; the partner's older keys keep working for the grace period."""
    grace = timedelta(hours=ctx.settings.rotated_key_grace_hours)
    with unit_of_work(ctx.engine) as session:
        return partners.rotate_key(session, code, grace=grace, now=clock.now())


def rotate_webhook_secret(
    ctx: HubContext, code: str, *, overlap: timedelta
) -> webhook_secrets.Rotated:
    """A new webhook secret (shown once); deliveries carry both signatures during `overlap`."""
    with unit_of_work(ctx.engine) as session:
        return webhook_secrets.rotate(session, ctx.vault, code, overlap=overlap, now=clock.now())


def disable(ctx: HubContext, code: str) -> None:
    """Every key of the partner stops working at once."""
    with unit_of_work(ctx.engine) as session:
        partners.disable(session, code)
