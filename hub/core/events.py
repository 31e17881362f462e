"""Events to partners (CONTRACT.md §3): an outbox, and the webhook signature.

An event is written in the same transaction as the change it reports, one row
per recipient, so nothing is announced that did not happen and nothing that
happened goes unannounced. Delivery (a flow) is at least once; receivers
dedupe by `event_id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core import webhook_secrets
from hub.core.ids import new_id
from hub.core.personal_data import Vault
from models.core.tables import Event, EventStatus, Partner

SIGNATURE_HEADER = "CreditHub-Signature"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def emit(
    session: Session,
    type_: str,
    data: dict[str, Any],
    recipients: Iterable[str],
    now: datetime,
    *,
    hooked: Collection[str] | None = None,
) -> str:
    """Queue one event for each recipient that has a webhook URL; returns the event id.
    `hooked`: the partners with a webhook URL, when the caller has read them once
    for many events (`with_webhooks`)."""
    event_id = new_id("evt")
    body = json.loads(json.dumps(data, default=_encode))
    wanted = set(recipients)
    with_hooks = with_webhooks(session, wanted) if hooked is None else wanted.intersection(hooked)
    for partner_id in sorted(with_hooks):
        session.add(
            Event(
                id=new_id("evd"),
                event_id=event_id,
                type=type_,
                partner_id=partner_id,
                payload=body,
                status=EventStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return event_id


def with_webhooks(session: Session, partner_ids: Collection[str]) -> set[str]:
    """Those of the partners that have a webhook URL (events are queued for them)."""
    query = select(Partner.id).where(Partner.id.in_(partner_ids), Partner.webhook_url.is_not(None))
    return set(session.scalars(query))


def envelope(event: Event) -> dict[str, Any]:
    """The body partners receive: `{"event_id", "type", "created_at", "data"}`."""
    return {
        "event_id": event.event_id,
        "type": event.type,
        "created_at": _encode(event.created_at),
        "data": event.payload,
    }


def sign(secrets_: Iterable[str], timestamp: int, raw_body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, one v1 per secret."""
    signed = f"{timestamp}.".encode() + raw_body
    parts = [f"t={timestamp}"]
    for secret in secrets_:
        parts.append("v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest())
    return ",".join(parts)


def verify(secret: str, header: str, raw_body: bytes, now: int, tolerance: int = 300) -> bool:
    """A receiver's check: a fresh timestamp and one matching v1 (constant-time).

    The header may carry several v1 values (during a secret rotation, one per valid
    secret): it is enough that one of them was made with `secret`."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [v for k, v in fields if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance:
        return False
    expected = sign([secret], int(stamps[0]), raw_body).split(",v1=")[1]
    return any(hmac.compare_digest(expected, v) for k, v in fields if k == "v1")


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one partner: where, signed with which secrets (the
    current one first; the previous one too during a rotation's overlap), what exactly."""

    row_id: str
    url: str
    secrets: tuple[str, ...]
    raw_body: bytes


def due(session: Session, vault: Vault, now: datetime, limit: int) -> list[Delivery]:
    """Pending deliveries whose time has come, oldest first."""
    rows = session.execute(
        select(
            Event,
            Partner.webhook_url,
            Partner.webhook_secret_enc,
            Partner.webhook_secret_previous_enc,
            Partner.webhook_secret_previous_until,
        )
        .join(Partner, Partner.id == Event.partner_id)
        .where(Event.status == EventStatus.PENDING, Event.next_attempt_at <= now)
        .order_by(Event.next_attempt_at, Event.id)
        .limit(limit)
    )
    return [
        Delivery(
            event.id,
            url,
            webhook_secrets.signing(vault, secret_enc, previous_enc, previous_until, now),
            json.dumps(envelope(event), separators=(",", ":")).encode(),
        )
        for event, url, secret_enc, previous_enc, previous_until in rows
        if url
    ]


def record_attempt(
    session: Session,
    event_id: str,
    *,
    delivered: bool,
    error: str | None,
    now: datetime,
    give_up_after: timedelta,
) -> None:
    """Mark a delivery done, or schedule the next try with backoff (failed after the window)."""
    event = session.get(Event, event_id, with_for_update=True)
    if event is None or event.status != EventStatus.PENDING:
        return
    event.attempts += 1
    if delivered:
        event.status, event.delivered_at, event.last_error = EventStatus.DELIVERED, now, None
        return
    event.last_error = (error or "failed")[:200]
    if now - event.created_at >= give_up_after:
        event.status = EventStatus.FAILED
        return
    backoff = min(timedelta(seconds=5 * 2 ** min(event.attempts, 20)), timedelta(hours=1))
    event.next_attempt_at = now + backoff
