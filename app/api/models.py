from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import SharedModel, utcnow_column

# What a key may do, per area: reading, and (where the API changes that area) writing.
SCOPES = {
    "clients:read": "Read clients and their contacts",
    "clients:write": "Create, change and delete clients and their contacts",
    "documents:write": "Upload and delete clients' documents",
    "invoices:read": "Read invoices, their lines and PDFs, and credit notes",
    "invoices:write": "Issue credit notes against invoices and change their custom fields",
    "projects:read": "Read projects and their milestones",
    "projects:write": "Create projects, set their plans, move milestones on and change "
    "their custom fields",
    "collections:read": "Read notices, promises to pay and disputes",
    "collections:write": "Close notices and attach files and links to them; record and "
    "cancel promises to pay; open and end disputes",
    "payments:read": "Read payments and their allocations",
    "payments:write": "Change payments' custom fields",
    "events:read": "Read the workspace's events",
}


# An API key is sent as it is; an OAuth client (RFC 6749 client credentials) sends its id and
# secret to /api/v1/oauth/token for short-lived access tokens. Both are rows of `api_keys`, so
# everything keyed by the caller (idempotent answers, the rate limit) treats them alike.
KEY_KINDS = ("key", "oauth_client")


class ApiKey(SharedModel):
    """A workspace's key for the API, or an OAuth client (`kind`). Shared, like
    ProviderAccount: a request's key finds its workspace before any tenant is bound. Only the
    secret's SHA-256 digest is kept; the secret is shown once, when it is made."""

    __tablename__ = "api_keys"
    __audited__ = True  # made and revoked by admins: the workspace's audit log shows it

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The key's first characters, shown in the list so a person can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    secret_digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16), server_default="key")
    # An OAuth client's public id (its user name, in HTTP Basic); None for a key.
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)

    def audit_subject(self) -> str:
        return "settings:api-keys"


class ApiIdempotentRequest(SharedModel):
    """The first answer to a POST that carried an Idempotency-Key, written in the transaction
    of what the POST did: the same key and body get this answer again, and the unique
    constraint makes two racing requests with one key do the work once."""

    __tablename__ = "api_idempotent_requests"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_digest: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),)


class ApiAccessToken(SharedModel):
    """An access token issued to an OAuth client: its digest, the scopes granted and when it
    stops working. Revoking the client stops its tokens at once (a token is honoured only
    while its client is live)."""

    __tablename__ = "api_access_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()
