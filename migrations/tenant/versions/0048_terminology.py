"""terminology: the workspace's own words for client, project, milestone and notice (issue 22's
customization profile), one row per noun it changed

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-05 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terminology",
        sa.Column("noun", sa.String(length=16), nullable=False),
        sa.Column("singular", sa.String(length=30), nullable=False),
        sa.Column("plural", sa.String(length=30), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "noun IN ('client', 'project', 'milestone', 'notice')",
            name=op.f("ck_terminology_noun"),
        ),
        sa.PrimaryKeyConstraint("noun", name=op.f("pk_terminology")),
    )


def downgrade() -> None:
    op.drop_table("terminology")
