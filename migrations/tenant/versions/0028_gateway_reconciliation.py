"""Stripe disputes and the daily gateway reconciliation (issue 18)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 07:30:00

- gateway_payments.status may be "disputed" (the payer's bank took a card payment back).
- gateway_checkouts.provider_reference holds Stripe's ids, up to 255 characters (a Checkout
  Session's is 66).
- gateway_reconciliation_runs: one daily comparison per gateway of what it reports with what
  its webhooks recorded.
- gateway_reconciliation_items: each difference, unique per (provider, kind, reference), so
  running again adds nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

STATUSES_BEFORE = "'captured', 'failed', 'refunded', 'partly_refunded'"
STATUSES_AFTER = "'captured', 'failed', 'refunded', 'partly_refunded', 'disputed'"


def upgrade() -> None:
    op.alter_column(
        "gateway_checkouts",
        "provider_reference",
        type_=sa.String(length=255),
        existing_type=sa.String(length=64),
        existing_nullable=True,
    )
    op.drop_constraint(op.f("ck_gateway_payments_status"), "gateway_payments", type_="check")
    op.create_check_constraint(
        op.f("ck_gateway_payments_status"), "gateway_payments", f"status IN ({STATUSES_AFTER})"
    )
    op.create_table(
        "gateway_reconciliation_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("applied", sa.Integer(), server_default="0", nullable=False),
        sa.Column("differences", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('done', 'failed')", name=op.f("ck_gateway_reconciliation_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_reconciliation_runs")),
    )
    op.create_table(
        "gateway_reconciliation_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("our_amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("reported", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("settled_by", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('missed_event', 'not_at_gateway', 'amount', 'status')",
            name=op.f("ck_gateway_reconciliation_items_kind"),
        ),
        sa.CheckConstraint(
            "state IN ('open', 'applied', 'explained')",
            name=op.f("ck_gateway_reconciliation_items_state"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["gateway_reconciliation_runs.id"],
            name=op.f("fk_gateway_reconciliation_items_run_id_gateway_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_reconciliation_items")),
        sa.UniqueConstraint(
            "provider",
            "kind",
            "reference",
            name=op.f("uq_gateway_reconciliation_items_provider_kind_reference"),
        ),
    )
    op.create_index(
        op.f("ix_gateway_reconciliation_items_run_id"),
        "gateway_reconciliation_items",
        ["run_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_gateway_reconciliation_items_run_id"), table_name="gateway_reconciliation_items"
    )
    op.drop_table("gateway_reconciliation_items")
    op.drop_table("gateway_reconciliation_runs")
    # Before disputes, money taken back was a refund: the nearest status the older code knows.
    op.execute("UPDATE gateway_payments SET status = 'refunded' WHERE status = 'disputed'")
    op.drop_constraint(op.f("ck_gateway_payments_status"), "gateway_payments", type_="check")
    op.create_check_constraint(
        op.f("ck_gateway_payments_status"), "gateway_payments", f"status IN ({STATUSES_BEFORE})"
    )
    op.alter_column(
        "gateway_checkouts",
        "provider_reference",
        type_=sa.String(length=64),
        existing_type=sa.String(length=255),
        existing_nullable=True,
    )
