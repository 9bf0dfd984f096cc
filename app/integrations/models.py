from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import SharedModel, TenantModel, sql_list, utcnow_column

CONNECTION_STATUSES = ("enabled", "disabled", "disconnected")
# Whether the provider confirmed that the credentials own the account the connection binds (a
# WhatsApp number, a Twilio account ...), checked by a worker (services.run_test):
#   not_needed  the connector binds no account (SMTP)
#   pending     saved; the check has not answered yet
#   verified    the provider accepted the credentials for the account; it is bound here
#   refused     the provider refused them, or a workspace whose credentials work holds it
#   lost        the account was taken over by a workspace that proved it controls it
#   legacy      saved before accounts were verified: used until its next test or take-over
VERIFICATION_STATES = ("not_needed", "pending", "verified", "refused", "lost", "legacy")
USABLE_VERIFICATION = ("not_needed", "verified", "legacy")


class IntegrationConnection(TenantModel):
    """A tenant's connection to one provider. Settings that are not secret (a phone number id,
    a sender address) are plain JSON; credentials are one encrypted blob that is never shown
    back and is deleted on disconnect. Health counters are kept by the delivery code."""

    __tablename__ = "integration_connections"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default="enabled")
    verification: Mapped[str] = mapped_column(
        String(16), server_default="pending", default="pending"
    )
    settings: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"), default=dict)
    secrets_ciphertext: Mapped[str | None] = mapped_column(Text)
    connected_by: Mapped[int | None] = mapped_column(BigInteger)
    connected_at: Mapped[datetime] = utcnow_column()
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    success_count: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    failure_count: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(CONNECTION_STATUSES)})", name="status"),
        CheckConstraint(f"verification IN ({sql_list(VERIFICATION_STATES)})", name="verification"),
        # One live connection per provider; a disconnected one stays as history.
        Index(
            "uq_integration_connections_live_provider",
            "provider",
            unique=True,
            postgresql_where=text("status <> 'disconnected'"),
        ),
    )

    @classmethod
    def in_use(cls):
        """SQL: the connection may send, and its account's webhooks are routed to it."""
        return and_(cls.status == "enabled", cls.verification.in_(USABLE_VERIFICATION))

    @property
    def usable(self) -> bool:
        return self.status == "enabled" and self.verification in USABLE_VERIFICATION

    def audit_subject(self) -> str:
        return f"integrations:{self.provider}"


class ProviderAccount(SharedModel):
    """Routes a provider's webhook to exactly one tenant: WhatsApp's phone_number_id, Twilio's
    AccountSid, the secret path token of an MSG91 delivery-report URL. A key without a row is
    acknowledged and dropped, never guessed."""

    __tablename__ = "provider_accounts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    account_key: Mapped[str] = mapped_column(String(128))
    tenant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    connection_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (UniqueConstraint("provider", "account_key"),)
