"""Inbound idempotency: a partner's retry under the same key changes nothing.

The first outcome (2xx, 402 or 409) is stored in the same transaction as the
effect it describes, so a retry finds either both or neither. While the first
request runs, PostgreSQL's transaction-scoped advisory lock on the key tells a
second one it is in progress; SQLite serialises writers, so it never sees one.
The plain INSERT of the outcome is the final guard: if another request stored
the key first, this transaction rolls back whole and replays that one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hub.core.db import is_transient, new_session
from hub.core.errors import HubError
from models.core.tables import IdempotencyKey, table_of

STORED_STATUSES = frozenset({402, 409})


@dataclass(frozen=True)
class StoredOutcome:
    method: str
    path: str
    request_body: Any
    status_code: int
    response_body: str


class InProgress(Exception):
    """Another request under the same key has not finished."""


def is_stored(status_code: int) -> bool:
    return 200 <= status_code < 300 or status_code in STORED_STATUSES


def _lock_key(partner_id: str, key: str) -> int:
    digest = hashlib.blake2b(f"{partner_id}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_CLAIM_COLUMNS = "k.method, k.path, k.request_body, k.status_code, k.response_body"
_CLAIM_FROM = (
    "FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.partner_id = :p AND k.key = :k"
)


def _claim_statement(free: str) -> Any:
    return text(f"SELECT {free} AS free, {_CLAIM_COLUMNS} {_CLAIM_FROM}").columns(
        request_body=IdempotencyKey.__table__.c.request_body.type
    )


_CLAIM = {
    # On PostgreSQL the key's advisory lock is taken in the statement that reads it.
    "postgresql": _claim_statement("pg_try_advisory_xact_lock(:h)"),
    "sqlite": _claim_statement("1"),
}
_STORE = insert(table_of(IdempotencyKey))


def claim(session: Session, partner_id: str, key: str) -> StoredOutcome | None:
    """The stored outcome for the key, or None when this request goes first.

    Raises InProgress when another transaction holds the key right now.
    """
    connection = session.connection()
    params: dict[str, Any] = {"p": partner_id, "k": key, "h": _lock_key(partner_id, key)}
    row = connection.execute(_CLAIM[connection.dialect.name], params).one()
    if row.status_code is not None:
        return StoredOutcome(
            row.method, row.path, row.request_body, row.status_code, row.response_body
        )
    if not row.free:
        raise InProgress
    return None


def store(
    session: Session,
    *,
    partner_id: str,
    key: str,
    method: str,
    path: str,
    request_body: Any,
    status_code: int,
    response_body: str,
    now: datetime,
) -> None:
    """Record the outcome; an IntegrityError means another request stored it first."""
    session.connection().execute(
        _STORE,
        {
            "partner_id": partner_id,
            "key": key,
            "method": method,
            "path": path,
            "request_body": request_body,
            "status_code": status_code,
            "response_body": response_body,
            "created_at": now,
        },
    )


def fingerprint(body: Any, digest: Callable[[str], str]) -> Any:
    """The body as a keyed digest per top-level field: comparable, yet no personal
    data (an identity number in an eligibility check, say) is stored in clear."""
    if not isinstance(body, dict):
        return digest(_canonical(body))
    return {field: digest(_canonical(value)) for field, value in body.items()}


def _canonical(value: Any) -> str:
    if isinstance(value, str):  # the common case, without the JSON encoder
        return f"s:{value}"
    return f"j:{json.dumps(value, sort_keys=True, ensure_ascii=False)}"


def differences(stored: StoredOutcome, method: str, path: str, body: Any) -> list[str]:
    """What differs between the stored request and this one: 'path' or body field names."""
    if (stored.method, stored.path) != (method, path):
        return ["path"]
    if stored.request_body == body:
        return []
    if isinstance(stored.request_body, dict) and isinstance(body, dict):
        keys = sorted(set(stored.request_body) | set(body))
        return [k for k in keys if stored.request_body.get(k, ...) != body.get(k, ...)]
    return ["body"]


class StoredMeanwhile(Exception):
    """Another request stored this key after we looked: run again to replay it."""


@dataclass(frozen=True)
class Attempt:
    """One request under an idempotency key, as `run_once` needs it."""

    partner_id: str
    key: str
    method: str
    path: str
    body: Any
    now: datetime


Outcome = tuple[int, str]


def run_once(
    engine: Engine,
    attempt: Attempt,
    work: Callable[[Session], Outcome],
    outcome_of: Callable[[HubError], Outcome],
) -> tuple[Outcome, StoredOutcome | None]:
    """Run `work` and store its outcome in one transaction, unless the key has one.

    Returns the outcome and, when the key was used before, the stored request
    it answers (the caller compares it with this one). A HubError whose outcome
    is stored (402, 409) rolls the work back and stores just the outcome.
    Raises InProgress, or StoredMeanwhile when a racing request won.
    """
    with new_session(engine) as session:
        session.begin()
        stored = claim(session, attempt.partner_id, attempt.key)
        if stored is not None:
            return (stored.status_code, stored.response_body), stored
        try:
            outcome = work(session)
        except HubError as error:
            outcome = outcome_of(error)
            if not is_stored(outcome[0]):
                raise
            session.rollback()  # undo the attempt; keep only its outcome
            session.begin()
            stored = claim(session, attempt.partner_id, attempt.key)
            if stored is not None:
                return (stored.status_code, stored.response_body), stored
        try:
            store(
                session,
                partner_id=attempt.partner_id,
                key=attempt.key,
                method=attempt.method,
                path=attempt.path,
                request_body=attempt.body,
                status_code=outcome[0],
                response_body=outcome[1],
                now=attempt.now,
            )
        except IntegrityError as exc:
            raise StoredMeanwhile from exc
        session.commit()
        return outcome, None


class DatabaseFailed(Exception):
    """The database failed the request, and trying again did not help (the cause is chained)."""


def run(
    engine: Engine,
    attempt: Attempt,
    work: Callable[[Session], Outcome],
    outcome_of: Callable[[HubError], Outcome],
    tries: int = 3,
) -> tuple[Outcome, StoredOutcome | None]:
    """`run_once`, tried again after a racing request stored the key first (to replay
    it) or after a deadlock, serialisation failure or busy SQLite.

    Raises InProgress; DatabaseFailed for any other database error, or a transient
    one on the last try; StoredMeanwhile when the races never settle.
    """
    for round_ in range(tries):
        try:
            return run_once(engine, attempt, work, outcome_of)
        except StoredMeanwhile:
            if round_ + 1 == tries:
                raise
        except OperationalError as exc:
            if round_ + 1 == tries or not is_transient(exc):
                raise DatabaseFailed("the database failed the request") from exc
    raise AssertionError("unreachable: the last try returns or raises")
