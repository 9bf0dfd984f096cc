"""A workspace's message templates: per channel, purpose and language, with the state of
their approval at the provider."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
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

TEMPLATE_CHANNELS = ("email", "whatsapp", "sms")
# What a template is for: the product picks the tenant's template by channel, purpose and the
# contact's language (falling back to English).
TEMPLATE_PURPOSES = (
    "invoice",
    "notice_1",
    "notice_2",
    "notice_final",
    "notice_legal",
    "receipt",
    "campaign",
)
# WhatsApp templates are approved by Meta; the provider's state is mirrored here.
PROVIDER_STATUSES = ("pending", "approved", "rejected", "paused", "disabled")


class MessageTemplate(TenantModel):
    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), server_default="en")
    subject: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    # WhatsApp: the approved template's name at Meta and its approval state; the body above
    # mirrors its text, with variables in the order of its {{1}}, {{2}} ... parameters.
    provider_template_name: Mapped[str | None] = mapped_column(String(512))
    provider_status: Mapped[str | None] = mapped_column(String(16))
    provider_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SMS in India: the DLT template id the text was registered under, and the gateway's own
    # template id (MSG91 flow).
    dlt_template_id: Mapped[str | None] = mapped_column(String(32))
    gateway_template_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"channel IN ({sql_list(TEMPLATE_CHANNELS)})", name="channel"),
        CheckConstraint(f"purpose IN ({sql_list(TEMPLATE_PURPOSES)})", name="purpose"),
        CheckConstraint(
            f"provider_status IN ({sql_list(PROVIDER_STATUSES)})", name="provider_status"
        ),
        Index(
            "uq_message_templates_live_name",
            "channel",
            "language",
            text("lower(name)"),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )
