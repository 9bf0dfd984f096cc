"""How each person, or each role by default, hears of each kind of notification (issue 22's
notification preferences): the bell only, an e-mail at once, a daily e-mail, or not at all

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-05 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "notifications",
        sa.Column("digest_due", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index(
        "ix_notifications_digest_due",
        "notifications",
        ["user_id", "id"],
        postgresql_where=sa.text("digest_due"),
    )
    op.create_table(
        "notification_preferences",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("delivery", sa.String(length=8), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (role IS NULL)", name=op.f("ck_notification_preferences_whose")
        ),
        sa.CheckConstraint(
            "delivery IN ('app', 'email', 'digest', 'off')",
            name=op.f("ck_notification_preferences_delivery"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_preferences")),
    )
    op.create_index(
        "uq_notification_preferences_user_kind",
        "notification_preferences",
        ["user_id", "kind"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "uq_notification_preferences_role_kind",
        "notification_preferences",
        ["role", "kind"],
        unique=True,
        postgresql_where=sa.text("role IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_notification_preferences_role_kind", table_name="notification_preferences")
    op.drop_index("uq_notification_preferences_user_kind", table_name="notification_preferences")
    op.drop_table("notification_preferences")
    op.drop_index("ix_notifications_digest_due", table_name="notifications")
    op.drop_column("notifications", "digest_due")
