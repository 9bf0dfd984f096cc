"""A sign-up waiting for its e-mail address to be confirmed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, String
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import SharedModel, utcnow_column


class PendingSignup(SharedModel):
    """What the sign-up form asked for, kept until the link mailed to `email` is followed:
    only then are the account and the workspace made. The link's token is stored as a hash,
    the password as its argon2 hash; rows past `expires_at` are refused and purged."""

    __tablename__ = "pending_signups"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(191))
    password_hash: Mapped[str] = mapped_column(String(255))
    organisation: Mapped[str] = mapped_column(String(191))
    slug: Mapped[str | None] = mapped_column(String(40))  # empty: made from the name
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(64))
    time_zone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
