"""Disputes: a client disputes an invoice (reason, evidence as text and/or a link, an owner who
sorts it out). While open, the invoice is "disputed" and not chased; resolving (the client was
right, or it was settled) or rejecting (the invoice stands) needs a note and puts the invoice
back to what its money and dates say. One open dispute per invoice (the database's too). The
invoice page's dispute actions go through here, so there is one way to dispute."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.cases.services import CaseError, CaseInvalid, read_text, read_url
from app.collections.models import Dispute
from app.core.events import emit
from app.core.terminology import worded
from app.invoicing import services as invoicing
from app.invoicing.models import Invoice

log = logging.getLogger(__name__)

ENDINGS = {"resolved": "Resolved", "rejected": "Rejected"}


def open_dispute_of(session: Session, invoice_id: int) -> Dispute | None:
    return session.scalar(
        select(Dispute).where(Dispute.invoice_id == invoice_id, Dispute.status == "open")
    )


def open_dispute(
    session: Session,
    invoice: Invoice,
    values,
    user_id: int | None = None,
    member_ids: set[int] | None = None,
) -> Dispute:
    """Dispute an invoice from form values: reason (required), evidence, evidence_url,
    owner_user_id (a member of `member_ids` when given; the person disputing by default)."""
    errors: dict[str, str] = {}
    reason = read_text(
        values.get("reason"), "reason", errors, required=worded("Say what the {client} disputes.")
    )
    evidence = read_text(values.get("evidence"), "evidence", errors)
    evidence_url = read_url(values.get("evidence_url"), "evidence_url", errors)
    owner_raw = str(values.get("owner_user_id") or "").strip()
    owner = int(owner_raw) if owner_raw.isdigit() else user_id
    if owner_raw and (
        not owner_raw.isdigit() or (member_ids is not None and owner not in member_ids)
    ):
        errors["owner_user_id"] = "Choose a member of this workspace."
    if errors:
        raise CaseInvalid(errors)
    invoice = invoicing.lock_invoice(session, invoice)  # two people disputing wait in turn
    if open_dispute_of(session, invoice.id) is not None:
        raise CaseError("This invoice already has an open dispute.")
    try:
        invoicing.dispute(session, invoice, reason)
    except invoicing.InvoiceInvalid as invalid:
        raise CaseInvalid({"reason": invalid.errors.get("dispute_reason", str(invalid))}) from None
    except invoicing.InvoiceError as error:
        raise CaseError(str(error)) from None
    dispute = Dispute(
        client_id=invoice.client_id,
        invoice_id=invoice.id,
        reason=reason,
        evidence=evidence,
        evidence_url=evidence_url,
        owner_user_id=owner,
        created_by=user_id,
    )
    session.add(dispute)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise CaseError("This invoice already has an open dispute.") from None
    _announce(session, dispute, "dispute.opened", reason=reason[:500])
    return dispute


def _announce(session: Session, dispute: Dispute, type_: str, **facts) -> None:
    emit(
        session,
        type_,
        "dispute",
        dispute.id,
        {
            "dispute_id": dispute.id,
            "invoice_id": dispute.invoice_id,
            "client_id": dispute.client_id,
            **facts,
        },
    )


def open_for_gateway_dispute(session: Session, invoice_ids: list[int], reason: str) -> None:
    """A payer's bank disputed an online payment (the gateway took the money back): each
    invoice it paid gets an open dispute saying so, unless it already has one or can no longer
    be disputed (voided meanwhile); that invoice is logged and skipped, the others go on."""
    for invoice_id in sorted(invoice_ids):
        invoice = session.get(Invoice, invoice_id)
        if invoice is None:
            continue
        try:
            with session.begin_nested():
                open_dispute(session, invoice, {"reason": reason})
        except (CaseError, CaseInvalid) as refused:
            log.info("gateway dispute not opened on invoice %s: %s", invoice_id, refused)


def end_dispute(
    session: Session, dispute: Dispute, outcome: str, note, today: date, user_id: int | None = None
) -> Dispute:
    """Resolve or reject an open dispute with a note (required); the invoice leaves
    "disputed"."""
    errors: dict[str, str] = {}
    if outcome not in ENDINGS:
        errors["outcome"] = "Choose resolved or rejected."
    note = read_text(note, "resolution_note", errors, required="Say how the dispute ended.")
    if errors:
        raise CaseInvalid(errors)
    if dispute.status != "open":
        raise CaseError(f"This dispute is {dispute.status} already.")
    dispute.status = outcome
    dispute.resolution_note = note
    dispute.resolved_by = user_id
    dispute.resolved_at = datetime.now(UTC)
    invoice = invoicing.lock_invoice(session, session.get(Invoice, dispute.invoice_id))
    if invoice.status == "disputed":
        invoicing.resolve_dispute(session, invoice, today)
    session.flush()
    _announce(session, dispute, "dispute.resolved", outcome=outcome)
    return dispute


def end_invoice_dispute(
    session: Session, invoice: Invoice, outcome: str, note, today: date, user_id: int | None = None
) -> Dispute | None:
    """End the invoice's open dispute (the invoice page's action). An invoice disputed before
    disputes were recorded has no record: the note is still required, and the invoice is put
    back all the same."""
    dispute = open_dispute_of(session, invoice.id)
    if dispute is not None:
        return end_dispute(session, dispute, outcome, note, today, user_id)
    errors: dict[str, str] = {}
    read_text(note, "resolution_note", errors, required="Say how the dispute ended.")
    if errors:
        raise CaseInvalid(errors)
    try:
        invoicing.resolve_dispute(session, invoicing.lock_invoice(session, invoice), today)
    except invoicing.InvoiceError as error:
        raise CaseError(str(error)) from None
    return None


# Reading ------------------------------------------------------------------------------------


def get_dispute(session: Session, dispute_id: int) -> Dispute | None:
    return session.get(Dispute, dispute_id)


def client_disputes(session: Session, client_id: int) -> list[tuple[Dispute, Invoice]]:
    """The client's disputes with their invoice, open first, newest first."""
    return [
        tuple(r)
        for r in session.execute(
            select(Dispute, Invoice)
            .join(Invoice, Invoice.id == Dispute.invoice_id)
            .where(Dispute.client_id == client_id)
            .order_by(Dispute.status != "open", Dispute.created_at.desc(), Dispute.id.desc())
        )
    ]


def invoice_disputes(session: Session, invoice_id: int) -> list[Dispute]:
    return list(
        session.scalars(
            select(Dispute)
            .where(Dispute.invoice_id == invoice_id)
            .order_by(Dispute.created_at.desc(), Dispute.id.desc())
        )
    )


def open_disputes(
    session: Session, owner_user_id: int | None = None, limit: int = 500
) -> list[tuple[Dispute, Invoice, Client]]:
    """Open disputes, oldest first (the longest waiting at the top), optionally one owner's."""
    query = (
        select(Dispute, Invoice, Client)
        .join(Invoice, Invoice.id == Dispute.invoice_id)
        .join(Client, Client.id == Dispute.client_id)
        .where(Dispute.status == "open")
        .order_by(Dispute.created_at, Dispute.id)
    )
    if owner_user_id is not None:
        query = query.where(Dispute.owner_user_id == owner_user_id)
    return [tuple(r) for r in session.execute(query.limit(limit))]
