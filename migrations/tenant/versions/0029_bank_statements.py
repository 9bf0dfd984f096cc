"""Bank statements: bank accounts (with their saved CSV column mapping), statement imports
and their lines, each line recorded once per account (unique fingerprint) and booking at
most one payment; the workspace's choice to apply sure matches by themselves (off)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "banking_settings",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "apply_sure_matches", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_banking_settings_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_banking_settings")),
    )
    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("account_number", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("column_mapping", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
        sa.UniqueConstraint("account_number", name=op.f("uq_bank_accounts_account_number")),
    )
    op.create_table(
        "statement_imports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("bank_account_id", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("file_format", sa.String(length=16), nullable=False),
        sa.Column("statement_account", sa.String(length=64), nullable=True),
        sa.Column("period_from", sa.Date(), nullable=True),
        sa.Column("period_to", sa.Date(), nullable=True),
        sa.Column("opening_balance", sa.Numeric(18, 2), nullable=True),
        sa.Column("closing_balance", sa.Numeric(18, 2), nullable=True),
        sa.Column("lines_read", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lines_added", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "bad_lines",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("uploaded_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_statement_imports_bank_account_id_bank_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_imports")),
    )
    op.create_index(
        op.f("ix_statement_imports_bank_account_id"), "statement_imports", ["bank_account_id"]
    )
    op.create_table(
        "statement_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("bank_account_id", sa.BigInteger(), nullable=False),
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("value_on", sa.Date(), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("direction", sa.String(length=6), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bank_reference", sa.String(length=255), nullable=True),
        sa.Column("narration", sa.Text(), server_default="", nullable=False),
        sa.Column("counterparty_name", sa.String(length=255), nullable=True),
        sa.Column("counterparty_account", sa.String(length=64), nullable=True),
        sa.Column("running_balance", sa.Numeric(18, 2), nullable=True),
        sa.Column(
            "transfer_references",
            postgresql.ARRAY(sa.String(length=40)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "narration_keys",
            postgresql.ARRAY(sa.String(length=16)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=True),
        sa.Column("client_id", sa.BigInteger(), nullable=True),
        sa.Column("confidence", sa.SmallInteger(), nullable=True),
        sa.Column("match_reason", sa.Text(), nullable=True),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_statement_lines_amount_positive")),
        sa.CheckConstraint(
            "direction IN ('credit', 'debit')", name=op.f("ck_statement_lines_direction")
        ),
        sa.CheckConstraint(
            "status IN ('debit', 'unmatched', 'suggested', 'applied', 'recorded', 'credited', "
            "'ignored')",
            name=op.f("ck_statement_lines_status"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_statement_lines_bank_account_id_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["statement_imports.id"],
            name=op.f("fk_statement_lines_import_id_statement_imports"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_statement_lines_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_statement_lines_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_statement_lines_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_lines")),
        sa.UniqueConstraint(
            "bank_account_id", "fingerprint", name="uq_statement_lines_fingerprint"
        ),
    )
    op.create_index("ix_statement_lines_import_id", "statement_lines", ["import_id", "id"])
    op.create_index(
        "ix_statement_lines_waiting",
        "statement_lines",
        ["booked_on", "id"],
        postgresql_where=sa.text("status IN ('unmatched', 'suggested')"),
    )
    op.create_index(
        "uq_statement_lines_payment_id",
        "statement_lines",
        ["payment_id"],
        unique=True,
        postgresql_where=sa.text("payment_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("statement_lines")
    op.drop_table("statement_imports")
    op.drop_table("bank_accounts")
    op.drop_table("banking_settings")
