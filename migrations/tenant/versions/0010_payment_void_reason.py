"""payments: why a payment was voided (a bounced cheque, a reversed transfer, a mistake)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("void_reason", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "void_reason")
