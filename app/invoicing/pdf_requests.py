"""Which invoices need a stored PDF, and handing their rendering to the workers.

Issuing asks for the PDF (`request_pdf`); the job is handed to RQ only once the issuing
transaction has really committed. The durable intent is the invoice row itself (issued, no
`pdf_key`): a periodic sweep (`invoices_missing_pdf`) renders what never reached a worker.
Rendering itself is `app.invoicing.pdf`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.handover import Work, enqueue
from app.core.transaction_hooks import on_commit
from app.invoicing.models import Invoice

log = logging.getLogger(__name__)

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
    if not is_storable(invoice):
        return
    on_commit(session, _hand_over_after_commit, (tenant.id, invoice.id))


def _hand_over_after_commit(pending: list[tuple[int, int]]) -> None:
    if not has_app_context():
        # A script or test issuing outside the app: no queue to hand it to; the sweep will.
        log.info("no app context to queue %d invoice PDF(s); the sweep will", len(pending))
        return
    try:
        hand_to_workers(pending)
    except Exception:  # Redis down: the invoice has no pdf_key, so the sweep renders it
        log.warning(
            "could not queue %d invoice PDF(s); the sweep will", len(pending), exc_info=True
        )


def hand_to_workers(pending: list[tuple[int, int]]) -> None:
    """Queue a render per (tenant_id, invoice_id); tests swap in their own hand-over."""
    current_app.extensions.get("duebook.enqueue_invoice_pdfs", enqueue_renders)(pending)


def enqueue_renders(pending: list[tuple[int, int]]) -> None:
    """Hand (tenant_id, invoice_id) pairs to RQ in one round trip."""
    enqueue(
        [Work("render_invoice_pdf", (invoice_id,), tenant_id) for tenant_id, invoice_id in pending]
    )
