"""invoice PDFs: where the rendered PDF of an issued invoice is stored, and when it was made

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 09:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("pdf_key", sa.String(length=255), nullable=True))
    op.add_column(
        "invoices", sa.Column("pdf_rendered_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("invoices", "pdf_rendered_at")
    op.drop_column("invoices", "pdf_key")
