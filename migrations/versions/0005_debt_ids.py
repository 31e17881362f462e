"""a debt of its own: its id, and its source (a visit now, a loan instalment next)

Revision ID: 0005_debt_ids
Revises: 0004_ledger_rules
Create Date: 2026-12-05 10:00:00

`debts` was keyed by its visit, and collection steps pointed at visits. Each
debt gets its own id (`dbt_…`, generated here for the rows that exist) and a
source (`source_kind`, `source_id`: 'visit' and the visit's id for every
existing row), unique per source; collection steps point at the debt's id.

On SQLite the tables are rebuilt (batch mode) with foreign keys enforced: the
steps drop their reference to `debts.visit_id` before `debts` is rebuilt, and
take the one to `debts.id` after, so no rebuild deletes a referenced row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.core.ids import new_id

revision = "0005_debt_ids"
down_revision = "0004_ledger_rules"
branch_labels = None
depends_on = None

_debts = sa.table(
    "debts",
    sa.column("id", sa.String),
    sa.column("visit_id", sa.String),
    sa.column("source_kind", sa.String),
    sa.column("source_id", sa.String),
)


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("debts") as batch_op:
        batch_op.add_column(sa.Column("id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("source_kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=32), nullable=True))
    visits = bind.execute(sa.select(_debts.c.visit_id)).scalars().all()
    if visits:
        bind.execute(
            _debts.update()
            .where(_debts.c.visit_id == sa.bindparam("visit"))
            .values(id=sa.bindparam("debt"), source_kind="visit", source_id=sa.bindparam("visit")),
            [{"visit": visit, "debt": new_id("dbt")} for visit in visits],
        )

    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.add_column(sa.Column("debt_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE collection_steps SET debt_id ="
        " (SELECT debts.id FROM debts WHERE debts.visit_id = collection_steps.visit_id)"
    )
    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.drop_constraint("fk_collection_steps_visit_id_debts", type_="foreignkey")
        batch_op.drop_constraint("pk_collection_steps", type_="primary")
        batch_op.drop_column("visit_id")
        batch_op.alter_column("debt_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_primary_key("pk_collection_steps", ["debt_id", "step"])

    with op.batch_alter_table("debts") as batch_op:
        batch_op.drop_constraint("fk_debts_visit_id_visits", type_="foreignkey")
        batch_op.drop_constraint("pk_debts", type_="primary")
        batch_op.drop_column("visit_id")
        for name, length in (("id", 32), ("source_kind", 16), ("source_id", 32)):
            batch_op.alter_column(name, existing_type=sa.String(length=length), nullable=False)
        batch_op.create_primary_key("pk_debts", ["id"])
        batch_op.create_unique_constraint(
            "uq_debts_source_kind_source_id", ["source_kind", "source_id"]
        )

    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.create_foreign_key(
            "fk_collection_steps_debt_id_debts", "debts", ["debt_id"], ["id"]
        )


def downgrade() -> None:
    """Back to debts keyed by their visit (only visit debts can go back)."""
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM debts WHERE source_kind != 'visit'")).first():
        raise RuntimeError("debts of other sources than visits cannot be keyed by a visit")
    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.drop_constraint("fk_collection_steps_debt_id_debts", type_="foreignkey")
        batch_op.add_column(sa.Column("visit_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE collection_steps SET visit_id ="
        " (SELECT debts.source_id FROM debts WHERE debts.id = collection_steps.debt_id)"
    )
    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.drop_constraint("pk_collection_steps", type_="primary")
        batch_op.drop_column("debt_id")
        batch_op.alter_column("visit_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_primary_key("pk_collection_steps", ["visit_id", "step"])

    with op.batch_alter_table("debts") as batch_op:
        batch_op.add_column(sa.Column("visit_id", sa.String(length=32), nullable=True))
    op.execute("UPDATE debts SET visit_id = source_id")
    with op.batch_alter_table("debts") as batch_op:
        batch_op.drop_constraint("uq_debts_source_kind_source_id", type_="unique")
        batch_op.drop_constraint("pk_debts", type_="primary")
        batch_op.drop_column("id")
        batch_op.drop_column("source_kind")
        batch_op.drop_column("source_id")
        batch_op.alter_column("visit_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_primary_key("pk_debts", ["visit_id"])
        batch_op.create_foreign_key("fk_debts_visit_id_visits", "visits", ["visit_id"], ["id"])

    with op.batch_alter_table("collection_steps") as batch_op:
        batch_op.create_foreign_key(
            "fk_collection_steps_visit_id_debts", "debts", ["visit_id"], ["visit_id"]
        )
