"""opening balances: open invoices of the old books imported from a file

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 02:40:00

- opening_balance_imports, opening_balance_import_errors: an upload of open invoices and the
  rows it left out (app/payments/opening/), as client_imports and client_import_errors.
- invoices.opening_import_id: the import that brought an invoice in (its series is OPENING).
- payments.opening_import_id: the import that recorded what was already paid of one.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "opening_balance_imports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="reading", nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("file_format", sa.String(length=8), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column(
            "mapping", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "preview_rows",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("upload_key", sa.String(length=64), nullable=True),
        sa.Column("total_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("processed_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("inserted_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "already_imported_rows", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("failed_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("clients_created", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('reading', 'unreadable', 'uploaded', 'mapped', 'queued', 'running', "
            "'done', 'failed')",
            name=op.f("ck_opening_balance_imports_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opening_balance_imports")),
        sa.UniqueConstraint("upload_key", name=op.f("uq_opening_balance_imports_upload_key")),
    )
    op.create_table(
        "opening_balance_import_errors",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["opening_balance_imports.id"],
            name=op.f("fk_opening_balance_import_errors_import_id_opening_balance_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opening_balance_import_errors")),
    )
    op.create_index(
        op.f("ix_opening_balance_import_errors_import_id"),
        "opening_balance_import_errors",
        ["import_id"],
    )
    for table in ("invoices", "payments"):
        op.add_column(table, sa.Column("opening_import_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_opening_import_id_opening_balance_imports"),
            table,
            "opening_balance_imports",
            ["opening_import_id"],
            ["id"],
        )


def downgrade() -> None:
    for table in ("payments", "invoices"):
        op.drop_constraint(
            op.f(f"fk_{table}_opening_import_id_opening_balance_imports"), table, type_="foreignkey"
        )
        op.drop_column(table, "opening_import_id")
    op.drop_index(
        op.f("ix_opening_balance_import_errors_import_id"),
        table_name="opening_balance_import_errors",
    )
    op.drop_table("opening_balance_import_errors")
    op.drop_table("opening_balance_imports")
