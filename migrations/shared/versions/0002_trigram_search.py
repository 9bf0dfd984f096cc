"""trigram search (pg_trgm) for search-as-you-type lists

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:30:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Database-wide, in public: every tenant schema's search indexes use its operator class.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
