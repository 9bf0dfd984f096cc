"""secrets out of sight: one-time links sealed in the outbox (erased once sent), sign-ups
waiting for their e-mail address to be confirmed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "outbox_messages",
        sa.Column("carries_secret", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("outbox_messages", sa.Column("sealed_secret", sa.Text(), nullable=True))
    op.create_table(
        "pending_signups",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=191), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("organisation", sa.String(length=191), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_signups")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pending_signups_token_hash")),
    )
    op.create_index(op.f("ix_pending_signups_expires_at"), "pending_signups", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_signups_expires_at"), table_name="pending_signups")
    op.drop_table("pending_signups")
    op.drop_column("outbox_messages", "sealed_secret")
    op.drop_column("outbox_messages", "carries_secret")
