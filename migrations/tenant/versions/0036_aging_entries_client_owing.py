"""What each of a collector's clients owes, read from an index only (issue 17)

Revision ID: 0036
Revises: 0034
Create Date: 2026-12-05 09:20:00

The collector's queue adds up, for each of its clients, the open amount of every invoice that
owes (`invoicing.balance.owing_per_client`: in all, past due, the oldest due date). Read from
aging_entries through its (client_id, bucket) index, each entry was a visit to the table's
heap: 18 clients with 200 open invoices each took ~2 ms, the queue's costliest statement at
1M invoices. ix_aging_entries_client_owing holds every column the sums read, in the order
they group by, so the statement reads the index alone (an index-only scan, no sort).
"""

from alembic import op

revision = "0036"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_aging_entries_client_owing",
        "aging_entries",
        ["client_id", "currency", "due_date"],
        unique=False,
        postgresql_include=["amount"],
    )


def downgrade() -> None:
    op.drop_index("ix_aging_entries_client_owing", table_name="aging_entries")
