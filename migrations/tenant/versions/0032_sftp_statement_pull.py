"""Bank statements pulled from the bank's SFTP folder (issue 18)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05 07:40:00

- sftp_sources: a bank account's SFTP folder (one per account), its encrypted secrets, the
  host key the person confirmed and the last one the server presented, the last attempt's
  outcome.
- pulled_statement_files: each remote file seen once per account (name, size, mtime unique),
  its sha256 and what became of it.
- statement_imports.received_by: "upload" or "sftp".
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def _created(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column(
        "statement_imports",
        sa.Column("received_by", sa.String(length=8), server_default="upload", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_statement_imports_received_by"),
        "statement_imports",
        "received_by IN ('upload', 'sftp')",
    )
    op.create_table(
        "sftp_sources",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("bank_account_id", sa.BigInteger(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), server_default=sa.text("22"), nullable=False),
        sa.Column("username", sa.String(length=120), nullable=False),
        sa.Column("secrets_ciphertext", sa.Text(), nullable=True),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("file_pattern", sa.String(length=120), nullable=False),
        sa.Column("host_key_type", sa.String(length=40), nullable=True),
        sa.Column("host_key_fingerprint", sa.String(length=80), nullable=True),
        sa.Column("presented_key_type", sa.String(length=40), nullable=True),
        sa.Column("presented_key_fingerprint", sa.String(length=80), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_result", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _created("created_at"),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name=op.f("ck_sftp_sources_port_range")),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_sftp_sources_bank_account_id_bank_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sftp_sources")),
        sa.UniqueConstraint("bank_account_id", name=op.f("uq_sftp_sources_bank_account_id")),
    )
    op.create_table(
        "pulled_statement_files",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("bank_account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("import_id", sa.BigInteger(), nullable=True),
        _created("pulled_at"),
        sa.CheckConstraint(
            "outcome IN ('imported', 'duplicate', 'refused')",
            name=op.f("ck_pulled_statement_files_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_pulled_statement_files_bank_account_id_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["statement_imports.id"],
            name=op.f("fk_pulled_statement_files_import_id_statement_imports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pulled_statement_files")),
        sa.UniqueConstraint(
            "bank_account_id", "name", "size", "mtime", name="uq_pulled_statement_files_listing"
        ),
    )
    op.create_index(
        "ix_pulled_statement_files_sha256", "pulled_statement_files", ["bank_account_id", "sha256"]
    )
    op.create_index(
        "ix_pulled_statement_files_pulled_at",
        "pulled_statement_files",
        ["bank_account_id", "pulled_at"],
    )


def downgrade() -> None:
    op.drop_table("pulled_statement_files")
    op.drop_table("sftp_sources")
    op.drop_constraint(op.f("ck_statement_imports_received_by"), "statement_imports", type_="check")
    op.drop_column("statement_imports", "received_by")
