"""Writing many new invoices with their lines at once (a sync's page of invoices from the
books): a multi-row INSERT ... RETURNING per table instead of the ORM's unit of work, with the
audit entries the flush listener would have written for them one by one
(app.audit.services.insert_audited)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.audit.services import insert_audited
from app.invoicing.models import Invoice, InvoiceLine


def insert_invoices(session: Session, invoices: Sequence[Invoice]) -> None:
    """Write `invoices`, built with their lines and not added to the session, in the session's
    transaction; each gets the id the database gave it."""
    if not invoices:
        return
    for invoice, row in zip(invoices, insert_audited(session, Invoice, invoices), strict=True):
        invoice.id = row.id
    lines = [line for invoice in invoices for line in invoice.lines]
    insert_audited(session, InvoiceLine, lines, invoice_id=lambda line: line.invoice.id)
