"""Rotating a partner's webhook secret (CONTRACT.md §3, §7): the command line, then
real deliveries over HTTP to a small receiver, on SQLite and PostgreSQL.

Before a rotation each event carries one `v1=` signature; during the overlap two
(the new secret's first), and a receiver holding either secret accepts it; after
the overlap only the new one, and the old secret verifies nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from hub.context import HubContext
from hub.core import clock, events, webhook_delivery
from hub.core.db import unit_of_work
from integrations.partner_client import partner_pool
from integrations.webhooks import WebhookSender
from simulators.webhook_receiver import Delivery, WebhookReceiver
from tests import test_cli
from tests.live import serve

hub = test_cli.hub  # the command line's fixture: a home, a database, the `credithub` command


@contextmanager
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    """A partner's webhook endpoint on a free port: keeps what arrives, answers 200."""
    endpoint = WebhookReceiver()
    with serve(endpoint) as url:
        yield url, endpoint.received


def deliver_one(ctx: HubContext, partner_id: str, received: list[Delivery]) -> Delivery:
    """Queue one event for the partner and deliver what is due, for real over HTTP."""
    with unit_of_work(ctx.engine) as session:
        events.emit(
            session, "credit_line.suspended", {"n": len(received)}, [partner_id], clock.now()
        )
    before = len(received)
    with partner_pool() as http:
        sender = WebhookSender(http, timeout_seconds=5)
        outcomes = [
            webhook_delivery.deliver(ctx, sender, job) for job in webhook_delivery.due(ctx, 10)
        ]
    assert outcomes == ["delivered"] and len(received) == before + 1
    return received[-1]


def verifies(secret: str, delivered: Delivery) -> bool:
    now = int(clock.now().timestamp())
    return events.verify(secret, delivered.signature, delivered.body, now)


def test_a_rotated_secret_signs_beside_the_old_one_until_the_overlap_ends(
    hub: test_cli.Hub,
) -> None:
    ctx = HubContext.of(hub.settings)
    with receiver() as (url, received):
        partner = hub.add_partner("hospital", "XMH1", "--webhook-url", url)
        first = partner["webhook_secret"]

        # before any rotation: one signature, by the only secret
        before = deliver_one(ctx, partner["partner_id"], received)
        assert before.signature.count("v1=") == 1 and verifies(first, before)

        r = hub.run("partners", "rotate-webhook-secret", "XMH1")
        rotated_at = datetime.now(UTC)
        assert r.returncode == 0, r.stderr
        (line,) = r.stdout.splitlines()
        answer = json.loads(line)
        assert set(answer) == {"code", "webhook_secret", "previous_valid_until"}
        second = answer["webhook_secret"]
        assert second.startswith("whsec_") and second != first
        until = datetime.fromisoformat(answer["previous_valid_until"])
        assert abs(until - (rotated_at + timedelta(hours=24))) < timedelta(minutes=1)
        assert second.encode() not in hub.stored_text()  # kept encrypted, as the first

        # during the overlap: two signatures, the new one first; either secret verifies
        during = deliver_one(ctx, partner["partner_id"], received)
        assert during.signature.count("v1=") == 2
        assert verifies(second, during) and verifies(first, during)
        assert not verifies("whsec_other", during)

        # rotating again mid-overlap: the oldest secret goes, two at most sign
        r = hub.run("partners", "rotate-webhook-secret", "XMH1", "--overlap-hours", "2")
        assert r.returncode == 0, r.stderr
        third = json.loads(r.stdout)["webhook_secret"]
        again = deliver_one(ctx, partner["partner_id"], received)
        assert again.signature.count("v1=") == 2
        assert verifies(third, again) and verifies(second, again) and not verifies(first, again)

        # after the overlap (the hub's clock moved on): the new secret alone
        clock.set_now(rotated_at + timedelta(hours=2, minutes=5))
        after = deliver_one(ctx, partner["partner_id"], received)
        assert after.signature.count("v1=") == 1
        assert verifies(third, after) and not verifies(second, after)


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
def test_rotating_an_unknown_partner_or_a_negative_overlap_fails_clearly(
    hub: test_cli.Hub,
) -> None:
    r = hub.run("partners", "rotate-webhook-secret", "NOSUCH")
    assert r.returncode == 1 and "NOSUCH" in r.stderr and "Traceback" not in r.stderr
    assert "webhook_secret" not in r.stdout
    hub.add_partner("bank", "BANK1")
    r = hub.run("partners", "rotate-webhook-secret", "BANK1", "--overlap-hours", "-1")
    assert r.returncode != 0 and "webhook_secret" not in r.stdout
