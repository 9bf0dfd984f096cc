"""Calendars: the secret feed addresses (shared: the public feed URL names no workspace, so its
token is looked up before any tenant is bound), each entry's version (so calendar apps see an
update, never a second event), and the members' connected calendars with what was written
into each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import SharedModel, TenantModel, sql_list, utcnow_column

CALENDAR_PROVIDERS = ("google_calendar", "outlook_calendar")
# connected: writing; needs_reconnect: the provider refused the tokens (consent revoked or
# expired), nothing is written until the member connects again; disconnected: history.
CONNECTION_STATUSES = ("connected", "needs_reconnect", "disconnected")


class CalendarFeed(SharedModel):
    """A member's secret feed address in one workspace, found by the SHA-256 of its token (256
    random bits, so a plain digest cannot be guessed back). "New address"
    revokes the live one; a revoked address answers 404 like one that never existed."""

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The address again for its owner's page, sealed with the SECRETS_KEYS like credentials.
    token_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "uq_calendar_feeds_live",
            "tenant_id",
            "user_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class CalendarEntryVersion(TenantModel):
    """The version of one calendar entry of the workspace (keyed by its UID): the fingerprint of
    what it says, and a SEQUENCE raised whenever that changes, with when (LAST-MODIFIED and
    DTSTAMP). Written with one upsert, never through the ORM, so that serving a feed writes no
    audit rows."""

    __tablename__ = "calendar_entries"

    uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    changed_at: Mapped[datetime] = utcnow_column()


class CalendarConnection(TenantModel):
    """A member's Google or Outlook calendar that Duebook writes their entries into. The OAuth
    tokens are one encrypted blob (app.core.crypto), never shown back, dropped on disconnect."""

    __tablename__ = "calendar_connections"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default="connected")
    calendar_id: Mapped[str | None] = mapped_column(String(1024))
    calendar_name: Mapped[str | None] = mapped_column(String(255))
    secrets_ciphertext: Mapped[str | None] = mapped_column(Text)
    connected_at: Mapped[datetime] = utcnow_column()
    last_pushed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"provider IN ({sql_list(CALENDAR_PROVIDERS)})", name="provider"),
        CheckConstraint(f"status IN ({sql_list(CONNECTION_STATUSES)})", name="status"),
        Index(
            "uq_calendar_connections_live",
            "user_id",
            "provider",
            unique=True,
            postgresql_where=text("status <> 'disconnected'"),
        ),
    )


class CalendarPushedEvent(TenantModel):
    """An entry written into a connected calendar: the provider's id for it and the fingerprint
    written, so a push creates what is missing, patches what changed and deletes what went.
    One row per (connection, UID): a retried push finds it and never creates a second event."""

    __tablename__ = "calendar_pushed_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.calendar_connections.id", ondelete="CASCADE")
    )
    uid: Mapped[str] = mapped_column(String(128))
    remote_id: Mapped[str] = mapped_column(String(1024))
    fingerprint: Mapped[str] = mapped_column(String(64))
    pushed_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (UniqueConstraint("connection_id", "uid", name="uq_calendar_pushed_uid"),)
