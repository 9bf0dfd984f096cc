"""An upload of open invoices from the old books, and the rows it could not take."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, utcnow_column

IMPORT_STATUSES = (
    "reading",
    "unreadable",
    "uploaded",
    "mapped",
    "queued",
    "running",
    "done",
    "failed",
)


class OpeningBalanceImport(TenantModel):
    """One file of open invoices: its column mapping, progress and outcome. Its lifecycle is
    the client import's (reading -> uploaded -> mapped -> queued -> running -> done/failed)."""

    __tablename__ = "opening_balance_imports"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="reading")
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(8))
    headers: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")
    mapping: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    preview_rows: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")
    upload_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    total_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    processed_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    inserted_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Rows whose invoice an earlier import already brought in: left as they are.
    already_imported_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    clients_created: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('reading', 'unreadable', 'uploaded', 'mapped', 'queued', 'running', "
            "'done', 'failed')",
            name="status",
        ),
    )


class OpeningBalanceImportError(TenantModel):
    """A row the import left out (or found already imported), with its line in the file."""

    __tablename__ = "opening_balance_import_errors"
    __audited__ = False  # part of an import's outcome, not a user's change

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.opening_balance_imports.id", ondelete="CASCADE"), index=True
    )
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
