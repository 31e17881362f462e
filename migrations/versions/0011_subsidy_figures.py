"""a subsidy's figures in columns of their own

Revision ID: 0011_subsidy_figures
Revises: 0010_loan_instalment_debts
Create Date: 2026-12-02 20:30:00

Why a subsidy has its amount — the rule, the loan's grade and annual rate, the
points — was a JSON object built for each subsidy; it is now the rule's name
and three typed columns (the interest and the amount were columns already), and
`GET /v1/subsidies` builds the same object from them (hub/loans/subsidies.view).
Building the JSON was most of what computing a month cost beyond reading its
repayments. Existing rows keep their figures: they are copied out of the JSON.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_subsidy_figures"
down_revision = "0010_loan_instalment_debts"
branch_labels = None
depends_on = None

_FIGURES = (("grade", sa.String(length=1)), ("annual_rate_bps", sa.Integer()),
            ("points_bps", sa.Integer()))  # fmt: skip
_FORMULA = "floor(interest_paid_fen * min(points_bps, annual_rate_bps) / annual_rate_bps)"


def _field(dialect: str, name: str) -> str:
    return f"rule ->> '{name}'" if dialect == "postgresql" else f"json_extract(rule, '$.{name}')"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, type_ in _FIGURES:
        op.add_column("subsidies", sa.Column(name, type_, nullable=True))
    op.execute(
        "UPDATE subsidies SET grade = " + _field(dialect, "grade")
        + ", annual_rate_bps = CAST(" + _field(dialect, "annual_rate_bps") + " AS INTEGER)"
        + ", points_bps = CAST(" + _field(dialect, "points_bps") + " AS INTEGER)"
    )  # fmt: skip
    with op.batch_alter_table("subsidies") as batch_op:
        for name, type_ in _FIGURES:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
        batch_op.alter_column(
            "rule", existing_type=sa.JSON(), type_=sa.String(length=32), existing_nullable=False,
            postgresql_using=_field("postgresql", "rule"),
        )  # fmt: skip
    if dialect != "postgresql":
        op.execute(
            "UPDATE subsidies SET rule = " + _field(dialect, "rule") + " WHERE rule LIKE '{%'"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    build = "json_build_object" if dialect == "postgresql" else "json_object"
    dishonest = "false" if dialect == "postgresql" else "json('false')"
    rebuilt = (
        f"{build}('rule', rule, 'formula', '{_FORMULA}', 'grade', grade, 'dishonest', {dishonest},"
        " 'interest_paid_fen', interest_paid_fen, 'annual_rate_bps', annual_rate_bps,"
        " 'points_bps', points_bps, 'amount_fen', amount_fen)"
    )
    if dialect == "postgresql":
        op.execute(f"ALTER TABLE subsidies ALTER COLUMN rule TYPE json USING {rebuilt}")
    else:
        op.execute(f"UPDATE subsidies SET rule = {rebuilt}")
        with op.batch_alter_table("subsidies") as batch_op:
            batch_op.alter_column(
                "rule", existing_type=sa.String(length=32), type_=sa.JSON(),
                existing_nullable=False,
            )  # fmt: skip
    with op.batch_alter_table("subsidies") as batch_op:
        for name, _ in _FIGURES:
            batch_op.drop_column(name)
