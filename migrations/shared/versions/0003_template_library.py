"""template library: global milestone-plan templates, loaded from app/library/data

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 08:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "library_templates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("industry", sa.String(length=40), nullable=False),
        sa.Column("complexity", sa.String(length=16), nullable=False),
        sa.Column("project_size", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("retired", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "complexity IN ('simple', 'standard', 'complex', 'enterprise')",
            name=op.f("ck_library_templates_complexity"),
        ),
        sa.CheckConstraint(
            "project_size IN ('small', 'medium', 'large')",
            name=op.f("ck_library_templates_project_size"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_library_templates_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_templates")),
        sa.UniqueConstraint("key", name=op.f("uq_library_templates_key")),
    )
    op.create_index(
        "ix_library_templates_browse",
        "library_templates",
        ["industry", "complexity", "project_size"],
        unique=False,
    )
    op.create_table(
        "library_template_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("percentage", sa.Numeric(precision=7, scale=4), nullable=False),
        sa.Column("due_rule", sa.String(length=24), nullable=False),
        sa.Column("due_days", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("deliverables", sa.Text(), server_default="", nullable=False),
        sa.Column("is_retention", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "due_rule IN ('on_start', 'days_after_start', 'days_after_previous')",
            name=op.f("ck_library_template_items_due_rule"),
        ),
        sa.CheckConstraint("due_days >= 0", name=op.f("ck_library_template_items_due_days")),
        sa.CheckConstraint(
            "percentage > 0 AND percentage <= 100",
            name=op.f("ck_library_template_items_percentage"),
        ),
        sa.CheckConstraint("position >= 1", name=op.f("ck_library_template_items_position")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["library_templates.id"],
            name=op.f("fk_library_template_items_template_id_library_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_template_items")),
        sa.UniqueConstraint(
            "template_id",
            "position",
            name=op.f("uq_library_template_items_template_id_position"),
        ),
    )
    # The templates themselves are data: `flask --app wsgi tenants migrate` loads them after
    # the shared history (and `flask --app wsgi library load` does it alone), so this
    # revision never depends on the models of a later day.


def downgrade() -> None:
    op.drop_table("library_template_items")
    op.drop_index("ix_library_templates_browse", table_name="library_templates")
    op.drop_table("library_templates")
