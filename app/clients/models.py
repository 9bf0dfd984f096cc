"""Client records of a tenant: clients (and prospects), contacts, sites, documents, imports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from app.custom_fields.models import (
    CUSTOM_VALUES_TEXT,
    custom_values_column,
    index_custom_values,
)
from tenants.base import TenantModel, sql_list, utcnow_column

LOCATIONS = ("local", "foreign")
STATUSES = ("prospect", "active", "on_hold", "inactive")
PAYMENT_TERMS = ("net", "mfi", "custom", "immediate")
CHANNELS = ("email", "whatsapp", "sms", "letter")
CONTACT_ROLES = ("billing", "primary", "escalation")
CONSENT_CHANNELS = ("email", "sms", "whatsapp")
# What search-as-you-type looks in. The list's query uses this same SQL text, so that
# PostgreSQL matches it to the trigram index (bound constants would not match).
SEARCH_EXPRESSION = (
    "lower(full_name || ' ' || short_name || ' ' || coalesce(gstin, '') || ' ' "
    f"|| coalesce(external_id, '') || ' ' || coalesce(city, '') || ' ' || {CUSTOM_VALUES_TEXT})"
)


class Industry(TenantModel):
    """The tenant's managed list of industries (seeded with common ones)."""

    __tablename__ = "industries"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    __table_args__ = (Index("uq_industries_name", func.lower(name), unique=True),)


class Client(TenantModel):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
    external_id: Mapped[str | None] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(191))
    short_name: Mapped[str] = mapped_column(String(191))
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    location: Mapped[str] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(2))
    address_line1: Mapped[str | None] = mapped_column(String(191))
    address_line2: Mapped[str | None] = mapped_column(String(191))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(64))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    gstin: Mapped[str | None] = mapped_column(String(15))
    pan: Mapped[str | None] = mapped_column(String(10))
    abn: Mapped[str | None] = mapped_column(String(11))
    vat_number: Mapped[str | None] = mapped_column(String(20))
    tin: Mapped[str | None] = mapped_column(String(32))
    tax_registration: Mapped[str | None] = mapped_column(Text)
    remittance_details: Mapped[str | None] = mapped_column(Text)
    payment_terms: Mapped[str] = mapped_column(String(16), server_default="net")
    payment_days: Mapped[int | None] = mapped_column(SmallInteger)
    payment_terms_note: Mapped[str | None] = mapped_column(String(255))
    engagement_manager_user_id: Mapped[int | None] = mapped_column(BigInteger)
    new_business_year: Mapped[int | None] = mapped_column(SmallInteger)
    industry_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.industries.id"))
    currency: Mapped[str] = mapped_column(String(3))
    credit_limit: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    preferred_language: Mapped[str] = mapped_column(String(8), server_default="en")
    preferred_channel: Mapped[str] = mapped_column(String(16), server_default="email")
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), server_default=text("'{}'::varchar[]"), default=list
    )
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column(onupdate=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Archived: out of the list and no longer chased (its notices were closed), but its
    # invoices stay in the books and the aging; `archive_client` in app/clients/services.py.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Collections: the policy that chases this client (the tenant's default when empty), the
    # collector whose work queue it is on, and late-payment interest (contractual simple or
    # compound at `late_interest_rate` % a year, or MSMED s.16; see
    # app.collections.cases.interest).
    collection_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.collection_policies.id")
    )
    collector_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    late_interest_mode: Mapped[str] = mapped_column(String(8), server_default="none")
    late_interest_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
    # MSMED s.15: with terms agreed in writing, interest runs from the day after the agreed
    # date (at most 45 days from acceptance); without, from the 16th day after acceptance.
    payment_agreed_in_writing: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    industry: Mapped[Industry | None] = relationship()
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="client",
        primaryjoin="and_(Contact.client_id == Client.id, Contact.deleted_at.is_(None))",
        order_by="Contact.full_name",
        viewonly=True,
    )

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(STATUSES)})", name="status"),
        CheckConstraint(f"location IN ({sql_list(LOCATIONS)})", name="location"),
        CheckConstraint(f"payment_terms IN ({sql_list(PAYMENT_TERMS)})", name="payment_terms"),
        CheckConstraint(f"preferred_channel IN ({sql_list(CHANNELS)})", name="preferred_channel"),
        CheckConstraint(
            "late_interest_mode IN ('none', 'simple', 'compound', 'msmed')",
            name="late_interest_mode",
        ),
        CheckConstraint(
            "(payment_terms IN ('net', 'mfi')) = (payment_days IS NOT NULL)", name="payment_days"
        ),
        CheckConstraint("new_business_year >= 2015", name="new_business_year"),
        CheckConstraint("credit_limit >= 0", name="credit_limit"),
        # Names are unique among the clients that are not deleted: a deleted client's names
        # may be used again.
        Index(
            "uq_clients_full_name",
            func.lower(full_name),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "uq_clients_short_name",
            func.lower(short_name),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "uq_clients_external_id",
            "external_id",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND external_id IS NOT NULL"),
        ),
        # The list's sort orders, keyset-paginated: (sort key, id).
        Index(
            "ix_clients_list_name",
            func.lower(full_name),
            "id",
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_clients_list_created", "created_at", "id"),
        Index("ix_clients_tags", "tags", postgresql_using="gin"),
        Index("ix_clients_engagement_manager", "engagement_manager_user_id"),
        # Search as you type: trigrams over the names, tax ids, city and custom values. A short
        # pending list (migration 0023): searches read it whole, and a long one made PostgreSQL
        # choose to compute the search text of every client instead (7.7x the bare route at
        # 10,000).
        Index(
            "ix_clients_search",
            text(f"{SEARCH_EXPRESSION} gin_trgm_ops"),
            postgresql_using="gin",
            postgresql_with={"gin_pending_list_limit": 256},
        ),
    )

    @property
    def is_prospect(self) -> bool:
        return self.status == "prospect"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def audit_subject(self) -> str:
        return f"clients:{self.id}"


class ClientCount(TenantModel):
    """How many clients not deleted are in one status, archived or not, as last folded
    (migration 0050): with the changes since (`ClientCountChange`) they are the list's exact
    size, read by adding up a few rows instead of counting the clients on every view. A status
    and archiving no client is in has no row once folded."""

    __tablename__ = "client_counts"

    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    archived: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    client_count: Mapped[int] = mapped_column(Integer)


class ClientCountChange(TenantModel):
    """One statement's change of count per status and archived-or-not, appended by the
    triggers on clients (never an update of a shared row: writers do not wait on each other)
    until a fold (`client_counts_fold`) adds it to `ClientCount`."""

    __tablename__ = "client_count_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    archived: Mapped[bool] = mapped_column(Boolean)
    client_count: Mapped[int] = mapped_column(Integer)


class Contact(TenantModel):
    __tablename__ = "client_contacts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    full_name: Mapped[str] = mapped_column(String(191))
    job_title: Mapped[str | None] = mapped_column(String(100))
    roles: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), server_default=text("'{}'::varchar[]"), default=list
    )
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    preferred_language: Mapped[str | None] = mapped_column(String(8))
    # Per channel: 'opted_in', 'opted_out' or NULL (never asked), when and how it was given.
    email_consent: Mapped[str | None] = mapped_column(String(10))
    email_consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_consent_source: Mapped[str | None] = mapped_column(String(100))
    sms_consent: Mapped[str | None] = mapped_column(String(10))
    sms_consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sms_consent_source: Mapped[str | None] = mapped_column(String(100))
    whatsapp_consent: Mapped[str | None] = mapped_column(String(10))
    whatsapp_consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    whatsapp_consent_source: Mapped[str | None] = mapped_column(String(100))
    # A hard bounce stops e-mail to the address until it is changed; the last message the
    # contact sent on WhatsApp opens the 24-hour window for free-form (session) messages.
    email_bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_bounce_reason: Mapped[str | None] = mapped_column(String(255))
    whatsapp_last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    client: Mapped[Client] = relationship(back_populates="contacts")

    __table_args__ = tuple(
        CheckConstraint(
            f"{channel}_consent IN ('opted_in', 'opted_out')", name=f"{channel}_consent"
        )
        for channel in CONSENT_CHANNELS
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class Site(TenantModel):
    """A place where the client is served; its coordinates verify field visits later."""

    __tablename__ = "client_sites"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    name: Mapped[str] = mapped_column(String(191))
    address_line1: Mapped[str | None] = mapped_column(String(191))
    address_line2: Mapped[str | None] = mapped_column(String(191))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(64))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    site_contact_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.client_contacts.id"))
    created_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    site_contact: Mapped[Contact | None] = relationship()

    __table_args__ = (
        CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude"),
        CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude"),
        CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="coordinates"),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class Document(TenantModel):
    __tablename__ = "client_documents"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    title: Mapped[str] = mapped_column(String(191))
    category: Mapped[str | None] = mapped_column(String(64))
    expires_on: Mapped[date | None] = mapped_column(Date, index=True)
    # The day the engagement manager was told it is about to expire (once per expiry date).
    expiry_notice_for: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.version.desc()"
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class DocumentVersion(TenantModel):
    __tablename__ = "client_document_versions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("tenant.client_documents.id"))
    version: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = utcnow_column()

    document: Mapped[Document] = relationship(back_populates="versions")

    __table_args__ = (UniqueConstraint("document_id", "version"),)

    def audit_subject(self) -> str:
        # A new version may know only its document's id; its history is the client's.
        client_id = object_session(self).scalar(
            select(Document.client_id).where(Document.id == self.document_id)
        )
        return f"clients:{client_id}"


class ClientImport(TenantModel):
    """One upload of a client file: its column mapping, progress and outcome."""

    __tablename__ = "client_imports"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="uploaded")
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(8))
    headers: Mapped[list] = mapped_column(JSONB, default=list)
    mapping: Mapped[dict] = mapped_column(JSONB, default=dict)
    # The first rows as read by the worker ([line, cells] each), checked again for the preview
    # with the current mapping: a request never parses the file.
    preview_rows: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")
    # One-time keys of the upload form and of the last start form that went through: a
    # double-submitted form makes one import and starts it once.
    upload_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    start_key: Mapped[str | None] = mapped_column(String(64))
    total_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    processed_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    inserted_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('reading', 'unreadable', 'uploaded', 'mapped', 'queued', 'running', "
            "'done', 'failed')",
            name="status",
        ),
    )


class ClientImportError(TenantModel):
    __tablename__ = "client_import_errors"
    __audited__ = False  # part of an import's outcome, not a user's change

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.client_imports.id", ondelete="CASCADE"), index=True
    )
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)


index_custom_values(Client)
index_custom_values(Contact)


class ClientRequiredField(TenantModel):
    """A custom field of invoices that this client's invoices must have filled in, set by a
    rule's "require an invoice field" action. The invoice form and the API refuse the client's
    invoice without it; invoices the accounting sync brings from the books are taken as they
    are (the books are the record of what was issued). Kept when the rule that set it is
    turned off or changed: only a "stop requiring" action or a person removes it."""

    __tablename__ = "client_required_fields"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.clients.id", ondelete="CASCADE"), primary_key=True
    )
    field_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = utcnow_column()

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"
