"""messaging: outbox rows for every channel (provider ids, status tracking, windows), provider
accounts that route webhooks to a tenant, inbound webhook events, tenant sending windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 12:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('pending', 'sending', 'sent', 'dead')"
NEW_STATUSES = (
    "status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'bounced', "
    "'suppressed', 'dead')"
)

OUTBOX_COLUMNS = [
    sa.Column("queue", sa.String(length=16), server_default="messages", nullable=False),
    sa.Column("windowed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("recipient_time_zone", sa.String(length=64), nullable=True),
    sa.Column("provider", sa.String(length=32), nullable=True),
    sa.Column("provider_message_id", sa.String(length=128), nullable=True),
    sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column("client_id", sa.BigInteger(), nullable=True),
    sa.Column("contact_id", sa.BigInteger(), nullable=True),
    sa.Column("campaign_id", sa.BigInteger(), nullable=True),
    sa.Column("created_by", sa.BigInteger(), nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
]

TENANT_COLUMNS = [
    # Bulk and collection messages go out only inside this window of the recipient's day.
    sa.Column("send_window_start", sa.Time(), server_default="09:00", nullable=False),
    sa.Column("send_window_end", sa.Time(), server_default="19:00", nullable=False),
    sa.Column(
        "send_on_business_days_only", sa.Boolean(), server_default=sa.text("true"), nullable=False
    ),
]


def upgrade() -> None:
    for column in OUTBOX_COLUMNS:
        op.add_column("outbox_messages", column)
    op.drop_constraint(op.f("ck_outbox_messages_status"), "outbox_messages")
    op.create_check_constraint(op.f("ck_outbox_messages_status"), "outbox_messages", NEW_STATUSES)
    op.create_check_constraint(
        op.f("ck_outbox_messages_queue"), "outbox_messages", "queue IN ('messages', 'bulk')"
    )
    op.create_index(
        "uq_outbox_messages_provider_message",
        "outbox_messages",
        ["provider", "provider_message_id"],
        unique=True,
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_messages_tenant_created", "outbox_messages", ["tenant_id", "created_at"]
    )
    op.create_index(
        "ix_outbox_messages_tenant_client",
        "outbox_messages",
        ["tenant_id", "client_id"],
        postgresql_where=sa.text("client_id IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_messages_tenant_campaign",
        "outbox_messages",
        ["tenant_id", "campaign_id"],
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
    )

    op.create_table(
        "provider_accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account_key", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_accounts")),
        sa.UniqueConstraint(
            "provider", "account_key", name=op.f("uq_provider_accounts_provider_account_key")
        ),
    )
    op.create_index(op.f("ix_provider_accounts_tenant_id"), "provider_accounts", ["tenant_id"])

    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint(
            "provider", "event_key", name=op.f("uq_webhook_events_provider_event_key")
        ),
    )
    op.create_index(
        "ix_webhook_events_unprocessed",
        "webhook_events",
        ["received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )

    for column in TENANT_COLUMNS:
        op.add_column("tenants", column)
    op.create_check_constraint(
        op.f("ck_tenants_send_window"), "tenants", "send_window_start < send_window_end"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tenants_send_window"), "tenants")
    for column in reversed(TENANT_COLUMNS):
        op.drop_column("tenants", column.name)
    op.drop_index("ix_webhook_events_unprocessed", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index(op.f("ix_provider_accounts_tenant_id"), table_name="provider_accounts")
    op.drop_table("provider_accounts")
    for name in (
        "ix_outbox_messages_tenant_campaign",
        "ix_outbox_messages_tenant_client",
        "ix_outbox_messages_tenant_created",
        "uq_outbox_messages_provider_message",
    ):
        op.drop_index(name, table_name="outbox_messages")
    op.drop_constraint(op.f("ck_outbox_messages_queue"), "outbox_messages")
    op.drop_constraint(op.f("ck_outbox_messages_status"), "outbox_messages")
    op.execute(
        "UPDATE outbox_messages SET status = 'sent' WHERE status IN "
        "('delivered', 'read', 'failed', 'bounced')"
    )
    op.execute("UPDATE outbox_messages SET status = 'dead' WHERE status = 'suppressed'")
    op.create_check_constraint(op.f("ck_outbox_messages_status"), "outbox_messages", OLD_STATUSES)
    for column in reversed(OUTBOX_COLUMNS):
        op.drop_column("outbox_messages", column.name)
