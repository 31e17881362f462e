"""the ledger's rules in the database (PostgreSQL): balanced entries, append-only audit

Revision ID: 0004_ledger_rules
Revises: 0003_operations
Create Date: 2026-12-02 10:00:00

`hub.core.ledger.post` refuses an unbalanced entry; these triggers make the
database refuse one too, whoever writes it (as django-hordak does): a deferred
constraint trigger checks, at commit, that the postings of every entry touched
sum to zero. Postings and the audit of credit-database use are append-only:
UPDATE and DELETE are refused (TRUNCATE, an administrator's act, is not a row
change and stays possible). SQLite has no such triggers here; the hub's own
code is the guard there.
"""

from __future__ import annotations

from alembic import op

revision = "0004_ledger_rules"
down_revision = "0003_operations"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE FUNCTION ledger_entry_must_balance() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        total numeric;
    BEGIN
        SELECT COALESCE(SUM(amount_fen), 0) INTO total
          FROM ledger_postings WHERE entry_id = NEW.entry_id;
        IF total <> 0 THEN
            RAISE EXCEPTION 'ledger entry % does not balance: its postings sum to %',
                NEW.entry_id, total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_postings_balanced
        AFTER INSERT ON ledger_postings
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_entry_must_balance()
    """,
    """
    CREATE FUNCTION refuse_change_of_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER ledger_postings_append_only
        BEFORE UPDATE OR DELETE ON ledger_postings
        FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only()
    """,
    """
    CREATE TRIGGER bureau_lookups_append_only
        BEFORE UPDATE OR DELETE ON bureau_lookups
        FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only()
    """,
]

_DOWN = [
    "DROP TRIGGER IF EXISTS bureau_lookups_append_only ON bureau_lookups",
    "DROP TRIGGER IF EXISTS ledger_postings_append_only ON ledger_postings",
    "DROP FUNCTION IF EXISTS refuse_change_of_append_only()",
    "DROP TRIGGER IF EXISTS ledger_postings_balanced ON ledger_postings",
    "DROP FUNCTION IF EXISTS ledger_entry_must_balance()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _DOWN:
        op.execute(statement)
