"""Invoicing tables of a tenant."""

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
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tenants.base import TenantModel, sql_list, utcnow_column


class InvoiceNumberSequence(TenantModel):
    """One counter per invoice series and financial year (GST Rule 46: invoice numbers are
    consecutive and unique per financial year). `next_number` is the number the next issue
    takes; the row exists from the year's first issue on. Written only through
    `app.invoicing.numbering.next_invoice_number` (one statement, see there)."""

    __tablename__ = "invoice_number_sequences"

    series: Mapped[str] = mapped_column(String(8), primary_key=True)
    fiscal_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    __table_args__ = (CheckConstraint("next_number >= 1", name="next_number"),)


INVOICE_STATUSES = ("draft", "issued", "sent", "partly_paid", "paid", "overdue", "disputed",
                    "void", "written_off")  # fmt: skip


class Invoice(TenantModel):
    """An invoice of a client. A draft has no number, series year or issue date; issuing gives
    it the next number of its series in the financial year (`services.issue`). Money columns
    are the sums of the lines' rounded amounts."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.projects.id"), index=True)
    number: Mapped[str | None] = mapped_column(String(16))
    series: Mapped[str] = mapped_column(String(8), server_default="INV")
    fiscal_year: Mapped[str | None] = mapped_column(String(9))
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    supplier_gstin: Mapped[str | None] = mapped_column(String(15))
    recipient_gstin: Mapped[str | None] = mapped_column(String(15))
    place_of_supply: Mapped[str | None] = mapped_column(String(2))
    tax_regime: Mapped[str] = mapped_column(String(8))
    reverse_charge: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    lut_reference: Mapped[str | None] = mapped_column(String(64))
    subtotal: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    cgst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    sgst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    igst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    other_tax: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    total: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    amount_in_words: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = utcnow_column()
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The issued invoice as a PDF in the tenant's storage, rendered by a worker (app.invoicing.pdf).
    pdf_key: Mapped[str | None] = mapped_column(String(255))
    pdf_rendered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position"
    )

    __table_args__ = (
        # PostgreSQL lets many rows have a NULL number (drafts); a number is used once.
        UniqueConstraint("number", name="uq_invoices_number"),
        CheckConstraint(f"status IN ({sql_list(INVOICE_STATUSES)})", name="status"),
        CheckConstraint(
            "tax_regime IN ('intra', 'inter', 'export', 'au_gst', 'other')", name="tax_regime"
        ),
        CheckConstraint(
            "(status <> 'draft' OR number IS NULL) AND "
            "(status IN ('draft', 'void') OR number IS NOT NULL)",
            name="number_on_issue",
        ),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class InvoiceLine(TenantModel):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"), index=True)
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.milestones.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(255))
    hsn_sac: Mapped[str | None] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    taxable_value: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    cgst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    sgst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    igst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    other_tax: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    total: Mapped[Decimal] = mapped_column(Numeric(18, 2))

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
