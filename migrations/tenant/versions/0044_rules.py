"""business rules: rules, their versions, their runs and the events their runs caused

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-05 14:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("overdue_days", sa.SmallInteger(), nullable=True),
        sa.Column("conditions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("stop_after", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("entity IN ('clients', 'invoices')", name=op.f("ck_rules_entity")),
        sa.CheckConstraint(
            "(trigger = 'overdue') = (overdue_days IS NOT NULL)", name=op.f("ck_rules_overdue_days")
        ),
        sa.CheckConstraint(
            "overdue_days BETWEEN 0 AND 3650", name=op.f("ck_rules_overdue_days_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
    )
    op.create_index(
        "ix_rules_trigger",
        "rules",
        ["trigger", "priority", "id"],
        unique=False,
        postgresql_where=sa.text("enabled"),
    )
    op.create_table(
        "rule_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("overdue_days", sa.SmallInteger(), nullable=True),
        sa.Column("conditions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("stop_after", sa.Boolean(), nullable=False),
        sa.Column("change", sa.String(length=255), nullable=False),
        sa.Column("changed_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rules.id"],
            name=op.f("fk_rule_versions_rule_id_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_versions")),
        sa.UniqueConstraint("rule_id", "version", name=op.f("uq_rule_versions_rule_id_version")),
    )
    op.create_table(
        "rule_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("run_on", sa.Date(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("matched", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("changed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "failures",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["rules.id"], name=op.f("fk_rule_runs_rule_id_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_runs")),
    )
    op.create_index(
        "uq_rule_runs_rule_day",
        "rule_runs",
        ["rule_id", "run_on"],
        unique=True,
        postgresql_where=sa.text("run_on IS NOT NULL"),
    )
    op.create_index("ix_rule_runs_rule", "rule_runs", ["rule_id", "id"], unique=False)
    op.create_table(
        "rule_caused_events",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "rule_id", name=op.f("pk_rule_caused_events")),
    )


def downgrade() -> None:
    op.drop_table("rule_caused_events")
    op.drop_index("ix_rule_runs_rule", table_name="rule_runs")
    op.drop_index(
        "uq_rule_runs_rule_day",
        table_name="rule_runs",
        postgresql_where=sa.text("run_on IS NOT NULL"),
    )
    op.drop_table("rule_runs")
    op.drop_table("rule_versions")
    op.drop_index("ix_rules_trigger", table_name="rules", postgresql_where=sa.text("enabled"))
    op.drop_table("rules")
