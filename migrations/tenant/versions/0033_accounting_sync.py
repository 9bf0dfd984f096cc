"""The accounting sync engine (issue 19)

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05 09:00:00

- sync_links: the external-id map, one link per record both ways, with the values both sides
  last agreed on and the books' own last-seen values.
- sync_states: per connection and entity, the change marker and the page a pass reached.
- sync_runs / sync_problems: runs with their stage, counts, heartbeat; the records skipped.
- sync_conflicts: fields both sides changed, for a person; one open per record.
- sync_matches: the first connection's review of customers to link or create.
- sync_reports: reconciliation reports.
- audit_log.source: what made a change when it was not a person at a page ("Xero sync").
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("remote_id", sa.String(length=80), nullable=False),
        sa.Column("label", sa.String(length=191), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=8), server_default="open", nullable=False),
        sa.Column("resolution", sa.String(length=8), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('duebook', 'books')",
            name=op.f("ck_sync_conflicts_resolution"),
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_sync_conflicts_status")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_sync_conflicts_connection_id_integration_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )
    op.create_index(
        op.f("ix_sync_conflicts_connection_id"), "sync_conflicts", ["connection_id"], unique=False
    )
    op.create_index(
        "uq_sync_conflicts_open",
        "sync_conflicts",
        ["connection_id", "entity", "local_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "sync_links",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("remote_id", sa.String(length=80), nullable=False),
        sa.Column("remote_version", sa.String(length=64), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("agreed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("books", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("seen_in_run", sa.BigInteger(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "entity IN ('contact', 'invoice', 'credit_note', 'payment')",
            name=op.f("ck_sync_links_entity"),
        ),
        sa.CheckConstraint("origin IN ('books', 'duebook')", name=op.f("ck_sync_links_origin")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_sync_links_connection_id_integration_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_links")),
        sa.UniqueConstraint("connection_id", "entity", "local_id", name="uq_sync_links_local"),
        sa.UniqueConstraint("connection_id", "entity", "remote_id", name="uq_sync_links_remote"),
    )
    op.create_table(
        "sync_matches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("remote_id", sa.String(length=80), nullable=False),
        sa.Column("remote_name", sa.String(length=191), nullable=False),
        sa.Column("remote_facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("applied", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "decision IN ('link', 'create', 'skip')", name=op.f("ck_sync_matches_decision")
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_sync_matches_connection_id_integration_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_matches")),
        sa.UniqueConstraint("connection_id", "remote_id", name="uq_sync_matches_remote"),
    )
    op.create_index(
        op.f("ix_sync_matches_connection_id"), "sync_matches", ["connection_id"], unique=False
    )
    op.create_table(
        "sync_reports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("months", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("differences", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("difference_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_sync_reports_connection_id_integration_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_reports")),
    )
    op.create_index(
        op.f("ix_sync_reports_connection_id"), "sync_reports", ["connection_id"], unique=False
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("full", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("read", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("skipped", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("conflicts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'waiting', 'review', 'done', 'failed')",
            name=op.f("ck_sync_runs_status"),
        ),
        sa.CheckConstraint(
            "trigger IN ('manual', 'schedule', 'webhook', 'full', 'review', 'connect')",
            name=op.f("ck_sync_runs_trigger"),
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_sync_runs_connection_id_integration_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(
        op.f("ix_sync_runs_connection_id"), "sync_runs", ["connection_id"], unique=False
    )
    op.create_index(
        "uq_sync_runs_active",
        "sync_runs",
        ["connection_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'running', 'waiting', 'review')"),
    )
    op.create_table(
        "sync_states",
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("marker", sa.Text(), nullable=True),
        sa.Column("pass_run_id", sa.BigInteger(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("pass_marker", sa.Text(), nullable=True),
        sa.Column("pass_full", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_sync_states_connection_id_integration_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "entity", name=op.f("pk_sync_states")),
    )
    op.create_table(
        "sync_problems",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("remote_id", sa.String(length=80), nullable=True),
        sa.Column("local_id", sa.BigInteger(), nullable=True),
        sa.Column("label", sa.String(length=191), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_sync_problems_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_problems")),
    )
    op.create_index(op.f("ix_sync_problems_run_id"), "sync_problems", ["run_id"], unique=False)
    op.add_column("audit_log", sa.Column("source", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "source")
    op.drop_index(op.f("ix_sync_problems_run_id"), table_name="sync_problems")
    op.drop_table("sync_problems")
    op.drop_table("sync_states")
    op.drop_index(
        "uq_sync_runs_active",
        table_name="sync_runs",
        postgresql_where=sa.text("status IN ('queued', 'running', 'waiting', 'review')"),
    )
    op.drop_index(op.f("ix_sync_runs_connection_id"), table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_index(op.f("ix_sync_reports_connection_id"), table_name="sync_reports")
    op.drop_table("sync_reports")
    op.drop_index(op.f("ix_sync_matches_connection_id"), table_name="sync_matches")
    op.drop_table("sync_matches")
    op.drop_table("sync_links")
    op.drop_index(
        "uq_sync_conflicts_open",
        table_name="sync_conflicts",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index(op.f("ix_sync_conflicts_connection_id"), table_name="sync_conflicts")
    op.drop_table("sync_conflicts")
