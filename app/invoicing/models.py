"""Invoicing tables of a tenant."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel


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
