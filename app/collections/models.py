"""Collections of a tenant: the settings, policies and their ladder of levels, the notices the
daily run creates (one row per invoice, level and channel guards "exactly once"), promises to
pay, disputes, holds, collectors' calls and visits, and the bank rate behind MSMED interest."""

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
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.custom_fields.models import custom_values_column, index_custom_values
from tenants.base import TenantModel, sql_list, utcnow_column

# How a level reaches the client: a message, a printed letter, or a task for a collector.
LEVEL_CHANNELS = ("email", "whatsapp", "sms", "letter", "call", "visit")
MESSAGE_CHANNELS = ("email", "whatsapp", "sms")
TASK_CHANNELS = ("call", "visit")
# When a level falls due: N days before or after the invoice's due date, or N days after the
# invoice's previous level.
LEVEL_TRIGGERS = ("before_due", "after_due", "after_previous")
NOTICE_PURPOSES = ("notice_1", "notice_2", "notice_final", "notice_legal")
# "failed": the notice's message did not arrive (failed, bounced, dead or not sent at all); it
# still chases the money, and a person resends it (app/collections/notices/services.py).
NOTICE_STATUSES = (
    "draft",
    "approved",
    "queued",
    "sent",
    "delivered",
    "read",
    "failed",
    "responded",
    "escalated",
    "closed",
    "cancelled",
)
# Notices still working on the client (a payment that settles their invoices closes them).
OPEN_NOTICE_STATUSES = (
    "draft",
    "approved",
    "queued",
    "sent",
    "delivered",
    "read",
    "failed",
    "responded",
    "escalated",
)
# Why a person (or a payment, void, write-off) ends a notice.
NOTICE_CLOSE_REASONS = ("paid", "cancelled", "written_off", "void")
# Archiving the client ends its notices: closed, not cancelled, so the interest a notice that
# went out claimed stays owed (app/collections/cases/interest_claims.py).
CLIENT_ARCHIVED = "client_archived"
GROUPINGS = ("client", "invoice")
INTEREST_MODES = ("none", "simple", "compound", "msmed")
MSME_CATEGORIES = ("micro", "small", "medium")
# MSMED s.16 "three times the bank rate": the rate in force at each monthly rest (default), or
# the rate on the appointed day for the whole period (the other reading courts have taken).
MSME_RATE_BASES = ("per_rest", "appointed_day")
# How late-payment interest is rounded: each monthly rest's interest to the paisa (default), or
# the total once at the end (app/collections/cases/interest.py).
INTEREST_ROUNDINGS = ("each_rest", "at_end")
AGING_BASES = ("due_date", "issue_date")
# How interest a notice claimed stops being owed: paid (cash allocated to it), waived, or
# written off.
INTEREST_SETTLEMENT_KINDS = ("paid", "waived", "written_off")
PROMISE_STATUSES = ("open", "kept", "broken", "cancelled")
DISPUTE_STATUSES = ("open", "resolved", "rejected")
ACTIVITY_KINDS = ("call", "visit")
CALL_OUTCOMES = (
    "promised",
    "paid_claimed",
    "disputed",
    "no_answer",
    "call_back",
    "wrong_number",
    "refused",
    "left_message",
    "other",
)
VISIT_OUTCOMES = (
    "met_promised",
    "met_paid",
    "met_disputed",
    "met_refused",
    "not_available",
    "premises_closed",
    "other",
)
VISIT_VERIFICATIONS = ("verified", "flagged", "confirmed", "rejected")


class CollectionSettings(TenantModel):
    """The tenant's collection settings: one row (id 1), made with the defaults when first read
    (`app.collections.engine.services.settings_of`)."""

    __tablename__ = "collection_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    # Automatic sending is off until an admin switches it on; until then the daily run only
    # previews (what would go out, and why).
    auto_send: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    auto_send_changed_by: Mapped[int | None] = mapped_column(BigInteger)
    auto_send_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The hour of the tenant's day (its time zone) from which the daily run may go.
    run_hour: Mapped[int] = mapped_column(SmallInteger, server_default=text("7"))
    last_run_on: Mapped[date | None] = mapped_column(Date)
    # Invoices owing less than this (in their currency) are not chased.
    tolerance_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="1.00")
    grouping: Mapped[str] = mapped_column(String(8), server_default="client")
    thank_you: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # A field visit counts as verified within this many metres of the client's site.
    visit_radius_m: Mapped[int] = mapped_column(Integer, server_default=text("300"))
    # MSMED Act: the tenant's Udyam registration and category (interest under s.16 is for
    # micro and small suppliers only).
    udyam_number: Mapped[str | None] = mapped_column(String(19))
    msme_category: Mapped[str | None] = mapped_column(String(8))
    msme_rate_basis: Mapped[str] = mapped_column(String(16), server_default="per_rest")
    interest_rounding: Mapped[str] = mapped_column(String(16), server_default="each_rest")
    aging_basis: Mapped[str] = mapped_column(String(16), server_default="due_date")
    # Upper bounds (days) of the overdue buckets after "current": 30, 60, 90 -> current, 1-30,
    # 31-60, 61-90, 90+.
    aging_buckets: Mapped[list[int]] = mapped_column(
        ARRAY(SmallInteger), server_default=text("'{30,60,90}'")
    )
    updated_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(f"grouping IN ({sql_list(GROUPINGS)})", name="grouping"),
        CheckConstraint(f"msme_category IN ({sql_list(MSME_CATEGORIES)})", name="msme_category"),
        CheckConstraint(f"msme_rate_basis IN ({sql_list(MSME_RATE_BASES)})", name="rate_basis"),
        CheckConstraint(
            f"interest_rounding IN ({sql_list(INTEREST_ROUNDINGS)})", name="interest_rounding"
        ),
        CheckConstraint(f"aging_basis IN ({sql_list(AGING_BASES)})", name="aging_basis"),
        CheckConstraint("tolerance_amount >= 0", name="tolerance"),
        CheckConstraint("run_hour BETWEEN 0 AND 23", name="run_hour"),
        CheckConstraint("visit_radius_m > 0", name="visit_radius"),
    )


class CollectionPolicy(TenantModel):
    """A ladder of levels. One live policy is the tenant's default; a client or an invoice may
    name another."""

    __tablename__ = "collection_policies"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    levels: Mapped[list[CollectionLevel]] = relationship(
        back_populates="policy", order_by="CollectionLevel.position"
    )

    __table_args__ = (
        Index(
            "uq_collection_policies_one_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default AND deleted_at IS NULL"),
        ),
        Index(
            "uq_collection_policies_live_name",
            text("lower(name)"),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )


class CollectionLevel(TenantModel):
    """One rung of a policy's ladder. `position` is the rung (1 = 1st notice); the exactly-once
    record of the daily run is keyed by it, so re-ordering or editing a policy never sends a
    rung an invoice already had."""

    __tablename__ = "collection_levels"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("tenant.collection_policies.id"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(60))
    trigger: Mapped[str] = mapped_column(String(16))
    trigger_days: Mapped[int] = mapped_column(SmallInteger)
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    # The message template purpose used for this level's messages (per channel and language,
    # from the tenant's message templates) and its letter.
    template_purpose: Mapped[str] = mapped_column(String(16))
    min_gap_days: Mapped[int] = mapped_column(SmallInteger, server_default=text("3"))
    fee_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    requires_approval: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The legal rung: a demand letter (and the MSEFC pack for MSE suppliers).
    is_legal: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    policy: Mapped[CollectionPolicy] = relationship(back_populates="levels")

    __table_args__ = (
        UniqueConstraint("policy_id", "position", name="uq_collection_levels_rung"),
        CheckConstraint("position >= 1", name="position"),
        CheckConstraint(f"trigger IN ({sql_list(LEVEL_TRIGGERS)})", name="trigger"),
        CheckConstraint("trigger_days BETWEEN 0 AND 3650", name="trigger_days"),
        CheckConstraint(
            f"channels <@ ARRAY[{sql_list(LEVEL_CHANNELS)}]::varchar[]", name="channels"
        ),
        CheckConstraint("cardinality(channels) >= 1", name="channels_not_empty"),
        CheckConstraint(f"template_purpose IN ({sql_list(NOTICE_PURPOSES)})", name="purpose"),
        CheckConstraint("min_gap_days BETWEEN 0 AND 365", name="min_gap_days"),
        CheckConstraint("fee_amount IS NULL OR fee_amount >= 0", name="fee_amount"),
    )


class CollectionRun(TenantModel):
    """One daily run (or preview) of a tenant: when, for which day, what it created."""

    __tablename__ = "collection_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_date: Mapped[date] = mapped_column(Date, index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    trigger: Mapped[str] = mapped_column(String(16), server_default="scheduler")
    started_by: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notices_created: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    invoices_considered: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Why invoices were left alone: {"disputed": 3, "on_hold": 1, ...}
    skipped: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)


class CollectionNotice(TenantModel):
    """A notice to a client at one level on one channel, in one currency: listing all of the
    client's invoices at that level (grouping "client") or one invoice (grouping "invoice").
    A call or a visit is a notice too: a task for a collector. The invoices it covers are its
    `items`; the database refuses a second item for the same invoice, level and channel."""

    __tablename__ = "collection_notices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("tenant.collection_policies.id"))
    level_id: Mapped[int] = mapped_column(ForeignKey("tenant.collection_levels.id"))
    level_number: Mapped[int] = mapped_column(SmallInteger)
    level_name: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    grouping: Mapped[str] = mapped_column(String(8), server_default="client")
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.collection_runs.id"))
    run_date: Mapped[date] = mapped_column(Date)
    # Why it was created, in words ("14 days after due; 1st notice on 3 Nov").
    reason: Mapped[str | None] = mapped_column(Text)
    amount_due: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    interest_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0")
    fee_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.client_contacts.id"))
    # The outbox message (public.outbox_messages.id) that carries it, for message channels.
    message_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # Letter PDF (statement of account or demand letter) in the tenant's storage.
    letter_key: Mapped[str | None] = mapped_column(String(255))
    assigned_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    approved_by: Mapped[int | None] = mapped_column(BigInteger)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Indexed: a collector's queue (and so the dashboard) asks which clients had a notice sent
    # lately, on every visit.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_date: Mapped[date | None] = mapped_column(Date)
    response_note: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    escalated_on: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()

    items: Mapped[list[CollectionNoticeInvoice]] = relationship(
        back_populates="notice", order_by="CollectionNoticeInvoice.id"
    )
    attachments: Mapped[list[NoticeAttachment]] = relationship(
        back_populates="notice", order_by="NoticeAttachment.id"
    )

    __table_args__ = (
        CheckConstraint(f"channel IN ({sql_list(LEVEL_CHANNELS)})", name="channel"),
        CheckConstraint(f"status IN ({sql_list(NOTICE_STATUSES)})", name="status"),
        CheckConstraint(f"grouping IN ({sql_list(GROUPINGS)})", name="grouping"),
        CheckConstraint(
            f"close_reason IN ({sql_list((*NOTICE_CLOSE_REASONS, CLIENT_ARCHIVED))})",
            name="close_reason",
        ),
        CheckConstraint(
            "(status IN ('closed', 'cancelled')) = (closed_at IS NOT NULL)", name="closed_at"
        ),
        Index("ix_collection_notices_status_run", "status", text("run_date DESC")),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class CollectionNoticeInvoice(TenantModel):
    """An invoice on a notice, with what it owed and how late it was when the notice was made.
    Unique per (invoice, level, channel): the daily run's exactly-once guarantee."""

    __tablename__ = "collection_notice_invoices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("tenant.collection_notices.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"))
    level_number: Mapped[int] = mapped_column(SmallInteger)
    channel: Mapped[str] = mapped_column(String(8))
    amount_due: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    interest_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0")
    days_overdue: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = utcnow_column()

    notice: Mapped[CollectionNotice] = relationship(back_populates="items")

    __table_args__ = (
        UniqueConstraint("invoice_id", "level_number", "channel", name="uq_notice_invoice_rung"),
    )


class NoticeAttachment(TenantModel):
    """A document uploaded to a notice, or a link to one; removing keeps the row."""

    __tablename__ = "notice_attachments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("tenant.collection_notices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(191))
    url: Mapped[str | None] = mapped_column(String(2048))
    storage_key: Mapped[str | None] = mapped_column(String(255))
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(127))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[int | None] = mapped_column(BigInteger)

    notice: Mapped[CollectionNotice] = relationship(back_populates="attachments")

    __table_args__ = (
        CheckConstraint("kind IN ('file', 'link')", name="kind"),
        CheckConstraint(
            "(kind = 'file' AND storage_key IS NOT NULL) OR (kind = 'link' AND url IS NOT NULL)",
            name="file_or_link",
        ),
    )

    def audit_subject(self) -> str:
        return f"notices:{self.notice_id}"


class PromiseToPay(TenantModel):
    """The client promised to pay `amount` by `promised_on`: the ladder pauses for the invoices
    it covers (all the client's open invoices when `invoice_ids` is empty) until then."""

    __tablename__ = "promises_to_pay"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.collection_notices.id"))
    invoice_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    promised_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    note: Mapped[str | None] = mapped_column(Text)
    # What had been paid on the covered invoices when the promise was made: fulfilment is
    # what was paid after it.
    paid_before: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0")
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(PROMISE_STATUSES)})", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_promises_to_pay_open", "promised_on", postgresql_where=text("status = 'open'")),
        # The dashboard counts the promises broken lately without reading the kept ones.
        Index(
            "ix_promises_to_pay_broken", "promised_on", postgresql_where=text("status = 'broken'")
        ),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class Dispute(TenantModel):
    """A client disputes an invoice: collection on it pauses until the dispute is resolved or
    rejected (the invoice's own status says "disputed" meanwhile)."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text)
    evidence_url: Mapped[str | None] = mapped_column(String(2048))
    owner_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(DISPUTE_STATUSES)})", name="status"),
        Index(
            "uq_disputes_one_open_per_invoice",
            "invoice_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class CollectionHold(TenantModel):
    """No chasing of a client (or of one of its invoices) while the hold lasts: from its start
    to its end date (open-ended without one), unless released early."""

    __tablename__ = "collection_holds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.invoices.id"))
    reason: Mapped[str] = mapped_column(Text)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates"),)

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class CollectionActivity(TenantModel):
    """A collector's call or field visit with its outcome. A visit carries where the collector
    was (GPS) and whether that is within the tenant's radius of the client's site; a visit
    logged without a position is flagged for a manager, whose note is `verification_note`."""

    __tablename__ = "collection_activities"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.collection_notices.id"))
    kind: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.client_contacts.id"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    follow_up_on: Mapped[date | None] = mapped_column(Date)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.client_sites.id"))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    accuracy_m: Mapped[int | None] = mapped_column(Integer)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    verification: Mapped[str | None] = mapped_column(String(16))
    verified_by: Mapped[int | None] = mapped_column(BigInteger)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the manager who confirmed or rejected a flagged visit checked.
    verification_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_list(ACTIVITY_KINDS)})", name="kind"),
        CheckConstraint(
            f"outcome IN ({sql_list(sorted(set(CALL_OUTCOMES) | set(VISIT_OUTCOMES)))})",
            name="outcome",
        ),
        CheckConstraint(f"verification IN ({sql_list(VISIT_VERIFICATIONS)})", name="verification"),
        # A position is both coordinates or none, and only a visit has one (a visit without
        # one is flagged, not refused).
        CheckConstraint(
            "(latitude IS NULL) = (longitude IS NULL) AND (kind = 'visit' OR latitude IS NULL)",
            name="visit_position",
        ),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class BankRate(TenantModel):
    """The RBI bank rate from a date on (MSMED s.16 interest is three times it). A dated table
    the tenant's admins keep; the migration seeds the published history."""

    __tablename__ = "bank_rates"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, unique=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    note: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (CheckConstraint("rate > 0 AND rate < 50", name="rate"),)


class InterestSettlement(TenantModel):
    """Late-payment interest a notice claimed on an invoice that stopped being owed: paid (a
    payment's allocation of cash to the interest), waived or written off, with the reason. What
    is still claimable is the last claim less these (a paid one only while its allocation is
    live), so voiding the payment makes the interest claimable again."""

    __tablename__ = "interest_settlements"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"), index=True)
    # The notice whose claim it settles: a later notice demands the interest less this, so
    # only settlements of the latest claim lower what that claim leaves unpaid.
    notice_id: Mapped[int] = mapped_column(ForeignKey("tenant.collection_notices.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    reason: Mapped[str] = mapped_column(Text)
    allocation_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.payment_allocations.id"))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_list(INTEREST_SETTLEMENT_KINDS)})", name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("length(btrim(reason)) > 0", name="reason"),
        CheckConstraint("(kind = 'paid') = (allocation_id IS NOT NULL)", name="paid_by_allocation"),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


index_custom_values(CollectionNotice)
