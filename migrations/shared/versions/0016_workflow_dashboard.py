"""a workspace's workflow defaults and dashboard (issue 22's customization profile): whether
every collection notice waits for a person's approval, and which dashboard widgets it shows in
what order (NULL: all of them, in the product's order)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 16:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workspace_settings",
        sa.Column(
            "notices_need_approval",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
    )
    op.add_column(
        "workspace_settings",
        sa.Column("dashboard_widgets", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("workspace_settings", "dashboard_widgets")
    op.drop_column("workspace_settings", "notices_need_approval")
