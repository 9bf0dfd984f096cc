"""search as you type finds clients and invoices by their custom values (a PO number, a site
code): the clients' search text takes them in, and invoices get a trigram index of their own

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-05 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None

# As app.custom_fields.models.CUSTOM_VALUES_TEXT and app.clients.models.SEARCH_EXPRESSION were
# when this revision was written (a migration keeps its own copy: the code moves on).
CUSTOM_VALUES = "coalesce(jsonb_path_query_array(custom_fields, '$.*')::text, '')"
CLIENT_TEXT = (
    "lower(full_name || ' ' || short_name || ' ' || coalesce(gstin, '') || ' ' "
    "|| coalesce(external_id, '') || ' ' || coalesce(city, ''){extra})"
)


def _client_search(extra: str) -> None:
    op.drop_index("ix_clients_search", table_name="clients")
    op.create_index(
        "ix_clients_search",
        "clients",
        [sa.literal_column(CLIENT_TEXT.format(extra=extra) + " gin_trgm_ops")],
        unique=False,
        postgresql_using="gin",
        postgresql_with={"gin_pending_list_limit": 256},
    )


def upgrade() -> None:
    _client_search(f" || ' ' || {CUSTOM_VALUES}")
    op.create_index(
        "ix_invoices_custom_search",
        "invoices",
        [sa.literal_column(f"lower({CUSTOM_VALUES}) gin_trgm_ops")],
        unique=False,
        postgresql_using="gin",
        postgresql_with={"gin_pending_list_limit": 256},
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_custom_search", table_name="invoices")
    _client_search("")
