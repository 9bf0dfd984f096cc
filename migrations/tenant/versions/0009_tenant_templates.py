"""tenant plan templates: cloned from the library, versioned

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 09:29:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_templates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("industry", sa.String(length=40), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("source_key", sa.String(length=120), nullable=True),
        sa.Column("source_version", sa.Integer(), nullable=True),
        sa.Column("current_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "current_version >= 1", name=op.f("ck_tenant_templates_current_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_templates")),
    )
    op.create_table(
        "tenant_template_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by_user_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("number >= 1", name=op.f("ck_tenant_template_versions_number")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["tenant_templates.id"],
            name=op.f("fk_tenant_template_versions_template_id_tenant_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_template_versions")),
        sa.UniqueConstraint(
            "template_id", "number", name=op.f("uq_tenant_template_versions_template_id_number")
        ),
    )
    op.create_index(
        "ix_tenant_template_versions_one_draft",
        "tenant_template_versions",
        ["template_id"],
        unique=True,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "tenant_template_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("percentage", sa.Numeric(precision=7, scale=4), nullable=True),
        sa.Column("fixed_amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("due_rule", sa.String(length=24), nullable=False),
        sa.Column("due_days", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("deliverables", sa.Text(), server_default="", nullable=False),
        sa.Column("is_retention", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "(percentage IS NULL) <> (fixed_amount IS NULL)",
            name=op.f("ck_tenant_template_items_share"),
        ),
        sa.CheckConstraint(
            "percentage > 0 AND percentage <= 100", name=op.f("ck_tenant_template_items_percentage")
        ),
        sa.CheckConstraint("fixed_amount > 0", name=op.f("ck_tenant_template_items_fixed_amount")),
        sa.CheckConstraint(
            "due_rule IN ('on_start', 'days_after_start', 'days_after_previous')",
            name=op.f("ck_tenant_template_items_due_rule"),
        ),
        sa.CheckConstraint("due_days >= 0", name=op.f("ck_tenant_template_items_due_days")),
        sa.CheckConstraint("position >= 1", name=op.f("ck_tenant_template_items_position")),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["tenant_template_versions.id"],
            ondelete="CASCADE",
            name=op.f("fk_tenant_template_items_version_id_tenant_template_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_template_items")),
        sa.UniqueConstraint(
            "version_id",
            "position",
            deferrable=True,
            initially="IMMEDIATE",
            name=op.f("uq_tenant_template_items_version_id_position"),
        ),
    )
    op.add_column(
        "projects", sa.Column("tenant_template_version_id", sa.BigInteger(), nullable=True)
    )
    op.create_foreign_key(
        op.f("fk_projects_tenant_template_version_id_tenant_template_versions"),
        "projects",
        "tenant_template_versions",
        ["tenant_template_version_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_projects_tenant_template_version_id_tenant_template_versions"),
        "projects",
        type_="foreignkey",
    )
    op.drop_column("projects", "tenant_template_version_id")
    op.drop_table("tenant_template_items")
    op.drop_index("ix_tenant_template_versions_one_draft", table_name="tenant_template_versions")
    op.drop_table("tenant_template_versions")
    op.drop_table("tenant_templates")
