"""report schedules and their runs (one per schedule and period)

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-05 13:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_schedules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column(
            "filters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("frequency", sa.String(length=8), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=True),
        sa.Column("month_day", sa.SmallInteger(), nullable=True),
        sa.Column("send_at", sa.Time(), nullable=False),
        sa.Column(
            "member_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "outside_addresses",
            postgresql.ARRAY(sa.String(length=254)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "active_since",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "report IN ('aging', 'dso', 'collections_performance', 'promises', 'cash_received')",
            name=op.f("ck_report_schedules_report"),
        ),
        sa.CheckConstraint(
            "format IN ('xlsx', 'csv', 'pdf')", name=op.f("ck_report_schedules_format")
        ),
        sa.CheckConstraint(
            "frequency IN ('daily', 'weekly', 'monthly')",
            name=op.f("ck_report_schedules_frequency"),
        ),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_report_schedules_weekday")),
        sa.CheckConstraint(
            "(frequency = 'weekly') = (weekday IS NOT NULL)",
            name=op.f("ck_report_schedules_weekly_day"),
        ),
        sa.CheckConstraint(
            "month_day BETWEEN 1 AND 31", name=op.f("ck_report_schedules_month_day")
        ),
        sa.CheckConstraint(
            "(frequency = 'monthly') = (month_day IS NOT NULL)",
            name=op.f("ck_report_schedules_monthly_day"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_schedules")),
    )
    op.create_table(
        "report_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("schedule_id", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=8), server_default="schedule", nullable=False),
        sa.Column("status", sa.String(length=8), server_default="queued", nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("file_key", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'failed')", name=op.f("ck_report_runs_status")
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'manual')", name=op.f("ck_report_runs_trigger")
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["report_schedules.id"],
            name=op.f("fk_report_runs_schedule_id_report_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_runs")),
        sa.UniqueConstraint("schedule_id", "period_start", name="uq_report_runs_period"),
    )
    op.create_index(op.f("ix_report_runs_schedule_id"), "report_runs", ["schedule_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_report_runs_schedule_id"), table_name="report_runs")
    op.drop_table("report_runs")
    op.drop_table("report_schedules")
