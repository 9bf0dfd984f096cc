"""notices: status "failed"; visits: a position is optional, the manager's verification note

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 10:00:00

- collection_notices.status may be "failed" (its message failed, bounced, died or was not sent).
- collection_activities: a visit may have no position (it is flagged for a manager); a position
  is both coordinates or none, and only a visit has one.
- collection_activities.verification_note: the manager's confirm/reject note, which until now
  was appended to the visit's note as "Confirmed by a manager: ..." - moved out of it here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

STATUSES_BEFORE = (
    "'draft', 'approved', 'queued', 'sent', 'delivered', 'read', 'responded', "
    "'escalated', 'closed', 'cancelled'"
)
STATUSES_AFTER = (
    "'draft', 'approved', 'queued', 'sent', 'delivered', 'read', 'failed', "
    "'responded', 'escalated', 'closed', 'cancelled'"
)
POSITION_BEFORE = "kind <> 'visit' OR (latitude IS NOT NULL AND longitude IS NOT NULL)"
POSITION_AFTER = "(latitude IS NULL) = (longitude IS NULL) AND (kind = 'visit' OR latitude IS NULL)"
# How verify_visit wrote the manager's note into the visit's note (after a blank line, or alone).
APPENDED = "(?:^|\n\n)(?:Confirmed|Rejected) by a manager: "


def upgrade() -> None:
    op.drop_constraint(op.f("ck_collection_notices_status"), "collection_notices", type_="check")
    op.create_check_constraint(
        op.f("ck_collection_notices_status"), "collection_notices", f"status IN ({STATUSES_AFTER})"
    )
    op.drop_constraint(
        op.f("ck_collection_activities_visit_position"), "collection_activities", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_collection_activities_visit_position"), "collection_activities", POSITION_AFTER
    )
    op.add_column("collection_activities", sa.Column("verification_note", sa.Text(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE collection_activities"
            " SET verification_note = substring(note FROM :note_part),"
            "     note = nullif(regexp_replace(note, :appended_part, ''), '')"
            " WHERE verification IN ('confirmed', 'rejected') AND note ~ :appended"
        ).bindparams(
            note_part=APPENDED + "(.*)$",  # substring() returns the one capturing group
            appended_part=APPENDED + ".*$",
            appended=APPENDED,
        )
    )


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE collection_activities"
            " SET note = concat_ws(E'\\n\\n', note, CASE verification WHEN 'confirmed'"
            " THEN 'Confirmed' ELSE 'Rejected' END || ' by a manager: ' || verification_note)"
            " WHERE verification_note IS NOT NULL"
        )
    )
    op.drop_column("collection_activities", "verification_note")
    op.drop_constraint(
        op.f("ck_collection_activities_visit_position"), "collection_activities", type_="check"
    )
    # Visits logged without a position cannot be given one: the old rule holds for new rows.
    op.execute(
        "ALTER TABLE collection_activities ADD CONSTRAINT ck_collection_activities_visit_position"
        f" CHECK ({POSITION_BEFORE}) NOT VALID"
    )
    # The message of a failed notice keeps saying so; the notice goes back to "queued".
    op.execute("UPDATE collection_notices SET status = 'queued' WHERE status = 'failed'")
    op.drop_constraint(op.f("ck_collection_notices_status"), "collection_notices", type_="check")
    op.create_check_constraint(
        op.f("ck_collection_notices_status"), "collection_notices", f"status IN ({STATUSES_BEFORE})"
    )
