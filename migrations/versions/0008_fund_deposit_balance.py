"""a fund deposit keeps the fund's balance just after it, so that a repeat of its
reference replays the first answer exactly (CONTRACT.md §1, partner references)

Revision ID: 0008_fund_deposit_balance
Revises: 0007_loans
Create Date: 2026-12-02 15:00:00

Existing deposits (none outside tests before this revision) get 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_fund_deposit_balance"
down_revision = "0007_loans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fund_deposits") as batch:
        batch.add_column(
            sa.Column("balance_after_fen", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("fund_deposits") as batch:
        batch.drop_column("balance_after_fen")
