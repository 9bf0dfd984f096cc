"""workspace settings in a table of their own, owned by app.settings: the tenants table keeps
the workspace's identity only

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def settings_columns() -> list[sa.Column]:
    """The settings columns as tenants had them (revisions 0004 and 0005); new objects on each
    call, as a Column belongs to the one table it is added to."""
    return [
        sa.Column("legal_name", sa.String(length=191), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("gstin", sa.String(length=15), nullable=True),
        sa.Column("pan", sa.String(length=10), nullable=True),
        sa.Column("abn", sa.String(length=11), nullable=True),
        sa.Column("tax_number", sa.String(length=32), nullable=True),
        sa.Column("lut_reference", sa.String(length=64), nullable=True),
        sa.Column("upi_vpa", sa.String(length=64), nullable=True),
        sa.Column("payment_instructions", sa.Text(), nullable=True),
        sa.Column("brand_colour", sa.String(length=7), server_default="#1f5f8b", nullable=False),
        sa.Column("logo_key", sa.String(length=255), nullable=True),
        sa.Column("invoice_number_format", sa.String(length=40), nullable=True),
        sa.Column(
            "approval_required", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("auto_invoice", sa.String(length=8), server_default="off", nullable=False),
        sa.Column("send_window_start", sa.Time(), server_default="09:00", nullable=False),
        sa.Column("send_window_end", sa.Time(), server_default="19:00", nullable=False),
        sa.Column(
            "send_on_business_days_only",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
        ),
    ]


NAMES = [column.name for column in settings_columns()]
CHECKS = {
    "auto_invoice": "auto_invoice IN ('off', 'draft', 'issue')",
    "brand_colour": "brand_colour ~ '^#[0-9a-f]{6}$'",
    "send_window": "send_window_start < send_window_end",
}


def upgrade() -> None:
    op.create_table(
        "workspace_settings",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        *settings_columns(),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *(
            sa.CheckConstraint(condition, name=op.f(f"ck_workspace_settings_{name}"))
            for name, condition in CHECKS.items()
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_workspace_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_workspace_settings")),
    )
    names = ", ".join(NAMES)
    op.execute(
        f"INSERT INTO workspace_settings (tenant_id, {names}) SELECT id, {names} FROM tenants"
    )
    for name in CHECKS:
        op.drop_constraint(op.f(f"ck_tenants_{name}"), "tenants")
    for name in reversed(NAMES):
        op.drop_column("tenants", name)


def downgrade() -> None:
    for column in settings_columns():
        op.add_column("tenants", column)
    assignments = ", ".join(f"{name} = s.{name}" for name in NAMES)
    op.execute(
        f"UPDATE tenants SET {assignments} FROM workspace_settings s WHERE s.tenant_id = tenants.id"
    )
    for name, condition in CHECKS.items():
        op.create_check_constraint(op.f(f"ck_tenants_{name}"), "tenants", condition)
    op.drop_table("workspace_settings")
