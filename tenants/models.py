"""Shared-schema records: tenants, users, memberships, login sessions, invitations."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tenants.base import SharedModel, sql_list, utcnow_column
from tenants.binding import schema_for_tenant_id
from tenants.roles import ROLES


class Tenant(SharedModel):
    """A workspace's identity only. What it prints, how it is paid and billed and when it
    sends are its settings, a row of `workspace_settings` that app.settings owns."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(191))
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(64))
    time_zone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    created_at: Mapped[datetime] = utcnow_column()
    # The workspace's own words for the product's nouns (app.core.terminology): noun ->
    # [singular, plural], only those it changed. On this row because every request loads it.
    terminology: Mapped[dict] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), default=dict
    )

    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
        CheckConstraint(r"slug ~ '^[a-z][a-z0-9-]{2,39}$'", name="slug_format"),
    )

    @property
    def schema(self) -> str:
        return schema_for_tenant_id(self.id)

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class User(UserMixin, SharedModel):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(191))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = utcnow_column()
    password_changed_at: Mapped[datetime] = utcnow_column()

    memberships: Mapped[list[Membership]] = relationship(back_populates="user")

    __table_args__ = (Index("uq_users_email_lower", func.lower(email), unique=True),)

    # Flask-Login keeps the login-session token in the cookie, not the user id, so that a
    # log-out or a disabled account ends the session on the server.
    session_token = None

    def get_id(self) -> str | None:
        return self.session_token

    @property
    def is_active(self) -> bool:
        return bool(self.active)


class Membership(SharedModel):
    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = utcnow_column()

    user: Mapped[User] = relationship(back_populates="memberships")
    tenant: Mapped[Tenant] = relationship()

    __table_args__ = (
        UniqueConstraint("user_id", "tenant_id"),
        Index("ix_memberships_tenant_id", "tenant_id"),
        CheckConstraint(f"role IN ({sql_list(ROLES)})", name="role"),
    )
    __audited__ = True


class LoginSession(SharedModel):
    """One row per signed-in browser; the cookie carries the token, the table its hash."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = utcnow_column()
    last_seen_at: Mapped[datetime] = utcnow_column()
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class Invitation(SharedModel):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    tenant: Mapped[Tenant] = relationship()
    invited_by: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_invitations_tenant_id", "tenant_id"),
        CheckConstraint(f"role IN ({sql_list(ROLES)})", name="role"),
    )
    __audited__ = True

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None
