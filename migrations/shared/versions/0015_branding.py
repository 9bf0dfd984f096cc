"""a workspace's branding beyond its logo and colour (issue 22's customization profile): the
footer of the e-mail its clients get and the invoice PDF's layout choices, each defaulting to
what the PDF and the e-mail were before (A4, logo on the left, payment details printed, no
footer)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 16:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

CHECKS = {
    "pdf_paper_size": "pdf_paper_size IN ('A4', 'letter')",
    "pdf_logo_position": "pdf_logo_position IN ('left', 'right')",
}


def upgrade() -> None:
    op.add_column("workspace_settings", sa.Column("email_footer", sa.Text(), nullable=True))
    op.add_column(
        "workspace_settings",
        sa.Column("pdf_paper_size", sa.String(6), server_default="A4", nullable=False),
    )
    op.add_column(
        "workspace_settings",
        sa.Column("pdf_logo_position", sa.String(5), server_default="left", nullable=False),
    )
    op.add_column(
        "workspace_settings",
        sa.Column(
            "pdf_payment_details", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
    )
    op.add_column("workspace_settings", sa.Column("pdf_footer_note", sa.String(120), nullable=True))
    for name, condition in CHECKS.items():
        op.create_check_constraint(
            op.f(f"ck_workspace_settings_{name}"), "workspace_settings", condition
        )


def downgrade() -> None:
    for name in reversed(CHECKS):
        op.drop_constraint(op.f(f"ck_workspace_settings_{name}"), "workspace_settings")
    for column in (
        "pdf_footer_note",
        "pdf_payment_details",
        "pdf_logo_position",
        "pdf_paper_size",
        "email_footer",
    ):
        op.drop_column("workspace_settings", column)
