"""The client timeline reads the domain events; a sync run may start because of one; the
invoices list can be scheduled

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-05 14:30:00

`client_timeline` files each domain event about a client under that client (the "timeline"
consumer fills it, from the first event on); a sync run started because Duebook recorded
something the books lack (an invoice issued, a payment) says so ("event"); a report schedule
may send the invoices list as a person filtered it ("invoices"); an event names its source
when it was not a person at a page (a sync, an API key), as the audit log does.
"""

import sqlalchemy as sa
from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None

BEFORE = "'manual', 'schedule', 'webhook', 'full', 'review', 'connect', 'file'"
AFTER = BEFORE + ", 'event'"
REPORTS_BEFORE = "'aging', 'dso', 'collections_performance', 'promises', 'cash_received'"
REPORTS_AFTER = REPORTS_BEFORE + ", 'invoices'"


def upgrade() -> None:
    op.add_column("domain_events", sa.Column("source", sa.String(length=64), nullable=True))
    op.create_table(
        "client_timeline",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["domain_events.id"],
            name=op.f("fk_client_timeline_event_id_domain_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_timeline_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_client_timeline")),
    )
    op.create_index("ix_client_timeline_client_event", "client_timeline", ["client_id", "event_id"])
    op.drop_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", type_="check")
    op.create_check_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", f"trigger IN ({AFTER})")
    op.drop_constraint(op.f("ck_report_schedules_report"), "report_schedules", type_="check")
    op.create_check_constraint(
        op.f("ck_report_schedules_report"), "report_schedules", f"report IN ({REPORTS_AFTER})"
    )


def downgrade() -> None:
    op.execute("DELETE FROM report_schedules WHERE report = 'invoices'")
    op.drop_constraint(op.f("ck_report_schedules_report"), "report_schedules", type_="check")
    op.create_check_constraint(
        op.f("ck_report_schedules_report"), "report_schedules", f"report IN ({REPORTS_BEFORE})"
    )
    op.execute("UPDATE sync_runs SET trigger = 'manual' WHERE trigger = 'event'")
    op.drop_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", type_="check")
    op.create_check_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", f"trigger IN ({BEFORE})")
    op.drop_index("ix_client_timeline_client_event", table_name="client_timeline")
    op.drop_table("client_timeline")
    op.drop_column("domain_events", "source")
