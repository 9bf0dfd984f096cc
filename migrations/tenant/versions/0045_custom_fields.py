"""custom fields: their definitions, and a custom_fields JSONB column (GIN-indexed) on clients,
contacts, projects, milestones, invoices, notices and payments

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-05 14:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None

TABLES = (
    "clients",
    "client_contacts",
    "projects",
    "milestones",
    "invoices",
    "collection_notices",
    "payments",
)


def upgrade() -> None:
    op.create_table(
        "custom_fields",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("field_type", sa.String(length=16), nullable=False),
        sa.Column("required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("default_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("help_text", sa.String(length=255), nullable=True),
        sa.Column(
            "validation",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("section", sa.String(length=60), nullable=True),
        sa.Column(
            "choices",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("in_lists", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "print_on_invoice", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "entity IN ('clients', 'contacts', 'projects', 'milestones', 'invoices', "
            "'notices', 'payments')",
            name=op.f("ck_custom_fields_entity"),
        ),
        sa.CheckConstraint(
            "field_type IN ('text', 'long_text', 'number', 'money', 'date', 'yes_no', "
            "'choice', 'choices', 'user', 'url', 'email', 'phone')",
            name=op.f("ck_custom_fields_field_type"),
        ),
        sa.CheckConstraint("key ~ '^[a-z][a-z0-9_]{0,39}$'", name=op.f("ck_custom_fields_key")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_fields")),
        sa.UniqueConstraint("entity", "key", name=op.f("uq_custom_fields_entity_key")),
    )
    op.create_index(
        "ix_custom_fields_entity_position", "custom_fields", ["entity", "position"], unique=False
    )
    for table in TABLES:
        # A constant default: PostgreSQL adds the column without rewriting the table.
        op.add_column(
            table,
            sa.Column(
                "custom_fields",
                postgresql.JSONB(astext_type=sa.Text()),
                server_default=sa.text("'{}'::jsonb"),
                nullable=False,
            ),
        )
        op.create_index(
            f"ix_{table}_custom_fields",
            table,
            ["custom_fields"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"custom_fields": "jsonb_path_ops"},
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_custom_fields", table_name=table)
        op.drop_column(table, "custom_fields")
    op.drop_index("ix_custom_fields_entity_position", table_name="custom_fields")
    op.drop_table("custom_fields")
