"""Campaigns: one message template sent to many clients' contacts."""

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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.message_templates.models import TEMPLATE_CHANNELS, MessageTemplate
from tenants.base import TenantModel, sql_list, utcnow_column

CAMPAIGN_STATUSES = ("draft", "scheduled", "running", "done", "cancelled")


class Campaign(TenantModel):
    """A message to many clients' contacts, picked by client filters, sent on a schedule inside
    the sending window, throttled; its progress and results are counted from the outbox."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(191))
    channel: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[int] = mapped_column(ForeignKey("tenant.message_templates.id"))
    filters: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"), default=dict)
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    throttle_per_minute: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    recipients_count: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    template: Mapped[MessageTemplate] = relationship()

    __table_args__ = (
        CheckConstraint(f"channel IN ({sql_list(TEMPLATE_CHANNELS)})", name="channel"),
        CheckConstraint(f"status IN ({sql_list(CAMPAIGN_STATUSES)})", name="status"),
        CheckConstraint("throttle_per_minute BETWEEN 1 AND 6000", name="throttle"),
    )
