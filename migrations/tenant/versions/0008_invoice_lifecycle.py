"""invoice lifecycle: sent, disputed, written off, credit notes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 09:28:00.000000
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
