"""interest a notice claimed stays owed until paid, waived or written off; how it is rounded

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 01:40:00

collection_settings.interest_rounding: "each_rest" rounds each monthly rest's interest to the
paisa (what every tenant got so far, so the default), "at_end" rounds the total once.
payment_allocations.interest_amount: cash of a payment applied to an invoice's late-payment
interest (0 on every existing allocation). interest_settlements: interest a notice claimed that
was paid (through such an allocation), waived or written off, with the reason and the notice
whose claim it settles.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "collection_settings",
        sa.Column("interest_rounding", sa.String(16), server_default="each_rest", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_collection_settings_interest_rounding"),
        "collection_settings",
        "interest_rounding IN ('each_rest', 'at_end')",
    )
    op.add_column(
        "payment_allocations",
        sa.Column("interest_amount", sa.Numeric(18, 2), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_payment_allocations_interest_amount_not_negative"),
        "payment_allocations",
        "interest_amount >= 0",
    )
    op.create_table(
        "interest_settlements",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("allocation_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('paid', 'waived', 'written_off')", name=op.f("ck_interest_settlements_kind")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_interest_settlements_amount_positive")),
        sa.CheckConstraint(
            "length(btrim(reason)) > 0", name=op.f("ck_interest_settlements_reason")
        ),
        sa.CheckConstraint(
            "(kind = 'paid') = (allocation_id IS NOT NULL)",
            name=op.f("ck_interest_settlements_paid_by_allocation"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_interest_settlements_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_interest_settlements_invoice_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"],
            ["collection_notices.id"],
            name=op.f("fk_interest_settlements_notice_id_collection_notices"),
        ),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["payment_allocations.id"],
            name=op.f("fk_interest_settlements_allocation_id_payment_allocations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interest_settlements")),
    )
    op.create_index(
        op.f("ix_interest_settlements_client_id"), "interest_settlements", ["client_id"]
    )
    op.create_index(
        op.f("ix_interest_settlements_invoice_id"), "interest_settlements", ["invoice_id"]
    )


def downgrade() -> None:
    op.drop_table("interest_settlements")
    op.drop_constraint(
        op.f("ck_payment_allocations_interest_amount_not_negative"),
        "payment_allocations",
        type_="check",
    )
    op.drop_column("payment_allocations", "interest_amount")
    op.drop_constraint(
        op.f("ck_collection_settings_interest_rounding"), "collection_settings", type_="check"
    )
    op.drop_column("collection_settings", "interest_rounding")
