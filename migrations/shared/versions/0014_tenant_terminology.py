"""a workspace's own words for client, project, milestone and notice (issue 22's terminology),
kept on its tenant row, which every request loads already: the pages pay no query for them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 15:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column(
            "terminology",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("tenants", "terminology")
