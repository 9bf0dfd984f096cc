"""Aging kept up to date by the database: one entry per invoice that still owes money, its
bucket, and the sums per client, currency and bucket; credit sales per day (for DSO); daily
snapshots for the trend. PL/pgSQL triggers on invoices, payment allocations and credit notes
keep entries and sums (migration 0013); `services.roll` moves the entries whose bucket changed
since the last day the sums were aged to (`AgingState.as_of`). Nothing here is written by the
application except the state (through the database functions) and the snapshots."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, utcnow_column


class AgingState(TenantModel):
    """What the maintained aging is built on: the day its buckets were aged to, the basis
    (due date or issue date) and the bucket boundaries. One row (id 1)."""

    __tablename__ = "aging_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    as_of: Mapped[date] = mapped_column(Date)
    basis: Mapped[str] = mapped_column(String(16), server_default="due_date")
    buckets: Mapped[list[int]] = mapped_column(
        ARRAY(SmallInteger), server_default=text("'{30,60,90}'")
    )
    rebuilt_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class AgingEntry(TenantModel):
    """An invoice that owes money (owing status, open amount > 0): its open amount and its
    bucket on `AgingState.as_of` by its basis date."""

    __tablename__ = "aging_entries"

    invoice_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    client_id: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_date: Mapped[date | None] = mapped_column(Date)
    issue_date: Mapped[date | None] = mapped_column(Date)
    basis_date: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    bucket: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_aging_entries_client_bucket", "client_id", "bucket"),
        # What a collector's clients owe (invoicing.balance.owing_per_client), read from this
        # index alone: every column the sums read, in the order they group by.
        Index(
            "ix_aging_entries_client_owing",
            "client_id",
            "currency",
            "due_date",
            postgresql_include=["amount"],
        ),
    )


class AgingSummary(TenantModel):
    """Open amount and invoice count per client, currency and bucket (0 = current, 1.. the
    overdue buckets in order, the last one open-ended). Rows with no invoice are removed."""

    __tablename__ = "aging_summary"

    client_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    invoice_count: Mapped[int] = mapped_column(Integer)


class AgingTotal(TenantModel):
    """Open amount and invoice count per currency and bucket, as the summary held them when
    they were last folded (by each roll and rebuild): with the changes since
    (`AgingTotalChange`) they are the summary's sums, read without reading its rows."""

    __tablename__ = "aging_totals"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    invoice_count: Mapped[int] = mapped_column(Integer)


class AgingTotalChange(TenantModel):
    """One change of a summary row since the totals were last folded, appended by a trigger
    on the summary. Appended rather than added to the totals' row: every write to any
    client's invoices would otherwise wait on (and could deadlock over) the same few rows."""

    __tablename__ = "aging_total_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    bucket: Mapped[int] = mapped_column(SmallInteger)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    invoice_count: Mapped[int] = mapped_column(Integer)


class AgingClientOverdue(TenantModel):
    """What each client owes past due per currency (the summary's overdue buckets added up),
    kept by a trigger on the summary: the clients owing most are read from an index. Rows
    with no overdue invoice are removed."""

    __tablename__ = "aging_client_overdue"

    client_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    invoice_count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_aging_client_overdue_rank", "currency", text("amount DESC"), "client_id"),
    )


class AgingClientRows(TenantModel):
    """The aging report's rows: one per client and currency with summary rows, and how many
    (buckets) it has, kept by the summary's trigger, so the report counts its rows without
    grouping the summary."""

    __tablename__ = "aging_client_rows"

    client_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    bucket_rows: Mapped[int] = mapped_column(SmallInteger)


class AgingSales(TenantModel):
    """Credit sales per issue date and currency: totals of invoices issued that day, drafts and
    voids left out (the denominator of DSO)."""

    __tablename__ = "aging_sales"

    sale_date: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    invoice_count: Mapped[int] = mapped_column(Integer)


class AgingSnapshot(TenantModel):
    """The aging of one currency at the start of a day (written when the day is rolled to):
    bucket amounts under the boundaries of that day, outstanding, overdue and DSO."""

    __tablename__ = "aging_snapshots"

    snapshot_on: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    buckets: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    amounts: Mapped[list[Decimal]] = mapped_column(ARRAY(Numeric(18, 2)))
    outstanding: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    overdue: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    credit_sales_90: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    dso: Mapped[Decimal | None] = mapped_column(Numeric(8, 1))
    created_at: Mapped[datetime] = utcnow_column()
