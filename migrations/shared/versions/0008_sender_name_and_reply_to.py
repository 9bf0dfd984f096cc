"""the workspace's sender name and reply-to address for its e-mail

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 02:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workspace_settings", sa.Column("sender_name", sa.String(100), nullable=True))
    op.add_column("workspace_settings", sa.Column("reply_to", sa.String(254), nullable=True))


def downgrade() -> None:
    op.drop_column("workspace_settings", "reply_to")
    op.drop_column("workspace_settings", "sender_name")
