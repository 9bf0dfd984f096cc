"""invoice numbering: one counter per series and financial year

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 08:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_number_sequences",
        sa.Column("series", sa.String(length=8), nullable=False),
        sa.Column("fiscal_year", sa.String(length=9), nullable=False),
        sa.Column("next_number", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.CheckConstraint(
            "next_number >= 1", name=op.f("ck_invoice_number_sequences_next_number")
        ),
        sa.PrimaryKeyConstraint("series", "fiscal_year", name=op.f("pk_invoice_number_sequences")),
    )


def downgrade() -> None:
    op.drop_table("invoice_number_sequences")
