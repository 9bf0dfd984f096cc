"""client_required_fields: the custom fields of invoices a client's invoices must fill in (set
by a rule's "require an invoice field" action)

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-05 14:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0047"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_required_fields",
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("field_key", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_required_fields_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "field_key", name=op.f("pk_client_required_fields")),
    )


def downgrade() -> None:
    op.drop_table("client_required_fields")
