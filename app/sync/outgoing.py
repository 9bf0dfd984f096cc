"""What Duebook still owes a set of books: the invoices issued here since the review, their
credit notes, and the payments recorded here on invoices the books have, not linked yet. One
rule, read by the push, by the health's "waiting to go to the books" and by the
reconciliation's "not in the books yet", so that the three agree."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, select

from app.integrations.models import IntegrationConnection
from app.invoicing.models import OPENING_SERIES, CreditNote, Invoice
from app.payments.models import Payment, PaymentAllocation
from app.sync.mapping import BOOKS_SERIES
from app.sync.models import SyncLink

PUSHED_STATUSES = ("issued", "sent", "overdue", "partly_paid", "paid", "disputed")
# Invoices of these series came from elsewhere (the old books, these books): never pushed.
NOT_PUSHED_SERIES = (OPENING_SERIES, BOOKS_SERIES)


def push_from(connection: IntegrationConnection) -> datetime:
    """What is recorded from this moment on goes to the books (the review's time; before
    the review, nothing)."""
    kept = (connection.settings or {}).get("push_from")
    return datetime.fromisoformat(kept) if kept else datetime.now(UTC)


def linked_ids(connection_id: int, entity: str) -> Select:
    return select(SyncLink.local_id).where(
        SyncLink.connection_id == connection_id, SyncLink.entity == entity
    )


def invoices_to_push(connection: IntegrationConnection) -> Select:
    """The ids of the invoices to create in the books, oldest first."""
    return (
        select(Invoice.id)
        .where(
            Invoice.status.in_(PUSHED_STATUSES),
            Invoice.series.not_in(NOT_PUSHED_SERIES),
            Invoice.issued_at >= push_from(connection),
            Invoice.id.not_in(linked_ids(connection.id, "invoice")),
        )
        .order_by(Invoice.id)
    )


def credit_notes_to_push(connection: IntegrationConnection) -> Select:
    """Credit notes made in Duebook since the review, not in the books yet (one whose invoice
    the books do not have is left out by the push)."""
    return (
        select(CreditNote)
        .where(
            CreditNote.created_at >= push_from(connection),
            CreditNote.id.not_in(linked_ids(connection.id, "credit_note")),
        )
        .order_by(CreditNote.id)
    )


def allocations_to_push(connection: IntegrationConnection) -> Select:
    """(allocation, its payment) of the money to record in the books, oldest first."""
    return (
        select(PaymentAllocation, Payment)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(
            PaymentAllocation.removed_at.is_(None),
            Payment.voided_at.is_(None),
            PaymentAllocation.amount > 0,
            PaymentAllocation.created_at >= push_from(connection),
            PaymentAllocation.id.not_in(linked_ids(connection.id, "payment")),
            PaymentAllocation.invoice_id.in_(linked_ids(connection.id, "invoice")),
        )
        .order_by(PaymentAllocation.id)
    )
