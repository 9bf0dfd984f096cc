"""online payments through gateways (issue 18)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 06:40:00

- gateway_checkouts, gateway_checkout_invoices: a pay request sent to a gateway and the
  invoices (with amounts) it pays.
- gateway_events: webhooks received, unique per (provider, event id).
- gateway_payments: payments a gateway took, unique per (provider, payment id): applied once.
- gateway_refunds: refunds a gateway processed, unique per (provider, refund id).
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="received", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('received', 'applied', 'ignored', 'parked')",
            name=op.f("ck_gateway_events_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_events")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_gateway_events_provider_event_id")
        ),
    )
    op.create_table(
        "gateway_checkouts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("pay_link_id", sa.BigInteger(), nullable=True),
        sa.Column("provider_reference", sa.String(length=64), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'paid', 'failed')", name=op.f("ck_gateway_checkouts_status")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_gateway_checkouts_amount_positive")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_gateway_checkouts_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_checkouts")),
        sa.UniqueConstraint(
            "provider_reference", name=op.f("uq_gateway_checkouts_provider_reference")
        ),
    )
    op.create_index(
        op.f("ix_gateway_checkouts_client_id"), "gateway_checkouts", ["client_id"], unique=False
    )
    op.create_table(
        "gateway_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=64), nullable=False),
        sa.Column("checkout_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("fee", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("fee_tax", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column(
            "refunded", sa.Numeric(precision=18, scale=2), server_default="0", nullable=False
        ),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('captured', 'failed', 'refunded', 'partly_refunded')",
            name=op.f("ck_gateway_payments_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_gateway_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["checkout_id"],
            ["gateway_checkouts.id"],
            name=op.f("fk_gateway_payments_checkout_id_gateway_checkouts"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_gateway_payments_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_gateway_payments_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_payments")),
        sa.UniqueConstraint(
            "provider",
            "provider_payment_id",
            name=op.f("uq_gateway_payments_provider_provider_payment_id"),
        ),
    )
    op.create_index(
        op.f("ix_gateway_payments_checkout_id"), "gateway_payments", ["checkout_id"], unique=False
    )
    op.create_index(
        op.f("ix_gateway_payments_client_id"), "gateway_payments", ["client_id"], unique=False
    )
    op.create_index(
        op.f("ix_gateway_payments_payment_id"), "gateway_payments", ["payment_id"], unique=False
    )
    op.create_table(
        "gateway_checkout_invoices",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("checkout_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_gateway_checkout_invoices_amount_positive")),
        sa.ForeignKeyConstraint(
            ["checkout_id"],
            ["gateway_checkouts.id"],
            name=op.f("fk_gateway_checkout_invoices_checkout_id_gateway_checkouts"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_gateway_checkout_invoices_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_checkout_invoices")),
        sa.UniqueConstraint(
            "checkout_id",
            "invoice_id",
            name=op.f("uq_gateway_checkout_invoices_checkout_id_invoice_id"),
        ),
    )
    op.create_index(
        op.f("ix_gateway_checkout_invoices_checkout_id"),
        "gateway_checkout_invoices",
        ["checkout_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_gateway_checkout_invoices_invoice_id"),
        "gateway_checkout_invoices",
        ["invoice_id"],
        unique=False,
    )
    op.create_table(
        "gateway_refunds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_payment_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_gateway_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["gateway_payment_id"],
            ["gateway_payments.id"],
            name=op.f("fk_gateway_refunds_gateway_payment_id_gateway_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_refunds")),
        sa.UniqueConstraint(
            "provider",
            "provider_refund_id",
            name=op.f("uq_gateway_refunds_provider_provider_refund_id"),
        ),
    )
    op.create_index(
        op.f("ix_gateway_refunds_gateway_payment_id"),
        "gateway_refunds",
        ["gateway_payment_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_refunds_gateway_payment_id"), table_name="gateway_refunds")
    op.drop_table("gateway_refunds")
    op.drop_index(
        op.f("ix_gateway_checkout_invoices_invoice_id"), table_name="gateway_checkout_invoices"
    )
    op.drop_index(
        op.f("ix_gateway_checkout_invoices_checkout_id"), table_name="gateway_checkout_invoices"
    )
    op.drop_table("gateway_checkout_invoices")
    op.drop_index(op.f("ix_gateway_payments_payment_id"), table_name="gateway_payments")
    op.drop_index(op.f("ix_gateway_payments_client_id"), table_name="gateway_payments")
    op.drop_index(op.f("ix_gateway_payments_checkout_id"), table_name="gateway_payments")
    op.drop_table("gateway_payments")
    op.drop_index(op.f("ix_gateway_checkouts_client_id"), table_name="gateway_checkouts")
    op.drop_table("gateway_checkouts")
    op.drop_table("gateway_events")
