"""Invoices and credit notes as PDF downloads. An invoice: the stored file when it is current,
else rendered now (and stored, for an issued invoice), so a download never waits for a worker;
drafts and void invoices are previews, rendered each time and never stored. A credit note is
rendered on each download: it never changes once issued and is rarely printed."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g

from app.extensions import db
from app.invoicing import credits, pdf
from app.invoicing.models import Invoice
from tenants.context import require_permission

blueprint = Blueprint("invoice_pdfs", __name__, url_prefix="/t/<tenant_slug>/invoices")


def _pdf_response(data: bytes, filename: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    # Invoices are private and change (payments, void): never kept by a shared cache.
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.get("/<int:invoice_id>/pdf")
@require_permission("invoices.view")
def download(invoice_id: int):
    # The session is bound to the URL's tenant: another tenant's id finds nothing here.
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    data = pdf.current_pdf(db.session, g.tenant, invoice)
    return _pdf_response(data, pdf.pdf_filename(invoice))


@blueprint.get("/credit-notes/<int:credit_note_id>/pdf")
@require_permission("invoices.view")
def download_credit_note(credit_note_id: int):
    note = credits.get_credit_note(db.session, credit_note_id)  # this tenant's only, as above
    if note is None:
        abort(404)
    data = pdf.render_credit_note_pdf(db.session, g.tenant, note)
    return _pdf_response(data, pdf.pdf_filename(note))
