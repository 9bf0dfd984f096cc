"""workspace settings on tenants: legal identity, tax ids, payment details, branding and
billing defaults

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = [
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
    sa.Column("approval_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("auto_invoice", sa.String(length=8), server_default="off", nullable=False),
]


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("tenants", column)
    op.create_check_constraint(
        op.f("ck_tenants_auto_invoice"), "tenants", "auto_invoice IN ('off', 'draft', 'issue')"
    )
    op.create_check_constraint(
        op.f("ck_tenants_brand_colour"), "tenants", "brand_colour ~ '^#[0-9a-f]{6}$'"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tenants_brand_colour"), "tenants")
    op.drop_constraint(op.f("ck_tenants_auto_invoice"), "tenants")
    for column in reversed(COLUMNS):
        op.drop_column("tenants", column.name)
