"""Domain events and their consumers' positions (issue 21)

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-05 12:00:00

- domain_events: what happened, written in the transaction of the change, with the writing
  transaction's id (pg_current_xact_id) so that consumers read in commit-safe order.
- event_consumers: each consumer's position, (transaction id, event id).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "txid",
            sa.BigInteger(),
            server_default=sa.text("pg_current_xact_id()::text::bigint"),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domain_events")),
    )
    op.create_index("ix_domain_events_txid_id", "domain_events", ["txid", "id"])
    op.create_index(
        "ix_domain_events_subject", "domain_events", ["subject_type", "subject_id", "id"]
    )
    op.create_index("ix_domain_events_type_id", "domain_events", ["type", "id"])
    op.create_table(
        "event_consumers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("txid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("event_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_consumers")),
    )


def downgrade() -> None:
    op.drop_table("event_consumers")
    op.drop_index("ix_domain_events_type_id", table_name="domain_events")
    op.drop_index("ix_domain_events_subject", table_name="domain_events")
    op.drop_index("ix_domain_events_txid_id", table_name="domain_events")
    op.drop_table("domain_events")
