"""The outbox table: every message to send (e-mail, WhatsApp, SMS) of every tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import SharedModel, sql_list, utcnow_column

# pending → sending → sent → delivered → read, as the provider confirms. `failed` and `bounced`
# are the provider's word that it did not arrive; `suppressed` means we did not send (no
# consent, unsubscribed, bounced address, no channel connected); `dead` means we gave up
# after retries or a permanent rejection: the dead letters a user can retry.
STATUSES = (
    "pending",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "bounced",
    "suppressed",
    "dead",
)
CHANNELS = ("email", "whatsapp", "sms")
QUEUES = ("messages", "bulk")


class OutboxMessage(SharedModel):
    """An intent to send, committed with the change that caused it. The idempotency key makes
    a second intent for the same thing a no-op; it becomes the e-mail's Message-ID and the
    provider's idempotency key where the provider has one.

    One shared table for every tenant (rows carry `tenant_id`), so one sweeper query finds
    every intent left behind; pages always filter by the bound tenant."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16), server_default="email")
    queue: Mapped[str] = mapped_column(String(16), server_default="messages")
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # Channel specifics: WhatsApp template name/language/parameters, SMS DLT ids and
    # variables, e-mail attachments (storage keys) and headers.
    payload: Mapped[dict | None] = mapped_column(JSONB)
    # A one-time link (invitation, password reset, sign-up confirmation): the bodies hold
    # secret_links.SECRET_LINK where it goes, and the link itself is sealed with SECRETS_KEYS
    # until the message is sent or given up on, then erased (app.outbox.secret_links).
    carries_secret: Mapped[bool] = mapped_column(
        Boolean, server_default=text("false"), default=False
    )
    sealed_secret: Mapped[str | None] = mapped_column(Text)
    # Only inside the tenant's sending window of the recipient's day (bulk and collections).
    windowed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)
    recipient_time_zone: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = utcnow_column()
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(STATUSES)})", name="status"),
        CheckConstraint(f"queue IN ({sql_list(QUEUES)})", name="queue"),
        Index(
            "ix_outbox_messages_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
        Index(
            "uq_outbox_messages_provider_message",
            "provider",
            "provider_message_id",
            unique=True,
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
        # The status rides along so that the Messages page counts by status from the index
        # alone (shared revision 0017).
        Index(
            "ix_outbox_messages_tenant_created",
            "tenant_id",
            "created_at",
            postgresql_include=["status"],
        ),
        Index(
            "ix_outbox_messages_tenant_client",
            "tenant_id",
            "client_id",
            postgresql_where=text("client_id IS NOT NULL"),
        ),
        Index(
            "ix_outbox_messages_tenant_campaign",
            "tenant_id",
            "campaign_id",
            postgresql_where=text("campaign_id IS NOT NULL"),
        ),
    )

    @classmethod
    def of_tenant(cls, tenant_id: int | None):
        """The condition that scopes this shared table to one workspace (None: the platform's
        own mail, which belongs to no workspace). Every query that serves a workspace, a page
        or a job, goes through it, so none can forget the filter or write it another way."""
        return cls.tenant_id.is_(None) if tenant_id is None else cls.tenant_id == tenant_id

    @property
    def secret_erased(self) -> bool:
        """Its one-time link was erased (sent or given up on): it cannot be sent again."""
        return self.carries_secret and self.sealed_secret is None
