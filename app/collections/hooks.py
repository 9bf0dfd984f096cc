"""What collections does when what an invoice owes changes: called by the payments and
invoicing services inside their transaction, so a notice never outlives the debt it chased and
a promise is checked against the money the moment it arrives."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.invoicing.models import Invoice


def invoice_settled(session: Session, invoice: Invoice, user_id: int | None) -> None:
    """A payment, un-allocation, void of a payment or credit note changed what the invoice
    owes (its status is already set)."""
    from app.collections import notices, promises

    if invoice.status == "paid":
        notices.close_for_invoices(session, [invoice.id], "paid", user_id)
    promises.check_after_payment(session, invoice.client_id, user_id)


def invoice_ended(session: Session, invoice: Invoice, reason: str, user_id: int | None) -> None:
    """The invoice was voided or written off: nothing is chased on it any more."""
    from app.collections import notices

    notices.close_for_invoices(session, [invoice.id], reason, user_id)
