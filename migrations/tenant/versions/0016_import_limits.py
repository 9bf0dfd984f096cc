"""client imports: a worker reads the file; one-time keys of the upload and start forms

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04 22:30:00

- client_imports.status may be "reading" (stored, a worker reads it) or "unreadable" (the
  worker refused it; `error` says why).
- client_imports.preview_rows: the first rows as the worker read them, for the preview.
- client_imports.upload_key (unique) and start_key: the one-time keys of the upload form and
  of the last start form that went through, so a double submit makes and starts one import.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STATUSES_BEFORE = "'uploaded', 'mapped', 'queued', 'running', 'done', 'failed'"
STATUSES_AFTER = f"'reading', 'unreadable', {STATUSES_BEFORE}"


def _statuses(statuses: str) -> None:
    op.drop_constraint(op.f("ck_client_imports_status"), "client_imports", type_="check")
    op.create_check_constraint(
        op.f("ck_client_imports_status"), "client_imports", f"status IN ({statuses})"
    )


def upgrade() -> None:
    _statuses(STATUSES_AFTER)
    op.add_column(
        "client_imports",
        sa.Column(
            "preview_rows",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
    )
    op.add_column("client_imports", sa.Column("upload_key", sa.String(length=64), nullable=True))
    op.add_column("client_imports", sa.Column("start_key", sa.String(length=64), nullable=True))
    op.create_unique_constraint(
        op.f("uq_client_imports_upload_key"), "client_imports", ["upload_key"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_client_imports_upload_key"), "client_imports", type_="unique")
    op.drop_column("client_imports", "start_key")
    op.drop_column("client_imports", "upload_key")
    op.drop_column("client_imports", "preview_rows")
    # Imports a worker was reading, or refused, are gone with their state.
    op.execute("DELETE FROM client_imports WHERE status IN ('reading', 'unreadable')")
    _statuses(STATUSES_BEFORE)
