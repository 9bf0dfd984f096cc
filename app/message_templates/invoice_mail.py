"""Sending an invoice, or a reminder about it, to one of the client's contacts: e-mail with
the PDF attached, a WhatsApp template with the PDF as its document header, or an SMS, each
written from the tenant's template for its channel, purpose and language (hence here, with the
templates; the invoice page calls it).

The message is written to the outbox in the request's transaction and goes out through the
workers (consent, the sending window and the provider's rates are checked at send time). The
PDF is copied to a file of the message's own, so a later re-render of the invoice (after a
payment) cannot delete what a queued message still has to attach. Reminders (the notice
levels) wait for the tenant's sending window in the recipient's day; the invoice itself goes
at once. A form's one-time key makes a double click one message."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.models import Client, Contact
from app.clients.services import may_contact
from app.core.storage import get_storage, save_in_transaction, tenant_key
from app.core.terminology import worded
from app.invoicing.balance import outstanding
from app.invoicing.models import Invoice
from app.invoicing.pdf import current_pdf, pdf_filename
from app.invoicing.services import record_sending
from app.message_templates.rendering import TemplateProblem, message_context, render_for_channel
from app.message_templates.services import language_of, template_for
from app.outbox.composing import Composed
from app.outbox.services import queue_message, recipient_time_zone

PURPOSES = {
    "invoice": "The invoice",
    "notice_1": "1st notice (reminder)",
    "notice_2": "2nd notice",
    "notice_final": "Final notice",
    "notice_legal": "Legal notice",
}
CHANNEL_NAMES = {"email": "E-mail", "whatsapp": "WhatsApp", "sms": "SMS"}
SENDABLE_STATUSES = ("issued", "sent", "overdue", "partly_paid", "disputed")
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# The name under which invoice messages are composed again when they go out (app.outbox.composing).
COMPOSER = "invoice"


class SendError(ValueError):
    """What to fix before this can be sent, by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class Recipient:
    contact: Contact
    channels: dict[str, bool]  # channel -> may be used now (consent and an address)


def recipients(session: Session, invoice: Invoice) -> list[Recipient]:
    """The client's contacts, billing contacts first, with the channels each may get."""
    contacts = session.scalars(
        select(Contact)
        .where(Contact.client_id == invoice.client_id, Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    ).all()
    contacts = sorted(contacts, key=lambda c: "billing" not in (c.roles or []))
    return [
        Recipient(contact, {channel: _reachable(contact, channel) for channel in CHANNEL_NAMES})
        for contact in contacts
    ]


def _reachable(contact: Contact, channel: str) -> bool:
    if channel == "email" and contact.email_bounced_at is not None:
        return False
    return may_contact(contact, channel)


def send_about_invoice(
    session: Session,
    tenant,
    invoice: Invoice,
    *,
    contact_id: int,
    channel: str,
    purpose: str,
    form_key: str,
    user_id: int | None,
) -> int | None:
    """Queue the invoice (or a reminder about it) to a contact. Returns the outbox id, or None
    when this form was already sent (the same form key)."""
    errors = {}
    if invoice.status not in SENDABLE_STATUSES:
        errors["purpose"] = "Only an issued invoice can be sent."
    if purpose not in PURPOSES:
        errors["purpose"] = "Choose what to send."
    if channel not in CHANNEL_NAMES:
        errors["channel"] = "Choose e-mail, WhatsApp or SMS."
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact is None or contact.client_id != invoice.client_id or contact.deleted_at:
        errors["contact_id"] = worded("Choose one of the {client}'s contacts.")
    elif channel in CHANNEL_NAMES and not _reachable(contact, channel):
        errors["channel"] = _unreachable_reason(contact, channel)
    if not FORM_KEY.match(form_key or ""):
        errors["form_key"] = "This form has expired; reload the page."
    if errors:
        raise SendError(errors)

    client = session.get(Client, invoice.client_id)
    try:
        rendered = _render(session, tenant, invoice, client, contact, channel, purpose)
    except TemplateProblem as problem:
        raise SendError({"purpose": str(problem)}) from problem
    if channel == "whatsapp" and not rendered.whatsapp.get("name"):
        raise SendError({"channel": "This WhatsApp template has no approved template name."})

    # Written now for the record and the preview, and again with the figures of the moment it
    # goes out (compose_invoice_message).
    payload: dict = {"purpose": purpose, "invoice_id": invoice.id, "composer": COMPOSER}
    if channel in ("email", "whatsapp"):
        payload["attachments"] = [_copy_of_pdf(session, tenant, invoice, form_key)]
    if channel == "whatsapp":
        document = {k: payload["attachments"][0][k] for k in ("key", "filename")}
        payload["whatsapp"] = {**rendered.whatsapp, "document": document}
    if channel == "sms":
        payload["sms"] = rendered.sms
    message_id = queue_message(
        session,
        channel=channel,
        tenant_id=tenant.id,
        client_id=client.id,
        contact_id=contact.id,
        created_by=user_id,
        to=contact.email if channel == "email" else contact.phone,
        subject=rendered.subject or f"{PURPOSES[purpose]}: {invoice.number}",
        text_body=rendered.text,
        html_body=rendered.html,
        payload=payload,
        idempotency_key=f"t{tenant.id}:invoice:{invoice.id}:{purpose}:{channel}:{form_key}",
        windowed=purpose != "invoice",
        recipient_time_zone=recipient_time_zone(
            contact.phone if channel in ("whatsapp", "sms") else None, client.country, tenant
        ),
    )
    if purpose == "invoice" and message_id is not None:  # not a form sent twice
        record_sending(session, invoice, channel)
    return message_id


def _render(session: Session, tenant, invoice: Invoice, client, contact, channel, purpose):
    """The message from the tenant's template and the invoice's figures as they are now (what
    it still owes, its due date, its interest to today). Raises TemplateProblem naming the
    template."""
    template = template_for(session, channel, purpose, language_of(contact, client))
    context = message_context(
        session,
        tenant,
        client,
        contact,
        invoice,
        notice_level=None if purpose == "invoice" else purpose,
        language=template.language,
    )
    try:
        return render_for_channel(template, context)
    except TemplateProblem as problem:
        raise TemplateProblem(f"The {template.name} template cannot be used: {problem}") from None


def compose_invoice_message(session: Session, tenant, message) -> Composed:
    """A queued invoice message as it goes out: written again from the invoice's figures of
    this moment, so a reminder held for the sending window, retried after a failure or sent
    again quotes what is still owed and the current due date. A reminder about an invoice
    that no longer owes anything (paid, credited, written off, voided meanwhile) is
    withdrawn. The attached PDF is the copy made when it was queued (see `_copy_of_pdf`)."""
    payload = message.payload or {}
    purpose = payload.get("purpose", "invoice")
    invoice = session.get(Invoice, payload["invoice_id"])
    contact = session.get(Contact, message.contact_id) if message.contact_id else None
    if invoice is None or contact is None:
        return Composed(withdrawn="its invoice or contact no longer exists")
    if purpose != "invoice" and (
        invoice.status not in SENDABLE_STATUSES or outstanding(session, invoice) <= 0
    ):
        return Composed(withdrawn=f"invoice {invoice.number} owes nothing now")
    client = session.get(Client, invoice.client_id)
    try:
        rendered = _render(session, tenant, invoice, client, contact, message.channel, purpose)
    except TemplateProblem as problem:
        return Composed(withdrawn=str(problem))
    changed = {}
    if message.channel == "whatsapp":
        changed["whatsapp"] = {**payload.get("whatsapp", {}), **rendered.whatsapp}
    if message.channel == "sms":
        changed["sms"] = rendered.sms
    return Composed(
        subject=rendered.subject or message.subject,
        text=rendered.text,
        html=rendered.html,
        payload=changed,
    )


def _unreachable_reason(contact: Contact, channel: str) -> str:
    if channel == "email":
        if not contact.email:
            return f"{contact.full_name} has no e-mail address."
        if contact.email_bounced_at is not None:
            return f"{contact.email} bounced; correct the address first."
        return f"{contact.full_name} opted out of e-mail."
    if not contact.phone:
        return f"{contact.full_name} has no phone number."
    name = CHANNEL_NAMES[channel]
    return f"{contact.full_name} has not agreed to {name} messages (record their opt-in first)."


def _copy_of_pdf(session: Session, tenant, invoice: Invoice, form_key: str) -> dict:
    data = current_pdf(session, tenant, invoice)
    filename = pdf_filename(invoice)
    # A folder per form (a digest: the key itself may start with "-", which keys refuse).
    folder = hashlib.sha256(form_key.encode()).hexdigest()[:32]
    key = tenant_key(tenant.id, "messages", "invoices", invoice.id, folder, filename)
    save_in_transaction(session, get_storage(current_app), key, io.BytesIO(data))
    return {"key": key, "filename": filename, "content_type": "application/pdf"}
