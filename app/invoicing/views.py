"""Invoice pages: draft from a project's milestones, the tax invoice, issue and void."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.extensions import db
from app.invoicing import services
from app.pages import render_page, toast
from app.projects import services as projects
from app.projects.models import Milestone
from tenants.context import require_permission

blueprint = Blueprint("invoicing", __name__, url_prefix="/t/<tenant_slug>/invoices")
TAX_INVOICE_COUNTRIES = ("IN", "AU")


def _today() -> date:
    return datetime.now(ZoneInfo(g.tenant.time_zone)).date()


def _invoice_or_404(invoice_id: int):
    # The session is bound to the URL's tenant: another tenant's id finds nothing here.
    invoice = services.get_invoice(db.session, invoice_id)
    if invoice is None:
        abort(404)
    return invoice


@blueprint.post("/from-project/<int:project_id>")
@require_permission("invoices.edit")
def draft(project_id: int):
    project = projects.get_project(db.session, project_id)
    if project is None or project.client.deleted_at is not None:
        abort(404)
    ids = [int(v) for v in request.form.getlist("milestone_ids") if v.isdigit()]
    milestones = [m for m in (db.session.get(Milestone, i) for i in ids) if m is not None]
    try:
        invoice = services.draft_from_milestones(
            db.session, g.tenant, project, milestones,
            tax_rate=request.form.get("tax_rate") or None,
            hsn_sac=request.form.get("hsn_sac") or "9983",
        )  # fmt: skip
    except services.InvoiceError as error:
        toast(str(error), "error")
        return redirect(url_for("projects.detail", project_id=project.id), 303)
    toast("Draft invoice ready. Check it, then issue it.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)


@blueprint.get("/<int:invoice_id>")
@require_permission("invoices.view")
def detail(invoice_id: int):
    invoice = _invoice_or_404(invoice_id)
    from app.clients.models import Client
    from app.projects.models import Project

    return render_page(
        "invoicing/detail.html", invoice=invoice, client=db.session.get(Client, invoice.client_id),
        project=db.session.get(Project, invoice.project_id) if invoice.project_id else None,
        tax_invoice=g.tenant.country.upper() in TAX_INVOICE_COUNTRIES,
        place_name=services.state_name(invoice.place_of_supply),
    )  # fmt: skip


@blueprint.post("/<int:invoice_id>/issue")
@require_permission("invoices.edit")
def issue(invoice_id: int):
    invoice = _invoice_or_404(invoice_id)
    try:
        services.issue(db.session, g.tenant, invoice, _today(), user_id=current_user.id)
    except services.InvoiceError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number} issued, due {invoice.due_date.strftime('%d %b %Y')}.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)


@blueprint.post("/<int:invoice_id>/void")
@require_permission("invoices.edit")
def void(invoice_id: int):
    invoice = _invoice_or_404(invoice_id)
    try:
        services.void(db.session, invoice, user_id=current_user.id)
    except services.InvoiceError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number or 'draft'} is void.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)
