"""a client can be archived: kept in the books, no longer chased

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 02:00:00

clients.archived_at: when the client was archived (app/clients/services.py: archive_client).
An archived client's invoices stay in the aging and can still be paid, but the daily run does
not chase it and its notices were closed. Every existing client is not archived.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("archived_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("clients", "archived_at")
