"""loan instalments are debts the shared collections act on

Revision ID: 0010_loan_instalment_debts
Revises: 0009_loan_repayment_outstanding
Create Date: 2026-12-02 15:10:00

A past-due loan instalment is a debt (source `loan_instalment`, source id
`<loan id>:<n>`, hub/loans/delinquency.py) that a firm owes the loan's bank: it
is on no credit line, so `debts.credit_line_id` and the steps' copy of it may
be null, and a source id (31 characters of loan id, `:` and the instalment's
number) no longer fits 32 characters.

On SQLite the tables are rebuilt (batch mode) with foreign keys enforced: as in
0005, the steps drop their reference to `debts.id` before `debts` is rebuilt
and take it again after, so no rebuild deletes a referenced row.

Downgrading deletes the loan instalments' debts and their steps (the next
delinquency run after upgrading again records them anew from the schedules).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_loan_instalment_debts"
down_revision = "0009_loan_repayment_outstanding"
branch_labels = None
depends_on = None

_STEPS_FK = "fk_collection_steps_debt_id_debts"


def _nullable_line(nullable: bool, source_id: sa.types.TypeEngine[str]) -> None:
    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.drop_constraint(_STEPS_FK, type_="foreignkey")
        batch_op.alter_column(
            "credit_line_id", existing_type=sa.String(length=32), nullable=nullable
        )
    with op.batch_alter_table("debts") as batch_op:
        batch_op.alter_column(
            "source_id", existing_type=sa.String(), type_=source_id, existing_nullable=False
        )
        batch_op.alter_column(
            "credit_line_id", existing_type=sa.String(length=32), nullable=nullable
        )
    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.create_foreign_key(_STEPS_FK, "debts", ["debt_id"], ["id"])


def upgrade() -> None:
    _nullable_line(True, sa.String(length=64))


def downgrade() -> None:
    op.execute(
        "DELETE FROM collection_steps WHERE debt_id IN"
        " (SELECT id FROM debts WHERE source_kind = 'loan_instalment')"
    )
    op.execute("DELETE FROM debts WHERE source_kind = 'loan_instalment'")
    _nullable_line(False, sa.String(length=32))
