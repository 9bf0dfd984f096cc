"""Late-payment interest paid through the pay page (issue 18)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05 07:20:00

- gateway_checkout_invoices.interest: the part of the line's amount that pays the interest a
  notice claimed on the invoice (the rest pays what the invoice owes); never negative and never
  more than the line.
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "gateway_checkout_invoices",
        sa.Column(
            "interest", sa.Numeric(precision=18, scale=2), server_default="0", nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_gateway_checkout_invoices_interest_within_amount"),
        "gateway_checkout_invoices",
        "interest >= 0 AND interest <= amount",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_gateway_checkout_invoices_interest_within_amount"),
        "gateway_checkout_invoices",
        type_="check",
    )
    op.drop_column("gateway_checkout_invoices", "interest")
