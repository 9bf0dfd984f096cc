"""invoice lifecycle: sent, disputed, written off, credit notes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 09:28:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=18, scale=2)
TAX_COLUMNS = ("subtotal", "cgst", "sgst", "igst", "other_tax", "total")


def upgrade() -> None:
    op.add_column("invoices", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("invoices", sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("invoices", sa.Column("dispute_reason", sa.Text(), nullable=True))
    op.add_column(
        "invoices", sa.Column("written_off_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("invoices", sa.Column("written_off_amount", MONEY, nullable=True))
    op.add_column("invoices", sa.Column("write_off_reason", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_invoices_written_off"),
        "invoices",
        "(status <> 'written_off') OR (written_off_amount IS NOT NULL)",
    )
    op.create_index(
        "ix_invoices_list",
        "invoices",
        [sa.literal_column("issue_date DESC NULLS FIRST"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index("ix_invoices_status_due", "invoices", ["status", "due_date"], unique=False)
    op.create_index(
        "ix_invoices_number_search",
        "invoices",
        [sa.literal_column("lower(number) gin_trgm_ops")],
        unique=False,
        postgresql_using="gin",
    )

    op.create_table(
        "credit_notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("series", sa.String(length=8), nullable=False),
        sa.Column("fiscal_year", sa.String(length=9), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *(sa.Column(name, MONEY, nullable=False) for name in TAX_COLUMNS),
        sa.Column("amount_in_words", sa.String(length=400), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("total > 0", name=op.f("ck_credit_notes_total_positive")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_credit_notes_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("number", name="uq_credit_notes_number"),
    )
    op.create_index(op.f("ix_credit_notes_client_id"), "credit_notes", ["client_id"])
    op.create_index(op.f("ix_credit_notes_invoice_id"), "credit_notes", ["invoice_id"])
    op.create_table(
        "credit_note_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("credit_note_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_line_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("hsn_sac", sa.String(length=8), nullable=True),
        sa.Column("tax_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("taxable_value", MONEY, nullable=False),
        *(sa.Column(name, MONEY, nullable=False) for name in TAX_COLUMNS[1:]),
        sa.ForeignKeyConstraint(
            ["credit_note_id"],
            ["credit_notes.id"],
            name=op.f("fk_credit_note_lines_credit_note_id_credit_notes"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_line_id"],
            ["invoice_lines.id"],
            name=op.f("fk_credit_note_lines_invoice_line_id_invoice_lines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note_lines")),
    )
    op.create_index(
        op.f("ix_credit_note_lines_credit_note_id"), "credit_note_lines", ["credit_note_id"]
    )


def downgrade() -> None:
    op.drop_table("credit_note_lines")
    op.drop_table("credit_notes")
    op.drop_index("ix_invoices_number_search", table_name="invoices")
    op.drop_index("ix_invoices_status_due", table_name="invoices")
    op.drop_index("ix_invoices_list", table_name="invoices")
    op.drop_constraint(op.f("ck_invoices_written_off"), "invoices", type_="check")
    for column in (
        "write_off_reason",
        "written_off_amount",
        "written_off_at",
        "dispute_reason",
        "disputed_at",
        "sent_at",
    ):
        op.drop_column("invoices", column)
