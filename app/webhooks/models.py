from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, utcnow_column

ENDPOINT_STATUSES = ("enabled", "disabled")
# pending: to be sent (now or at its next attempt); delivered: a 2xx came back; failed: every
# attempt of the schedule failed (a replay makes it pending again).
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookEndpoint(TenantModel):
    """A URL of the workspace's that hears about chosen event types."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(255), server_default="")
    # None: every event type; otherwise the chosen type names.
    event_types: Mapped[list[str] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="enabled")
    # Why it is disabled ("410 Gone", "every attempt failed for 24 hours"), shown on its page.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # {"current": "whsec_...", "previous": "whsec_..." | absent, "previous_until": ISO time}
    secrets_ciphertext: Mapped[str] = mapped_column(Text)
    # The current run of failed attempts: how many, and since when (both reset by a success).
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()


class WebhookDelivery(TenantModel):
    """One event to one endpoint: the message, its state and its next attempt. The body is kept
    as the exact bytes signed, so every attempt and replay sends the same message."""

    __tablename__ = "webhook_deliveries"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    # The record the event is about ("invoice:12"): deliveries of one subject go in order.
    subject: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = utcnow_column()
    # A worker's claim: until then no other worker takes it (a worker that died lets it go).
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(255))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        # Exactly once per endpoint and event, however often the consumer reads a batch.
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index(
            "ix_webhook_deliveries_pending_subject",
            "endpoint_id",
            "subject",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )


class WebhookAttempt(TenantModel):
    """The delivery log: one row per attempt, with what was sent and what came back."""

    __tablename__ = "webhook_attempts"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    endpoint_id: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int] = mapped_column(Integer)
    request_headers: Mapped[dict] = mapped_column(JSONB)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict | None] = mapped_column(JSONB)
    # The first 64 KB of the answer, as text (undecodable bytes replaced).
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "number"),)
