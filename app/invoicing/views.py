"""Invoice pages: the list, drafts from a project's milestones or by hand, the tax invoice, its
lifecycle (issue, mark sent, write off, void) and credit notes. Areas above invoicing add
panels to the invoice page (collections: its dispute; message templates: sending it) and own
the routes those panels post to."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from flask import (
    Blueprint,
    abort,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from app.clients import services as clients
from app.clients.models import Client
from app.clients.picker import SEARCH_FIELD, client_picker
from app.core.clock import tenant_today
from app.core.downloads import csv_download, xlsx_download
from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.core.prepared import prepared_statements
from app.core.regions import state_name
from app.core.request_input import row_id
from app.core.terminology import term
from app.custom_fields import services as custom_fields
from app.extensions import db
from app.invoicing import credits, exports, forms, listing, services
from app.invoicing.balance import statement
from app.invoicing.models import Invoice
from app.projects import services as projects
from app.projects.models import Milestone, Project
from tenants.context import require_permission

blueprint = Blueprint("invoicing", __name__, url_prefix="/t/<tenant_slug>/invoices")
TAX_INVOICE_COUNTRIES = ("IN", "AU")
STATUS_LABELS = {
    "open": "Open (still owed)",
    "overdue": "Overdue",
    "draft": "Draft",
    "issued": "Issued",
    "sent": "Sent",
    "partly_paid": "Partly paid",
    "paid": "Paid",
    "disputed": "Disputed",
    "written_off": "Written off",
    "void": "Void",
}
# Panels an area above invoicing adds to the invoice page: each registers a function of the
# invoice giving its part of the page's template context when the app is created.
_PANELS: list[Callable[[Invoice], dict]] = []


def register_panel(context: Callable[[Invoice], dict]) -> None:
    if context not in _PANELS:
        _PANELS.append(context)


def invoice_or_404(invoice_id: int) -> Invoice:
    # The session is bound to the URL's tenant: another tenant's id finds nothing here.
    invoice = services.get_invoice(db.session, invoice_id)
    if invoice is None:
        abort(404)
    return invoice


def _back(invoice) -> str:
    return url_for("invoicing.detail", invoice_id=invoice.id)


# The list -----------------------------------------------------------------------------------


@blueprint.get("/")
@require_permission("invoices.view")
def index():
    filters = listing.InvoiceFilters.from_args(
        request.args, custom_fields.list_fields(db.session, "invoices")
    )
    today = tenant_today(db.session)
    with prepared_statements(db.session, enabled=not (filters.q or filters.custom)):
        page = listing.list_invoices(db.session, filters, today, after=request.args.get("after"))
        client = clients.get_client(db.session, filters.client_id) if filters.client_id else None
        return render_page(
            "invoicing/index.html",
            block="invoice_results",
            page=page,
            filters=filters,
            client=client,
            status_labels=STATUS_LABELS,
        )


@blueprint.get("/export.<any(csv, xlsx):fmt>")
@require_permission("invoices.view")
def export(fmt: str):
    """The list as filtered, every page of it. CSV streams (any size); XLSX is built in a
    spooled file first, a write-only workbook holding no more than a row in memory."""
    args = request.args.to_dict()
    filename = exports.export_filename(g.tenant, fmt)

    def filters_read_by(session):
        return listing.InvoiceFilters.from_args(
            args, custom_fields.list_fields(session, "invoices")
        )

    if fmt == "xlsx":
        return xlsx_download(
            lambda out: exports.export_xlsx(
                db.session,
                filters_read_by(db.session),
                tenant_today(db.session),
                STATUS_LABELS,
                out,
            ),
            filename,
        )
    return csv_download(
        g.tenant.id,
        lambda session: exports.export_csv(
            session, filters_read_by(session), tenant_today(session), STATUS_LABELS
        ),
        filename,
    )


@blueprint.get("/client/<int:client_id>")
@require_permission("invoices.view")
def client_tab(client_id: int):
    """The client page's Invoices tab (loaded into the page by htmx): latest invoices, credit
    notes, and the way to the full list filtered by the client."""
    client = clients.get_client(db.session, client_id)
    if client is None:
        abort(404)
    filters = listing.InvoiceFilters(client_id=client.id)
    page = listing.list_invoices(db.session, filters, tenant_today(db.session), page_size=10)
    return render_template(
        "invoicing/_client_tab.html",
        client=client,
        page=page,
        credit_notes=credits.credit_notes_of_client(db.session, client.id),
    )


# Drafts -------------------------------------------------------------------------------------


@blueprint.post("/from-project/<int:project_id>")
@require_permission("invoices.edit")
@once_per_form_key
def draft(project_id: int):
    project = projects.get_project(db.session, project_id)
    if project is None or project.client.deleted_at is not None:
        abort(404)
    ids = [found for found in map(row_id, request.form.getlist("milestone_ids")) if found]
    milestones = list(db.session.scalars(select(Milestone).where(Milestone.id.in_(ids))))
    try:
        invoice = services.draft_from_milestones(
            db.session,
            g.tenant,
            project,
            milestones,
            tax_rate=request.form.get("tax_rate") or None,
            hsn_sac=request.form.get("hsn_sac") or "9983",
        )
    except services.InvoiceError as error:
        toast(str(error), "error")
        return redirect(url_for("projects.detail", project_id=project.id), 303)
    count = len(invoice.lines)
    toast(
        f"Draft invoice ready{f' with {count} ' + term('milestones') if count > 1 else ''}. "
        "Check it, then issue it."
    )
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)


def _default_rate() -> str:
    return str(services.default_tax_rate(g.tenant.country).normalize())


@blueprint.route("/new", methods=["GET", "POST"])
@require_permission("invoices.edit")
@once_per_form_key
def new():
    """An invoice by hand: a client and lines. "Add line" works without JavaScript too (it
    submits the form and gets it back with one more row)."""
    client_id = row_id(request.values.get("client_id"))
    client = clients.get_client(db.session, client_id) if client_id else None
    lines = forms.manual_lines(request.form) if request.method == "POST" else []
    errors: dict[str, str] = {}
    if request.method == "POST" and "add_line" not in request.form:
        try:
            reverse_charge = request.form.get("reverse_charge") == "1"
            invoice = services.draft_by_hand(
                db.session, g.tenant, client, lines, reverse_charge, _custom_submitted()
            )
        except services.InvoiceInvalid as invalid:
            errors = invalid.errors
        except services.InvoiceError as error:
            errors = {"client_id": str(error)}
        else:
            toast("Draft invoice ready. Check it, then issue it.")
            return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)
    return _invoice_form(None, client_id, client, lines, errors, request.form.get("reverse_charge"))


@blueprint.route("/<int:invoice_id>/edit", methods=["GET", "POST"])
@require_permission("invoices.edit")
def edit(invoice_id: int):
    """Change a draft's client, lines and reverse charge (never an issued invoice's)."""
    invoice = invoice_or_404(invoice_id)
    if invoice.status != "draft":
        toast("Only drafts can be changed. Correct an issued invoice with a credit note.", "error")
        return redirect(_back(invoice), 303)
    if request.method == "POST":
        client_id = row_id(request.form.get("client_id"))
        lines = forms.manual_lines(request.form)
        reverse_charge = request.form.get("reverse_charge") == "1"
    else:
        client_id = invoice.client_id
        lines = forms.lines_of(invoice)
        reverse_charge = invoice.reverse_charge
    client = clients.get_client(db.session, client_id) if client_id else None
    errors: dict[str, str] = {}
    if request.method == "POST" and "add_line" not in request.form:
        try:
            services.update_draft(
                db.session, g.tenant, invoice, client, lines, reverse_charge, _custom_submitted()
            )
        except services.InvoiceInvalid as invalid:
            errors = invalid.errors
        except services.InvoiceError as error:
            errors = {"client_id": str(error)}
        else:
            toast("Draft saved. Check it, then issue it.")
            return redirect(_back(invoice), 303)
    return _invoice_form(invoice, client_id, client, lines, errors, reverse_charge)


def _custom_submitted() -> dict:
    return custom_fields.submitted_from_form(
        custom_fields.definitions(db.session, "invoices"), request.form
    )


def _invoice_form(invoice, client_id, client, lines, errors, reverse_charge):
    """The invoice form of a new invoice or a draft (`invoice`) as typed, with its errors;
    "Add line" (no JavaScript) gives it back with one more row."""
    rows = forms.line_rows(lines, errors, _default_rate())
    fields = custom_fields.definitions(db.session, "invoices")
    if request.method == "POST":
        stored = custom_fields.submitted_from_form(fields, request.form)
    elif invoice is not None:
        stored = invoice.custom_fields
    else:
        stored = {f.key: f.default_value for f in fields}
    if "add_line" in request.form:
        rows.append(forms.new_row(_default_rate()))
    return render_page(
        "invoicing/new.html",
        status=422 if errors else 200,
        invoice=invoice,
        client=client,
        rows=rows,
        errors=errors,
        reverse_charge=reverse_charge,
        picker=client_picker(
            db.session, request.values.get(SEARCH_FIELD), client_id, every_client=False
        ),
        default_rate=_default_rate(),
        custom_fields=fields,
        custom_values=custom_fields.form_values(fields, stored),
        required_for_client=clients.invoice_fields_required(
            db.session, client.id if client else None
        ),
        members=custom_fields.member_choices(db.session),
    )


@blueprint.get("/new/line")
@require_permission("invoices.edit")
def new_line():
    """One blank line row for the hand-made invoice (htmx "Add line"); with ?remove=1 an empty
    answer, which htmx swaps in for the row being removed."""
    if request.args.get("remove"):
        return ""
    return render_template("invoicing/_line.html", row=forms.new_row(_default_rate()))


# One invoice --------------------------------------------------------------------------------


def invoice_page(
    invoice: Invoice,
    status: int = 200,
    errors: dict | None = None,
    values: dict | None = None,
    *,
    client: Client | None = None,
    project: Project | None = None,
):
    """The invoice page; the routes of its panels render it again with their form's errors.
    `client` and `project`: the invoice's, when the caller has read them already."""
    owing = invoice.status not in ("draft", "void")
    figures = statement(db.session, invoice) if owing else None
    panels = {}
    for panel in _PANELS:
        panels.update(panel(invoice))
    return render_page(
        "invoicing/detail.html",
        status=status,
        invoice=invoice,
        client=client or db.session.get(Client, invoice.client_id),
        project=project
        or (db.session.get(Project, invoice.project_id) if invoice.project_id else None),
        tax_invoice=g.tenant.country.upper() in TAX_INVOICE_COUNTRIES,
        place_name=state_name(invoice.place_of_supply),
        statement=figures,
        outstanding=figures.owed if owing else None,
        credit_notes=credits.credit_notes_of_invoice(db.session, invoice.id),
        errors=errors or {},
        values=values or {},
        today=tenant_today(db.session),
        custom_rows=custom_fields.labelled_values(
            db.session, "invoices", invoice.custom_fields or {}
        ),
        **panels,
    )


@blueprint.get("/<int:invoice_id>")
@require_permission("invoices.view")
def detail(invoice_id: int):
    # Every statement of the page reads by the invoice's id (its lines, balance, payments, pay
    # links, sync links): of a fixed shape, none a search, so planned once per connection.
    with prepared_statements(db.session):
        found = services.invoice_for_page(db.session, invoice_id)
        if found is None:
            abort(404)
        invoice, client, project = found
        return invoice_page(invoice, client=client, project=project)


@blueprint.post("/<int:invoice_id>/issue")
@require_permission("invoices.edit")
def issue(invoice_id: int):
    invoice = invoice_or_404(invoice_id)
    raw = (request.form.get("issue_date") or "").strip()
    try:
        chosen = date.fromisoformat(raw) if raw else None
    except ValueError:
        errors = {"issue_date": "Enter the invoice date as a date, e.g. 2027-03-31."}
        return invoice_page(invoice, 422, errors, request.form.to_dict())
    try:
        today = tenant_today(db.session)
        services.issue(
            db.session, g.tenant, invoice, today, user_id=current_user.id, issue_date=chosen
        )
    except services.InvoiceInvalid as invalid:
        return invoice_page(invoice, 422, invalid.errors, request.form.to_dict())
    except services.InvoiceError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number} issued, due {invoice.due_date.strftime('%d %b %Y')}.")
    return redirect(_back(invoice), 303)


@blueprint.post("/<int:invoice_id>/void")
@require_permission("invoices.edit")
def void(invoice_id: int):
    invoice = invoice_or_404(invoice_id)
    try:
        services.void(db.session, invoice, user_id=current_user.id)
    except services.InvoiceError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number or 'draft'} is void.")
    return redirect(_back(invoice), 303)


@blueprint.post("/<int:invoice_id>/sent")
@require_permission("invoices.edit")
def mark_sent(invoice_id: int):
    invoice = invoice_or_404(invoice_id)
    try:
        services.mark_sent(db.session, invoice)
    except services.InvoiceError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number} marked as sent.")
    return redirect(_back(invoice), 303)


@blueprint.post("/<int:invoice_id>/write-off")
@require_permission("invoices.edit")
def write_off(invoice_id: int):
    invoice = invoice_or_404(invoice_id)
    try:
        invoice = services.write_off(db.session, invoice, request.form.get("write_off_reason", ""))
    except services.InvoiceInvalid as invalid:
        return invoice_page(invoice, 422, invalid.errors, request.form.to_dict())
    except services.InvoiceError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number}: {invoice.written_off_amount} written off.")
    return redirect(_back(invoice), 303)


# Credit notes -------------------------------------------------------------------------------


@blueprint.post("/<int:invoice_id>/credit-notes")
@require_permission("invoices.edit")
@once_per_form_key
def new_credit_note(invoice_id: int):
    invoice = invoice_or_404(invoice_id)
    amount = request.form.get("credit_amount", "")
    try:
        note = credits.issue_credit_note(
            db.session,
            g.tenant,
            invoice,
            amount,
            request.form.get("credit_reason", ""),
            tenant_today(db.session),
            user_id=current_user.id,
        )
    except services.InvoiceInvalid as invalid:
        errors = {f"credit_{k}": v for k, v in invalid.errors.items()}
        return invoice_page(invoice, 422, errors, request.form.to_dict())
    except services.InvoiceError as error:
        toast(str(error), "error")
        return redirect(_back(invoice), 303)
    toast(f"Credit note {note.number} issued.")
    return redirect(url_for("invoicing.credit_note", credit_note_id=note.id), 303)


@blueprint.get("/credit-notes/<int:credit_note_id>")
@require_permission("invoices.view")
def credit_note(credit_note_id: int):
    note = credits.get_credit_note(db.session, credit_note_id)
    if note is None:
        abort(404)
    invoice = db.session.get(Invoice, note.invoice_id)
    return render_page(
        "invoicing/credit_note.html",
        note=note,
        invoice=invoice,
        client=db.session.get(Client, note.client_id),
        tax_invoice=g.tenant.country.upper() in TAX_INVOICE_COUNTRIES,
        place_name=state_name(invoice.place_of_supply),
    )
