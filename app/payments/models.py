"""Payments of a tenant's clients and their allocations to invoices.

What an invoice still owes and what a payment has left unapplied are derived from the live
allocations (those not removed), never stored."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.custom_fields.models import custom_values_column, index_custom_values
from tenants.base import TenantModel, sql_list, utcnow_column

PAYMENT_METHODS = ("bank_transfer", "upi", "cheque", "cash", "card", "other")


class Payment(TenantModel):
    """Cash received from a client on a day. `amount` is the cash only; TDS the client deducted
    is recorded on the allocations."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    received_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    void_reason: Mapped[str | None] = mapped_column(String(255))
    # What was already paid of an invoice brought from the old books (app.payments.opening),
    # else NULL.
    opening_import_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.opening_balance_imports.id")
    )

    allocations: Mapped[list[PaymentAllocation]] = relationship(
        back_populates="payment", order_by="PaymentAllocation.id"
    )

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"method IN ({sql_list(PAYMENT_METHODS)})", name="method"),
        # The payments list, newest first (ties by id) and filtered by date: a page reads its
        # rows in index order and stops, however many payments share a day.
        Index("ix_payments_received_on_id", "received_on", "id"),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class PaymentDay(TenantModel):
    """Live (not voided) cash received per day and currency, and how much of it is not yet
    allocated, kept by statement-level triggers on payments and their allocations (migrations
    0022 and 0024): the dashboard's cash of this month and last adds up some sixty of these
    instead of every payment of two months, and the payments list's totals some hundreds
    instead of every payment and allocation. Days with no live payment are removed."""

    __tablename__ = "payment_days"

    received_on: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    payment_count: Mapped[int] = mapped_column(Integer)
    unapplied: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default=text("0"))


class PaymentAllocation(TenantModel):
    """Part of a payment applied to an invoice: `amount` of cash plus `tds_amount` the client
    deducted at source (section and rate), tracked until its certificate (Form 16A) arrives.
    `interest_amount` is cash applied to the invoice's late-payment interest rather than to what
    it owes (its balance never counts it; the payment's unapplied cash does). Un-allocating sets
    `removed_at`; the row stays as history."""

    __tablename__ = "payment_allocations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("tenant.payments.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    tds_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    interest_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0")
    tds_section: Mapped[str | None] = mapped_column(String(8))
    tds_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    tds_certificate_received_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = utcnow_column()
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    payment: Mapped[Payment] = relationship(back_populates="allocations")

    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("tds_amount >= 0", name="tds_amount_not_negative"),
        CheckConstraint("interest_amount >= 0", name="interest_amount_not_negative"),
        CheckConstraint(
            "tds_amount = 0 OR (tds_section IS NOT NULL AND tds_rate IS NOT NULL)",
            name="tds_section_and_rate",
        ),
    )

    def audit_subject(self) -> str:
        return f"payments:{self.payment_id}"


index_custom_values(Payment)
