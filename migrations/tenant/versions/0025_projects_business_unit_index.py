"""An index of the business units in use, for the notices list's filter.

The list offered them by a DISTINCT over every project on each view (48 ms at 100,000
projects); with this partial index a loose index scan (notices.filter_choices) finds each unit
by one probe.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_projects_business_unit",
        "projects",
        ["business_unit"],
        postgresql_where=sa.text("business_unit IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_projects_business_unit", table_name="projects")
