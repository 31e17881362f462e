"""a loan repayment keeps the principal outstanding after it

Revision ID: 0009_loan_repayment_outstanding
Revises: 0008_fund_deposit_balance
Create Date: 2026-12-02 15:00:00

A repayment's answer shows `outstanding_principal_fen` after it; a replay of the
same `bank_txn_id` must show the same figure, so it is stored with the
repayment (as medical repayments keep `outstanding_after_fen`). Existing rows
get 0: no loan has been repaid before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_loan_repayment_outstanding"
down_revision = "0008_fund_deposit_balance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("loan_repayments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outstanding_after_fen", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("loan_repayments", schema=None) as batch_op:
        batch_op.alter_column("outstanding_after_fen", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("loan_repayments", schema=None) as batch_op:
        batch_op.drop_column("outstanding_after_fen")
