"""indexes for what the dashboard reads on every visit: cash by day received, broken promises
by date, notices by when they were sent

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 02:30:00

The dashboard sums the cash received this month and last (payments.received_on, the sums'
columns included so that no table row is read), counts the promises broken in the last 30
days (promises_to_pay.promised_on where status = 'broken') and a collector's overdue clients
with no notice sent lately (collection_notices.sent_at): without these each is a scan of the
table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_payments_received_on"),
        "payments",
        ["received_on"],
        unique=False,
        postgresql_include=["currency", "amount", "voided_at"],
    )
    op.create_index(
        "ix_promises_to_pay_broken",
        "promises_to_pay",
        ["promised_on"],
        unique=False,
        postgresql_where=sa.text("status = 'broken'"),
    )
    op.create_index(
        op.f("ix_collection_notices_sent_at"), "collection_notices", ["sent_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_collection_notices_sent_at"), table_name="collection_notices")
    op.drop_index("ix_promises_to_pay_broken", table_name="promises_to_pay")
    op.drop_index(op.f("ix_payments_received_on"), table_name="payments")
