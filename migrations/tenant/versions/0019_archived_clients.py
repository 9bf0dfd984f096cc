"""a client can be archived: kept in the books, no longer chased, its notices closed

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 02:00:00

clients.archived_at: when the client was archived (app/clients/services.py: archive_client).
An archived client's invoices stay in the aging and can still be paid, but the daily run does
not chase it and its notices were closed. Every existing client is not archived.
collection_notices.close_reason may be "client_archived": the notices archiving closed (closed,
not cancelled, so the interest a notice that went out claimed stays owed).
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


REASONS = "'paid', 'cancelled', 'written_off', 'void'"


def upgrade() -> None:
    op.add_column("clients", sa.Column("archived_at", sa.DateTime(timezone=True)))
    _close_reasons(f"{REASONS}, 'client_archived'")


def downgrade() -> None:
    # A notice closed by archiving reads as cancelled under the older reasons.
    op.execute(
        "UPDATE collection_notices SET close_reason = 'cancelled', status = 'cancelled' "
        "WHERE close_reason = 'client_archived'"
    )
    _close_reasons(REASONS)
    op.drop_column("clients", "archived_at")


def _close_reasons(reasons: str) -> None:
    op.drop_constraint(
        op.f("ck_collection_notices_close_reason"), "collection_notices", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_collection_notices_close_reason"),
        "collection_notices",
        f"close_reason IN ({reasons})",
    )
