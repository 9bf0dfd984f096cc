"""Sending an invoice, or a reminder about it, from the invoice page: the panel's form (a
panel of invoicing's page, registered by `app.message_templates.hooks`) and the route it
posts to."""

from __future__ import annotations

import secrets

from flask import Blueprint, g, redirect, request, url_for
from flask_login import current_user

from app.core.pages import toast
from app.core.request_input import row_id
from app.core.terminology import reworded
from app.extensions import db
from app.invoicing.models import Invoice
from app.invoicing.views import invoice_or_404, invoice_page
from app.message_templates import invoice_mail
from app.settings.services import workspace_settings
from tenants.context import require_permission

blueprint = Blueprint("message_templates", __name__, url_prefix="/t/<tenant_slug>")


def invoice_send_panel(invoice: Invoice) -> dict:
    """The invoice page's "Send to the client" form: whom it can go to and by which channel,
    what can be sent, the workspace's sending window, and the key that makes it send once."""
    sendable = invoice.status in invoice_mail.SENDABLE_STATUSES
    return {
        "recipients": invoice_mail.recipients(db.session, invoice) if sendable else [],
        "send_purposes": invoice_mail.PURPOSES,
        "send_channels": invoice_mail.CHANNEL_NAMES,
        "workspace": workspace_settings(db.session, g.tenant.id),
        "form_key": secrets.token_urlsafe(18),
    }


@blueprint.post("/invoices/<int:invoice_id>/send")
@require_permission("messages.send")
def send_invoice(invoice_id: int):
    """Send the invoice, or a reminder about it, to a contact (through the outbox)."""
    invoice = invoice_or_404(invoice_id)
    form = request.form
    try:
        message_id = invoice_mail.send_about_invoice(
            db.session,
            g.tenant,
            invoice,
            contact_id=row_id(form.get("contact_id")) or 0,
            channel=form.get("channel", ""),
            purpose=form.get("purpose", ""),
            form_key=form.get("form_key", ""),
            user_id=current_user.id,
        )
    except invoice_mail.SendError as problem:
        return invoice_page(invoice, 422, problem.errors, form.to_dict())
    if message_id is None:
        toast("That was sent already.", "info")
    else:
        what = reworded(invoice_mail.PURPOSES[form["purpose"]].split(" (")[0])
        toast(
            f"{what} queued for {invoice_mail.CHANNEL_NAMES[form['channel']]}: "
            "see its progress under Messages."
        )
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)
