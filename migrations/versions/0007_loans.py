"""credit-easy loans for small firms: products, firms, applications and the banks
they were offered to, offers, loans with instalments and repayments, the
risk-compensation fund's deposits and claims, and interest subsidies

Revision ID: 0007_loans
Revises: 0006_window_pointer
Create Date: 2026-12-02 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.core.tables


revision = "0007_loans"
down_revision = "0006_window_pointer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_firms")),
        sa.UniqueConstraint("uscc", name=op.f("uq_firms_uscc")),
    )
    op.create_table(
        "fund_deposits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["partners.id"], name=op.f("fk_fund_deposits_operator_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fund_deposits")),
        sa.UniqueConstraint(
            "operator_id", "reference", name=op.f("uq_fund_deposits_operator_id_reference")
        ),
    )
    op.create_table(
        "loan_products",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("min_score", sa.Integer(), nullable=False),
        sa.Column("max_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("max_term_months", sa.Integer(), nullable=False),
        sa.Column("annual_rate_bps_min", sa.Integer(), nullable=False),
        sa.Column("annual_rate_bps_max", sa.Integer(), nullable=False),
        sa.Column("industries", sa.JSON(), nullable=True),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_loan_products_bank_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_products")),
        sa.UniqueConstraint("bank_id", "code", name=op.f("uq_loan_products_bank_id_code")),
    )
    op.create_table(
        "loan_applications",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("firm_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("consent_id", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decline_reason", sa.String(length=32), nullable=True),
        sa.Column("profile", sa.JSON(), nullable=True),
        sa.Column("respond_by", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["partners.id"], name=op.f("fk_loan_applications_channel_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_loan_applications_consent_id_consents")
        ),
        sa.ForeignKeyConstraint(
            ["firm_id"], ["firms.id"], name=op.f("fk_loan_applications_firm_id_firms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_applications")),
    )
    with op.batch_alter_table("loan_applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loan_applications_channel_id"), ["channel_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_loan_applications_firm_id"), ["firm_id"], unique=False)
        batch_op.create_index(
            "ix_loan_applications_status_respond_by", ["status", "respond_by"], unique=False
        )
        batch_op.create_index(
            "uq_loan_applications_pending_firm",
            ["firm_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('profiling', 'open')"),
            sqlite_where=sa.text("status IN ('profiling', 'open')"),
        )

    op.create_table(
        "application_banks",
        sa.Column("application_id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("offered_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.Column("decline_reason", sa.String(length=500), nullable=True),
        sa.Column("answered_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["loan_applications.id"],
            name=op.f("fk_application_banks_application_id_loan_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_application_banks_bank_id_partners")
        ),
        sa.PrimaryKeyConstraint("application_id", "bank_id", name=op.f("pk_application_banks")),
    )
    with op.batch_alter_table("application_banks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_application_banks_bank_offered", ["bank_id", "offered_at"], unique=False
        )

    op.create_table(
        "loan_offers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("application_id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("product_code", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("annual_rate_bps", sa.Integer(), nullable=False),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["loan_applications.id"],
            name=op.f("fk_loan_offers_application_id_loan_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_loan_offers_bank_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_offers")),
        sa.UniqueConstraint(
            "application_id", "bank_id", name=op.f("uq_loan_offers_application_id_bank_id")
        ),
    )
    op.create_table(
        "loans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("application_id", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("firm_id", sa.String(length=32), nullable=False),
        sa.Column("grade", sa.String(length=1), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("annual_rate_bps", sa.Integer(), nullable=False),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outstanding_principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("disbursement_txn_id", sa.String(length=128), nullable=True),
        sa.Column("disbursed_on", sa.Date(), nullable=True),
        sa.Column("disbursed_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("defaulted_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["loan_applications.id"],
            name=op.f("fk_loans_application_id_loan_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_loans_bank_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["partners.id"], name=op.f("fk_loans_channel_id_partners")
        ),
        sa.ForeignKeyConstraint(["firm_id"], ["firms.id"], name=op.f("fk_loans_firm_id_firms")),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["loan_offers.id"], name=op.f("fk_loans_offer_id_loan_offers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
        sa.UniqueConstraint("application_id", name=op.f("uq_loans_application_id")),
        sa.UniqueConstraint(
            "bank_id", "disbursement_txn_id", name=op.f("uq_loans_bank_id_disbursement_txn_id")
        ),
        sa.UniqueConstraint("offer_id", name=op.f("uq_loans_offer_id")),
    )
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loans_bank_id"), ["bank_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_loans_firm_id"), ["firm_id"], unique=False)
        batch_op.create_index("ix_loans_status", ["status"], unique=False)

    op.create_table(
        "fund_claims",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("loan_id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("unpaid_principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("share_bps", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("recovered_fen", sa.BigInteger(), nullable=False),
        sa.Column("returned_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_fund_claims_bank_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_fund_claims_loan_id_loans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fund_claims")),
        sa.UniqueConstraint("loan_id", name=op.f("uq_fund_claims_loan_id")),
    )
    with op.batch_alter_table("fund_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fund_claims_bank_id"), ["bank_id"], unique=False)

    op.create_table(
        "loan_instalments",
        sa.Column("loan_id", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("interest_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_loan_instalments_loan_id_loans")
        ),
        sa.PrimaryKeyConstraint("loan_id", "n", name=op.f("pk_loan_instalments")),
    )
    with op.batch_alter_table("loan_instalments", schema=None) as batch_op:
        batch_op.create_index("ix_loan_instalments_due_date", ["due_date"], unique=False)

    op.create_table(
        "loan_repayments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("loan_id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("bank_txn_id", sa.String(length=128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("overdue_interest_fen", sa.BigInteger(), nullable=False),
        sa.Column("overdue_principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("current_interest_fen", sa.BigInteger(), nullable=False),
        sa.Column("current_principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("early_principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_share_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_loan_repayments_bank_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_loan_repayments_loan_id_loans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_repayments")),
        sa.UniqueConstraint(
            "bank_id", "bank_txn_id", name=op.f("uq_loan_repayments_bank_id_bank_txn_id")
        ),
    )
    with op.batch_alter_table("loan_repayments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loan_repayments_loan_id"), ["loan_id"], unique=False)

    op.create_table(
        "subsidies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("loan_id", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("interest_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bank_reference", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", models.core.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("instructed_at", models.core.tables.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["partners.id"], name=op.f("fk_subsidies_bank_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["partners.id"], name=op.f("fk_subsidies_channel_id_partners")
        ),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name=op.f("fk_subsidies_loan_id_loans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsidies")),
        sa.UniqueConstraint("loan_id", "month", name=op.f("uq_subsidies_loan_id_month")),
    )
    with op.batch_alter_table("subsidies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subsidies_channel_id"), ["channel_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subsidies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subsidies_channel_id"))

    op.drop_table("subsidies")
    with op.batch_alter_table("loan_repayments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loan_repayments_loan_id"))

    op.drop_table("loan_repayments")
    with op.batch_alter_table("loan_instalments", schema=None) as batch_op:
        batch_op.drop_index("ix_loan_instalments_due_date")

    op.drop_table("loan_instalments")
    with op.batch_alter_table("fund_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fund_claims_bank_id"))

    op.drop_table("fund_claims")
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index("ix_loans_status")
        batch_op.drop_index(batch_op.f("ix_loans_firm_id"))
        batch_op.drop_index(batch_op.f("ix_loans_bank_id"))

    op.drop_table("loans")
    op.drop_table("loan_offers")
    with op.batch_alter_table("application_banks", schema=None) as batch_op:
        batch_op.drop_index("ix_application_banks_bank_offered")

    op.drop_table("application_banks")
    with op.batch_alter_table("loan_applications", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_loan_applications_pending_firm",
            postgresql_where=sa.text("status IN ('profiling', 'open')"),
            sqlite_where=sa.text("status IN ('profiling', 'open')"),
        )
        batch_op.drop_index("ix_loan_applications_status_respond_by")
        batch_op.drop_index(batch_op.f("ix_loan_applications_firm_id"))
        batch_op.drop_index(batch_op.f("ix_loan_applications_channel_id"))

    op.drop_table("loan_applications")
    op.drop_table("loan_products")
    op.drop_table("fund_deposits")
    op.drop_table("firms")
