"""the open settlement window named by one row, which captures lock instead of the window

Revision ID: 0006_window_pointer
Revises: 0005_debt_ids
Create Date: 2026-12-02 12:00:00

A capture used to lock the window it found by `status = 'open'`; when a close
committed while the capture waited, PostgreSQL re-checked the condition on the
closed row and returned nothing. Captures now lock `open_settlement_window`
(one row, id 1), which a close updates to name the next window: a capture that
waited reads the updated row. An existing database's open window is named there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_window_pointer"
down_revision = "0005_debt_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_settlement_window",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("window_id", sa.String(length=32), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_open_settlement_window_one_row")),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["settlement_windows.id"],
            name=op.f("fk_open_settlement_window_window_id_settlement_windows"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_settlement_window")),
    )
    op.execute(
        "INSERT INTO open_settlement_window (id, window_id) "
        "SELECT 1, id FROM settlement_windows WHERE status = 'open'"
    )


def downgrade() -> None:
    op.drop_table("open_settlement_window")
