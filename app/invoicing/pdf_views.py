"""The invoice as a PDF download: the stored file when it is current, else rendered now (and
stored, for an issued invoice), so a download never waits for a worker. Drafts and void
invoices are previews, rendered each time and never stored."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g

from app.extensions import db
from app.invoicing import pdf
from app.invoicing.models import Invoice
from tenants.context import require_permission

blueprint = Blueprint("invoice_pdfs", __name__, url_prefix="/t/<tenant_slug>/invoices")


@blueprint.get("/<int:invoice_id>/pdf")
@require_permission("invoices.view")
def download(invoice_id: int):
    # The session is bound to the URL's tenant: another tenant's id finds nothing here.
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    data = pdf.current_pdf(db.session, g.tenant, invoice)
    response = Response(data, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "attachment", filename=pdf.pdf_filename(invoice))
    # Invoices are private and change (payments, void): never kept by a shared cache.
    response.headers["Cache-Control"] = "private, no-store"
    return response
