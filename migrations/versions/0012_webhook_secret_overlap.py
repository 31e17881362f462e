"""a partner's previous webhook secret, valid until a given instant

Revision ID: 0012_webhook_secret_overlap
Revises: 0011_subsidy_figures
Create Date: 2026-12-03 14:00:00

`credithub partners rotate-webhook-secret` issues a new secret and keeps the one
before it (encrypted, as the current one is) until the end of an overlap: while
it lasts every delivery carries two `v1=` signatures (CONTRACT.md §3), so a
receiver holding either secret accepts it. Both columns are null when no
rotation happened (every existing partner). Downgrading forgets the previous
secret: deliveries are then signed with the current one only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_webhook_secret_overlap"
down_revision = "0011_subsidy_figures"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, no batch rebuild: SQLite (3.35 and later) adds and drops a
# column in place, and rebuilding `partners` would trip the foreign keys of the
# tables that reference it (enforced on every connection, hub/core/db.py).


def upgrade() -> None:
    op.add_column(
        "partners", sa.Column("webhook_secret_previous_enc", sa.LargeBinary(), nullable=True)
    )
    op.add_column(
        "partners",
        sa.Column("webhook_secret_previous_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("partners", "webhook_secret_previous_until")
    op.drop_column("partners", "webhook_secret_previous_enc")
