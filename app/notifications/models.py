from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, sql_list, utcnow_column

KINDS = (
    "delivery_failed",
    "broken_promise",
    "new_lead",
    "payment_received",
    "dispute_opened",
    "sync_failed",
    "info",
)
# What each kind is about, as the preferences page asks it ("{A client}": the workspace's word,
# app.core.terminology).
KIND_LABELS = {
    "broken_promise": "{A client} breaks a promise to pay",
    "dispute_opened": "{A client} disputes an invoice",
    "new_lead": "A new lead comes in",
    "payment_received": "Money comes in by itself (an online payment, a bank match)",
    "delivery_failed": "A message you sent could not be delivered",
    "sync_failed": "A sync with the books fails",
    "info": "The workspace needs attention (an integration, a webhook endpoint turned off)",
}
# How a person hears of a kind: in the bell only (the default), with an e-mail at once, in a
# daily e-mail of what came (DIGEST_HOUR, the workspace's clock), or not at all.
DELIVERIES = {
    "app": "In Duebook only",
    "email": "In Duebook and by e-mail at once",
    "digest": "In Duebook and in a daily e-mail",
    "off": "Not at all",
}
DEFAULT_DELIVERY = "app"
DIGEST_HOUR = 8


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
    # Waiting for its user's daily e-mail (their preference for its kind was "digest").
    digest_due: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

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
        Index("ix_notifications_digest_due", "user_id", "id", postgresql_where=text("digest_due")),
    )


class NotificationPreference(TenantModel):
    """How a user, or by default every member of a role, hears of one kind of notification.
    A user's own choice wins over their role's; with neither, DEFAULT_DELIVERY."""

    __tablename__ = "notification_preferences"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    delivery: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = utcnow_column(onupdate=text("now()"))

    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (role IS NULL)", name="whose"),
        CheckConstraint(f"delivery IN ({sql_list(DELIVERIES)})", name="delivery"),
        Index(
            "uq_notification_preferences_user_kind",
            "user_id",
            "kind",
            unique=True,
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "uq_notification_preferences_role_kind",
            "role",
            "kind",
            unique=True,
            postgresql_where=text("role IS NOT NULL"),
        ),
    )
