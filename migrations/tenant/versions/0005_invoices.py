"""invoices and invoice lines

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=18, scale=2)


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=True),
        sa.Column("number", sa.String(length=16), nullable=True),
        sa.Column("series", sa.String(length=8), server_default="INV", nullable=False),
        sa.Column("fiscal_year", sa.String(length=9), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("supplier_gstin", sa.String(length=15), nullable=True),
        sa.Column("recipient_gstin", sa.String(length=15), nullable=True),
        sa.Column("place_of_supply", sa.String(length=2), nullable=True),
        sa.Column("tax_regime", sa.String(length=8), nullable=False),
        sa.Column("reverse_charge", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("lut_reference", sa.String(length=64), nullable=True),
        sa.Column("subtotal", MONEY, nullable=False),
        sa.Column("cgst", MONEY, nullable=False),
        sa.Column("sgst", MONEY, nullable=False),
        sa.Column("igst", MONEY, nullable=False),
        sa.Column("other_tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("amount_in_words", sa.String(length=400), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'issued', 'sent', 'partly_paid', 'paid', 'overdue', "
            "'disputed', 'void', 'written_off')",
            name=op.f("ck_invoices_status"),
        ),
        sa.CheckConstraint(
            "tax_regime IN ('intra', 'inter', 'export', 'au_gst', 'other')",
            name=op.f("ck_invoices_tax_regime"),
        ),
        sa.CheckConstraint(
            "(status <> 'draft' OR number IS NULL) AND "
            "(status IN ('draft', 'void') OR number IS NOT NULL)",
            name=op.f("ck_invoices_number_on_issue"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_invoices_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_invoices_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name="uq_invoices_number"),
    )
    op.create_index(op.f("ix_invoices_client_id"), "invoices", ["client_id"], unique=False)
    op.create_index(op.f("ix_invoices_project_id"), "invoices", ["project_id"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("milestone_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("hsn_sac", sa.String(length=8), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("taxable_value", MONEY, nullable=False),
        sa.Column("tax_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("cgst", MONEY, nullable=False),
        sa.Column("sgst", MONEY, nullable=False),
        sa.Column("igst", MONEY, nullable=False),
        sa.Column("other_tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["milestones.id"],
            name=op.f("fk_invoice_lines_milestone_id_milestones"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(
        op.f("ix_invoice_lines_invoice_id"), "invoice_lines", ["invoice_id"], unique=False
    )
    op.create_index(
        op.f("ix_invoice_lines_milestone_id"), "invoice_lines", ["milestone_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invoice_lines_milestone_id"), table_name="invoice_lines")
    op.drop_index(op.f("ix_invoice_lines_invoice_id"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index(op.f("ix_invoices_project_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_client_id"), table_name="invoices")
    op.drop_table("invoices")
