"""calendars: each entry's version, members' connected calendars and what was written there

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-05 12:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_entries",
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_calendar_entries")),
    )
    op.create_table(
        "calendar_connections",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="connected", nullable=False),
        sa.Column("calendar_id", sa.String(length=1024), nullable=True),
        sa.Column("calendar_name", sa.String(length=255), nullable=True),
        sa.Column("secrets_ciphertext", sa.Text(), nullable=True),
        sa.Column(
            "connected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "provider IN ('google_calendar', 'outlook_calendar')",
            name=op.f("ck_calendar_connections_provider"),
        ),
        sa.CheckConstraint(
            "status IN ('connected', 'needs_reconnect', 'disconnected')",
            name=op.f("ck_calendar_connections_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connections")),
    )
    op.create_index(op.f("ix_calendar_connections_user_id"), "calendar_connections", ["user_id"])
    op.create_index(
        "uq_calendar_connections_live",
        "calendar_connections",
        ["user_id", "provider"],
        unique=True,
        postgresql_where=sa.text("status <> 'disconnected'"),
    )
    op.create_table(
        "calendar_pushed_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("remote_id", sa.String(length=1024), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "pushed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_calendar_pushed_events_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_pushed_events")),
        sa.UniqueConstraint("connection_id", "uid", name="uq_calendar_pushed_uid"),
    )


def downgrade() -> None:
    op.drop_table("calendar_pushed_events")
    op.drop_index("uq_calendar_connections_live", table_name="calendar_connections")
    op.drop_index(op.f("ix_calendar_connections_user_id"), table_name="calendar_connections")
    op.drop_table("calendar_connections")
    op.drop_table("calendar_entries")
