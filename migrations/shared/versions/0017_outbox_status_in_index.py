"""the outbox's per-workspace index carries each message's status

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 23:00:00

The Messages page counts its newest 10,000 messages by status on every view. With the status
only in the table, that read 10,000 table rows (bodies and payloads beside them) at 100,000
messages; with the status in ix_outbox_messages_tenant_created (INCLUDE), it is an index-only
scan. Status updates were already not HOT (the due index's predicate names the status), so
the wider index costs them nothing more.
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_outbox_messages_tenant_created", table_name="outbox_messages")
    op.create_index(
        "ix_outbox_messages_tenant_created",
        "outbox_messages",
        ["tenant_id", "created_at"],
        postgresql_include=["status"],
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_messages_tenant_created", table_name="outbox_messages")
    op.create_index(
        "ix_outbox_messages_tenant_created", "outbox_messages", ["tenant_id", "created_at"]
    )
