"""projects and milestones

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 08:06:42.018643
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("contract_value", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("payment_terms", sa.String(length=16), nullable=True),
        sa.Column("payment_days", sa.SmallInteger(), nullable=True),
        sa.Column("owner_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "requires_approval", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("auto_invoice", sa.String(length=8), server_default="off", nullable=False),
        sa.Column("template_key", sa.String(length=120), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "auto_invoice IN ('off', 'draft', 'issue')", name=op.f("ck_projects_auto_invoice")
        ),
        sa.CheckConstraint(
            "payment_terms IS NULL OR payment_terms IN ('net', 'mfi', 'custom', 'immediate')",
            name=op.f("ck_projects_payment_terms"),
        ),
        sa.CheckConstraint("contract_value > 0", name=op.f("ck_projects_contract_value")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_projects_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(op.f("ix_projects_client_id"), "projects", ["client_id"], unique=False)
    op.create_table(
        "milestones",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("percentage", sa.Numeric(precision=7, scale=4), nullable=True),
        sa.Column("due_rule", sa.String(length=24), nullable=False),
        sa.Column("due_days", sa.Integer(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("deliverables", sa.Text(), nullable=True),
        sa.Column("acceptance_date", sa.Date(), nullable=True),
        sa.Column("is_retention", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="planned", nullable=False),
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
        sa.CheckConstraint(
            "(due_rule = 'date') = (due_days IS NULL)", name=op.f("ck_milestones_due_days")
        ),
        sa.CheckConstraint(
            "due_rule IN ('date', 'days_after_start', 'days_after_previous')",
            name=op.f("ck_milestones_due_rule"),
        ),
        sa.CheckConstraint(
            "status IN ('planned', 'in_progress', 'completed', 'approved', 'invoiced', 'partly_paid', 'paid', 'cancelled')",
            name=op.f("ck_milestones_status"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_milestones_amount")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_milestones_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_milestones")),
    )
    op.create_index(
        "ix_milestones_project_position", "milestones", ["project_id", "position"], unique=False
    )
    op.create_table(
        "milestone_transitions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("milestone_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["milestones.id"],
            name=op.f("fk_milestone_transitions_milestone_id_milestones"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_milestone_transitions")),
    )
    op.create_index(
        op.f("ix_milestone_transitions_milestone_id"),
        "milestone_transitions",
        ["milestone_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_milestone_transitions_milestone_id"), table_name="milestone_transitions")
    op.drop_table("milestone_transitions")
    op.drop_index("ix_milestones_project_position", table_name="milestones")
    op.drop_table("milestones")
    op.drop_index(op.f("ix_projects_client_id"), table_name="projects")
    op.drop_table("projects")
