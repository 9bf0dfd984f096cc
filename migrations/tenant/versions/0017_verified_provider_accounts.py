"""integration connections: whether the provider confirmed the credentials own the account

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-04 22:30:00

integration_connections.verification: a connection that binds a provider account (a WhatsApp
number, a Twilio account, an MSG91 report URL) sends and receives only once a worker has
checked its credentials with the provider. Connections saved before this revision are
"legacy": they keep working until their next test (which verifies them or, if the provider
refuses the credentials, unbinds them) or until a workspace whose credentials verify takes
the account over. New connections start "pending"; SMTP connections need no verification.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

STATES = "'not_needed', 'pending', 'verified', 'refused', 'lost', 'legacy'"


def upgrade() -> None:
    op.add_column(
        "integration_connections",
        sa.Column("verification", sa.String(16), server_default="legacy", nullable=False),
    )
    # An SMTP server is not an account webhooks are routed by: nothing to verify.
    op.execute(
        "UPDATE integration_connections SET verification = 'not_needed' WHERE provider = 'smtp'"
    )
    op.alter_column("integration_connections", "verification", server_default="pending")
    op.create_check_constraint(
        op.f("ck_integration_connections_verification"),
        "integration_connections",
        f"verification IN ({STATES})",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_integration_connections_verification"), "integration_connections", type_="check"
    )
    op.drop_column("integration_connections", "verification")
