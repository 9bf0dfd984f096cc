"""Which invoices need a stored PDF, and handing their rendering to the workers.

Issuing asks for the PDF (`request_pdf`); the job is handed over (`app.core.handover`) only
once the issuing transaction has really committed. The durable intent is the invoice row
itself (issued, no `pdf_key`): a periodic sweep (`invoices_missing_pdf`) renders what never
reached a worker.
Rendering itself is `app.invoicing.pdf`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.handover import hand_over
from app.invoicing.models import Invoice

UNSTORED_STATUSES = ("draft", "void")  # rendered on the fly with a mark, never stored
SWEEP_GRACE = timedelta(minutes=2)


def is_storable(invoice: Invoice) -> bool:
    return invoice.status not in UNSTORED_STATUSES and invoice.number is not None


def invoices_missing_pdf(session: Session, limit: int = 500) -> list[int]:
    """Issued invoices no worker has rendered (Redis was down, a worker died), oldest first,
    leaving the ones just issued to the job their issue queued."""
    cutoff = datetime.now(UTC) - SWEEP_GRACE
    return list(
        session.scalars(
            select(Invoice.id)
            .where(
                Invoice.pdf_key.is_(None),
                Invoice.number.is_not(None),
                Invoice.status.not_in(UNSTORED_STATUSES),
                Invoice.issued_at < cutoff,
            )
            .order_by(Invoice.issued_at)
            .limit(limit)
        )
    )


def request_pdf(session: Session, tenant, invoice: Invoice) -> None:
    """Ask a worker to render and store the invoice's PDF once this transaction commits (a
    rollback forgets the request). Drafts and void invoices are never stored."""
    if is_storable(invoice):
        hand_over(session, "render_invoice_pdf", invoice.id, tenant_id=tenant.id)
