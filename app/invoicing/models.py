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
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.custom_fields.models import (
    CUSTOM_VALUES_TEXT,
    custom_values_column,
    index_custom_values,
)
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


class TaxAmounts:
    """The tax split and total of an invoice, a credit note or one of their lines: CGST + SGST
    (intra-state), IGST (inter-state, exports) or one other tax, each rounded to the paisa."""

    cgst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    sgst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    igst: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    other_tax: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    total: Mapped[Decimal] = mapped_column(Numeric(18, 2))


INVOICE_STATUSES = (
    "draft",
    "issued",
    "sent",
    "partly_paid",
    "paid",
    "overdue",
    "disputed",
    "void",
    "written_off",
)
# The series of the invoices brought from the old books with their own numbers: Duebook's
# series (and their counters, InvoiceNumberSequence) never see them.
OPENING_SERIES = "OPENING"
# Statuses of an invoice that still owes money (what is owed is derived, see payments).
OWING_STATUSES = ("issued", "sent", "overdue", "partly_paid", "disputed")


class Invoice(TaxAmounts, TenantModel):
    """An invoice of a client. A draft has no number, series year or issue date; issuing gives
    it the next number of its series in the financial year (`services.issue`). Money columns
    are the sums of the lines' rounded amounts."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
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
    amount_in_words: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = utcnow_column()
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The issued invoice as a PDF in the tenant's storage, rendered by a worker (app.invoicing.pdf).
    pdf_key: Mapped[str | None] = mapped_column(String(255))
    pdf_rendered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The lifecycle (services.mark_sent / dispute / resolve_dispute / write_off): when and why.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disputed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    written_off_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    written_off_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    write_off_reason: Mapped[str | None] = mapped_column(Text)
    # Collections: a policy for this invoice alone (else the client's, else the default), and
    # the day the client accepted the work (MSMED s.15 counts from it; the issue date if empty).
    collection_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.collection_policies.id")
    )
    accepted_on: Mapped[date | None] = mapped_column(Date)
    # An open invoice of the old books brought in by an opening-balance import (series
    # OPENING_SERIES, its own number kept; app.payments.opening), else NULL.
    opening_import_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.opening_balance_imports.id")
    )

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
        CheckConstraint(
            "(status <> 'written_off') OR (written_off_amount IS NOT NULL)", name="written_off"
        ),
        # The list (newest first, keyset over (issue_date, id); drafts have no date and come
        # first) and the daily overdue run (open invoices by due date).
        Index("ix_invoices_list", text("issue_date DESC NULLS FIRST"), text("id DESC")),
        Index("ix_invoices_status_due", "status", "due_date"),
        # A collector's overdue clients (the dashboard's "no contact" count): one probe per
        # client instead of reading its invoices.
        Index(
            "ix_invoices_owing_client_due",
            "client_id",
            "due_date",
            postgresql_where=text(f"status IN ({sql_list(OWING_STATUSES)})"),
        ),
        Index(
            "ix_invoices_number_search", text("lower(number) gin_trgm_ops"), postgresql_using="gin"
        ),
        # Search finds an invoice by its custom values too (a PO number).
        Index(
            "ix_invoices_custom_search",
            text(f"lower({CUSTOM_VALUES_TEXT}) gin_trgm_ops"),
            postgresql_using="gin",
            postgresql_with={"gin_pending_list_limit": 256},
        ),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"

    def resting_status(self, today: date) -> str:
        """The status of an issued invoice on which nothing has been paid: overdue once past its
        due date (a day of the tenant's calendar), else sent if it was sent, else issued."""
        if self.due_date is not None and self.due_date < today:
            return "overdue"
        return "sent" if self.sent_at is not None else "issued"


class InvoiceTotal(TenantModel):
    """Count and invoiced total per currency and status as last folded (migration 0023): with
    the changes since (`InvoiceTotalChange`) they are the whole ledger's, read without reading
    an invoice. Statement-level triggers on invoices keep them; drafts and voids included."""

    __tablename__ = "invoice_totals"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    invoice_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class InvoiceTotalChange(TenantModel):
    """One statement's change of count and total per currency and status, appended by the
    triggers (never an update of a shared row: writers do not wait on each other) until a
    fold (`invoice_fold_totals`) adds it to `InvoiceTotal`."""

    __tablename__ = "invoice_total_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    invoice_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class InvoiceLine(TaxAmounts, TenantModel):
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

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class CreditNote(TaxAmounts, TenantModel):
    """A GST credit note (CGST Act s.34) against an issued invoice: it reduces what the invoice
    owes. Numbered in its own series ("CN") per financial year when made; its taxes are split
    the way the invoice's were (CGST/SGST or IGST or a plain tax), in proportion, and its lines
    add up to its total exactly (`services.issue_credit_note`)."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    number: Mapped[str] = mapped_column(String(16))
    series: Mapped[str] = mapped_column(String(8))
    fiscal_year: Mapped[str] = mapped_column(String(9))
    issue_date: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    amount_in_words: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = utcnow_column()

    lines: Mapped[list[CreditNoteLine]] = relationship(
        back_populates="credit_note", order_by="CreditNoteLine.position"
    )

    __table_args__ = (
        UniqueConstraint("number", name="uq_credit_notes_number"),
        CheckConstraint("total > 0", name="total_positive"),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class CreditNoteLine(TaxAmounts, TenantModel):
    __tablename__ = "credit_note_lines"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    credit_note_id: Mapped[int] = mapped_column(ForeignKey("tenant.credit_notes.id"), index=True)
    invoice_line_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoice_lines.id"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(255))
    hsn_sac: Mapped[str | None] = mapped_column(String(8))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    taxable_value: Mapped[Decimal] = mapped_column(Numeric(18, 2))

    credit_note: Mapped[CreditNote] = relationship(back_populates="lines")


index_custom_values(Invoice)
