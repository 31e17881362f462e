"""The ledger's rules in the database itself (PostgreSQL): an entry whose
postings do not sum to zero cannot commit, and the ledger and the audit of
credit-database use are append-only, whoever writes to them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from hub.core.db import get_engine
from hub.settings import Settings

pytestmark = pytest.mark.pg

_POSTING = text(
    "INSERT INTO ledger_postings (entry_id, account, amount_fen, kind, ref, created_at)"
    " VALUES (:entry, :account, :amount, 'test', 'ref_1', :at)"
)


def _post(conn: Connection, entry: str, *legs: tuple[str, int]) -> None:
    at = datetime.now(UTC)
    for account, amount in legs:
        conn.execute(_POSTING, {"entry": entry, "account": account, "amount": amount, "at": at})


def test_an_unbalanced_entry_cannot_commit(pg_settings: Settings) -> None:
    engine = get_engine(pg_settings)
    with pytest.raises(DBAPIError, match="does not balance"), engine.begin() as conn:
        _post(conn, "ent_unbalanced", ("a", 100), ("b", -99))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM ledger_postings")).scalar_one()
    assert rows == 0


def test_a_balanced_entry_commits_leg_by_leg(pg_settings: Settings) -> None:
    """The check is deferred to the commit: the first leg alone is not yet an error."""
    engine = get_engine(pg_settings)
    with engine.begin() as conn:
        _post(conn, "ent_balanced", ("a", 100), ("b", -60), ("c", -40))
    with engine.connect() as conn:
        total = conn.execute(text("SELECT sum(amount_fen) FROM ledger_postings")).scalar_one()
    assert total == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_fen = amount_fen * 2",
        "DELETE FROM ledger_postings",
    ],
)
def test_postings_are_never_changed(pg_settings: Settings, statement: str) -> None:
    engine = get_engine(pg_settings)
    with engine.begin() as conn:
        _post(conn, "ent_1", ("a", 5), ("b", -5))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))


@pytest.mark.parametrize(
    "statement",
    ["UPDATE bureau_lookups SET outcome = 'found'", "DELETE FROM bureau_lookups"],
)
def test_the_audit_of_credit_database_use_is_append_only(
    pg_settings: Settings, statement: str
) -> None:
    engine = get_engine(pg_settings)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bureau_lookups (requested_by, subject_hash, purpose, consent_id,"
                " at, outcome, reused) VALUES ('p', 'h', 'medical_credit', NULL, :at,"
                " 'not_found', false)"
            ),
            {"at": datetime.now(UTC)},
        )
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
