"""The sync engine's records, per accounting connection (an `integration_connections` row):

- sync_links: the external-id map. Each Duebook record is linked to one record in the books,
  once (unique both ways); `agreed` holds the field values both sides had when they last
  agreed, so a run sees which side changed which field since (both: a conflict).
- sync_states: per entity, the provider's change marker of the last complete pass and the
  page a pass in progress has reached (a run resumes there after a crash).
- sync_runs: one run (scheduled, manual, a webhook's, a full refresh), its stage, counts and
  heartbeat; at most one active run per connection (a partial unique index).
- sync_problems: the records a run skipped or failed, with the reason in words.
- sync_conflicts: a field both sides changed since they last agreed, kept for a person.
- sync_matches: the first connection's review: each customer in the books with the client it
  would be linked to (by tax id, e-mail or name) or created as, decided by a person before
  anything is written on either side.
- sync_reports: the reconciliation report of a run (counts and totals per entity and month
  on both sides, and the records that differ)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, sql_list, utcnow_column

ENTITY_NAMES = ("contact", "invoice", "credit_note", "payment")
# manual: "Sync now"; schedule: the hourly run; webhook: the books told of a change; full: a
# full refresh (finds deletions, then the reconciliation report); review: the first run, which
# reads the customers for the review; connect: the run after the review.
RUN_TRIGGERS = ("manual", "schedule", "webhook", "full", "review", "connect", "file", "event")
# queued: handed to a worker; running; waiting: paused for the provider's rate limit until
# resume_at; review: the first connection's matches wait for a person; done; failed (the
# error says why; the next run resumes from the last committed page).
RUN_STATUSES = ("queued", "running", "waiting", "review", "done", "failed")
ACTIVE_RUN_STATUSES = ("queued", "running", "waiting")
ORIGINS = ("books", "duebook")
CONFLICT_STATUSES = ("open", "resolved")
MATCH_DECISIONS = ("link", "create", "skip")


class SyncLink(TenantModel):
    __tablename__ = "sync_links"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.integration_connections.id", ondelete="CASCADE")
    )
    entity: Mapped[str] = mapped_column(String(16))
    local_id: Mapped[int] = mapped_column(BigInteger)
    remote_id: Mapped[str] = mapped_column(String(80))
    remote_version: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(8))
    agreed: Mapped[dict] = mapped_column(JSONB, default=dict)
    # The record as the books last showed it (number, date, currency, total, amount due,
    # state): the books' side of the reconciliation report.
    books: Mapped[dict] = mapped_column(JSONB, default=dict)
    # The full refresh that last saw it in the books: one not seen by a complete full pass was
    # deleted there.
    seen_in_run: Mapped[int | None] = mapped_column(BigInteger)
    synced_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(f"entity IN ({sql_list(ENTITY_NAMES)})", name="entity"),
        CheckConstraint(f"origin IN ({sql_list(ORIGINS)})", name="origin"),
        UniqueConstraint("connection_id", "entity", "local_id", name="uq_sync_links_local"),
        UniqueConstraint("connection_id", "entity", "remote_id", name="uq_sync_links_remote"),
    )


class SyncState(TenantModel):
    __tablename__ = "sync_states"
    __audited__ = False

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.integration_connections.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The change marker to ask with next (None: never fully pulled).
    marker: Mapped[str | None] = mapped_column(Text)
    # A pass in progress: its run, the page it reached and the marker gathered so far.
    pass_run_id: Mapped[int | None] = mapped_column(BigInteger)
    cursor: Mapped[str | None] = mapped_column(Text)
    pass_marker: Mapped[str | None] = mapped_column(Text)
    # The pass asks for everything (the first, or a full refresh that finds deletions).
    pass_full: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)


class SyncRun(TenantModel):
    __tablename__ = "sync_runs"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.integration_connections.id", ondelete="CASCADE"), index=True
    )
    trigger: Mapped[str] = mapped_column(String(16))
    full: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)
    status: Mapped[str] = mapped_column(String(16), server_default="queued", default="queued")
    # Where it is: "pull contact", "push invoice" ...
    stage: Mapped[str | None] = mapped_column(String(32))
    requested_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resume_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    read: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    created: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    updated: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    skipped: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    conflicts: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    requests: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"trigger IN ({sql_list(RUN_TRIGGERS)})", name="trigger"),
        CheckConstraint(f"status IN ({sql_list(RUN_STATUSES)})", name="status"),
        # One run at a time per connection: a second "Sync now" joins the active one.
        Index(
            "uq_sync_runs_active",
            "connection_id",
            unique=True,
            postgresql_where=text(f"status IN ({sql_list(ACTIVE_RUN_STATUSES + ('review',))})"),
        ),
    )

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class SyncProblem(TenantModel):
    __tablename__ = "sync_problems"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.sync_runs.id", ondelete="CASCADE"), index=True
    )
    entity: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))  # pull | push
    remote_id: Mapped[str | None] = mapped_column(String(80))
    local_id: Mapped[int | None] = mapped_column(BigInteger)
    label: Mapped[str | None] = mapped_column(String(191))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()


class SyncConflict(TenantModel):
    __tablename__ = "sync_conflicts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.integration_connections.id", ondelete="CASCADE"), index=True
    )
    entity: Mapped[str] = mapped_column(String(16))
    local_id: Mapped[int] = mapped_column(BigInteger)
    remote_id: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(String(191))
    # {field: {"agreed": value, "duebook": value, "books": value}}
    fields: Mapped[dict] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(8), server_default="open", default="open")
    resolution: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = utcnow_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(CONFLICT_STATUSES)})", name="status"),
        CheckConstraint(
            "resolution IS NULL OR resolution IN ('duebook', 'books')", name="resolution"
        ),
        Index(
            "uq_sync_conflicts_open",
            "connection_id",
            "entity",
            "local_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    def audit_subject(self) -> str:
        return f"sync_conflicts:{self.id}"


class SyncMatch(TenantModel):
    __tablename__ = "sync_matches"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.integration_connections.id", ondelete="CASCADE"), index=True
    )
    remote_id: Mapped[str] = mapped_column(String(80))
    remote_name: Mapped[str] = mapped_column(String(191))
    # The customer as the books showed it (BookContact as JSON): what the review shows and what
    # the run after it creates or links from.
    remote_facts: Mapped[dict] = mapped_column(JSONB, default=dict)
    local_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(8))
    # The run after the review linked or created it.
    applied: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)

    __table_args__ = (
        CheckConstraint(f"decision IN ({sql_list(MATCH_DECISIONS)})", name="decision"),
        UniqueConstraint("connection_id", "remote_id", name="uq_sync_matches_remote"),
    )


class SyncReport(TenantModel):
    __tablename__ = "sync_reports"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.integration_connections.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    # [{"entity", "month", "duebook_count", "duebook_total", "books_count", "books_total"}]
    months: Mapped[list] = mapped_column(JSONB)
    # [{"entity", "number", "field", "duebook", "books"}]
    differences: Mapped[list] = mapped_column(JSONB)
    difference_count: Mapped[int] = mapped_column(Integer)
