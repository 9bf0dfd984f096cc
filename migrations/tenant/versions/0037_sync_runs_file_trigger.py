"""A sync run may read files a person uploaded (Tally's exports, issue 20)

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-05 12:10:00

Tally's books reach Duebook through the workspace's agent or, without one, as XML files
exported from Tally and uploaded; the run that reads an upload says so ("file").
"""

from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

BEFORE = "'manual', 'schedule', 'webhook', 'full', 'review', 'connect'"
AFTER = BEFORE + ", 'file'"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", type_="check")
    op.create_check_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", f"trigger IN ({AFTER})")


def downgrade() -> None:
    op.execute("UPDATE sync_runs SET trigger = 'manual' WHERE trigger = 'file'")
    op.drop_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", type_="check")
    op.create_check_constraint(op.f("ck_sync_runs_trigger"), "sync_runs", f"trigger IN ({BEFORE})")
