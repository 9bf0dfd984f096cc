from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, utcnow_column

KINDS = (
    "delivery_failed",
    "broken_promise",
    "new_lead",
    "payment_received",
    "dispute_opened",
    "sync_failed",
    "info",
)


class Notification(TenantModel):
    """Something a user of this workspace should look at. Not a business record: not audited."""

    __tablename__ = "notifications"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    # The same event notifies a user once (e.g. "delivery_failed:<message id>").
    dedupe_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = utcnow_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_notifications_user_unread",
            "user_id",
            "created_at",
            postgresql_where=text("read_at IS NULL"),
        ),
        Index(
            "uq_notifications_user_dedupe",
            "user_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("dedupe_key IS NOT NULL"),
        ),
    )
