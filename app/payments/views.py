"""Payment pages: record a payment, allocate it across invoices, un-allocate, TDS certificates."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, redirect, request, url_for
from flask_login import current_user

from app.clients import services as clients
from app.clients.models import Client
from app.clients.picker import SEARCH_FIELD, client_picker
from app.core.clock import tenant_today
from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.core.request_input import row_id
from app.core.terminology import worded
from app.custom_fields import services as custom_fields
from app.custom_fields.views import record_section, section_context
from app.extensions import db
from app.invoicing.balance import PAYABLE_STATUSES, outstanding
from app.invoicing.models import Invoice
from app.payments import listing, services
from app.payments.models import PAYMENT_METHODS, PaymentAllocation
from tenants.context import can, require_permission

blueprint = Blueprint("payments", __name__, url_prefix="/t/<tenant_slug>/payments")


def _client_or_404(client_id):
    client = clients.get_client(db.session, client_id) if client_id else None
    if client is None:
        abort(404)
    return client


def client_tab_context(client: Client) -> dict:
    """What the client page's Payments tab (templates/payments/_client_tab.html) shows."""
    return {
        "balance": services.client_balance(db.session, client),
        "payments": services.client_payments(db.session, client.id),
    }


def invoice_panel(invoice: Invoice) -> dict:
    """The invoice page's payments (templates/payments/_invoice_panel.html): each live
    allocation with its payment, and the way to record one."""
    return {
        "payments_panel": {
            "template": "payments/_invoice_panel.html",
            "allocations": services.invoice_allocations(db.session, invoice.id),
            "methods": services.METHOD_LABELS,
            "payable": invoice.status in PAYABLE_STATUSES,
        }
    }


def _payment_or_404(payment_id: int):
    # The session is bound to the URL's tenant: another tenant's id finds nothing here.
    payment = services.get_payment(db.session, payment_id)
    if payment is None:
        abort(404)
    return payment


def _allocation_or_404(payment, allocation_id: int) -> PaymentAllocation:
    allocation = db.session.get(PaymentAllocation, allocation_id)
    if allocation is None or allocation.payment_id != payment.id:
        abort(404)
    return allocation


def _methods() -> list[tuple[str, str]]:
    return [(m, services.METHOD_LABELS[m]) for m in PAYMENT_METHODS]


def _filters() -> listing.PaymentFilters:
    return listing.PaymentFilters.from_args(
        request.args, custom_fields.list_fields(db.session, "payments")
    )


@blueprint.get("/")
@require_permission("invoices.view")
def index():
    filters = _filters()
    page_number = row_id(request.args.get("page")) or 1
    return render_page(
        "payments/index.html",
        block="payment_results",
        page=listing.list_payments(db.session, filters, page_number),
        count_cap=listing.COUNT_CAP,
        filters=filters,
        picker=client_picker(
            db.session, request.args.get(SEARCH_FIELD), filters.client_id, every_client=True
        ),
        methods=_methods(),
        statuses=listing.STATUSES,
        method_labels=services.METHOD_LABELS,
    )


@blueprint.get("/export.csv")
@require_permission("invoices.view")
def export():
    filters = _filters()
    today = tenant_today(db.session)
    return Response(
        listing.export_csv(db.session, filters, services.METHOD_LABELS),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="payments-{today}.csv"'},
    )


def _payable_invoice_or_404(invoice_id: int | None) -> Invoice | None:
    """The invoice a payment is recorded from, if any: one of this tenant's that can take a
    payment (the session is bound to the URL's tenant)."""
    if invoice_id is None:
        return None
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.status not in PAYABLE_STATUSES:
        abort(404)
    return invoice


@blueprint.route("/new", methods=["GET", "POST"])
@require_permission("payments.record")
@once_per_form_key
def new():
    """Record a payment of a client (then allocate it), or, from an invoice's page, a payment
    of that invoice: pre-filled with what it still owes and applied to it at once."""
    invoice = _payable_invoice_or_404(row_id(request.values.get("invoice_id")))
    client_id = invoice.client_id if invoice else row_id(request.values.get("client_id"))
    client = _client_or_404(client_id)
    fields = custom_fields.definitions(db.session, "payments")
    values = {
        "received_on": tenant_today(db.session).isoformat(),
        "method": "bank_transfer",
        **custom_fields.form_values(fields, {f.key: f.default_value for f in fields}),
    }
    if invoice is not None:
        values["amount"] = str(outstanding(db.session, invoice))
    errors: dict[str, str] = {}
    if request.method == "POST":
        submitted = custom_fields.submitted_from_form(fields, request.form)
        posted = request.form.to_dict()
        values = {**posted, **custom_fields.form_values(fields, submitted)}
        try:
            if invoice is not None:
                payment = services.record_payment_for_invoice(
                    db.session, invoice, posted, user_id=current_user.id, custom=submitted
                )
            else:
                payment = services.record_payment(db.session, client, posted, submitted)
        except services.PaymentInvalid as invalid:
            errors = invalid.errors
        else:
            if invoice is not None:
                toast(f"Payment recorded against invoice {invoice.number}.")
                return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)
            toast(worded("Payment recorded. Allocate it to the {client}'s invoices."))
            return redirect(url_for("payments.detail", payment_id=payment.id), 303)
    return render_page(
        "payments/new.html",
        status=422 if errors else 200,
        client=client,
        invoice=invoice,
        values=values,
        errors=errors,
        methods=_methods(),
        custom_fields=fields,
        members=custom_fields.member_choices(db.session),
    )


def _detail(
    payment,
    status: int = 200,
    error: str | None = None,
    submitted=None,
    void_error: str | None = None,
):
    client = _client_or_404(payment.client_id)
    open_ = services.open_invoices(db.session, payment.client_id)
    suggestion, _ = services.suggest_allocation(db.session, payment)
    suggested = dict(suggestion)
    rows = []
    for item in open_:
        key = str(item.invoice.id)
        if submitted is not None:
            row = {k: submitted.get(f"{k}_{key}", "") for k in ("cash", "tds", "section", "rate")}
        else:
            row = {
                "cash": str(suggested.get(item.invoice.id, "")),
                "tds": "",
                "section": "",
                "rate": "",
            }
        rows.append((item, row))
    allocations = services.all_allocations(db.session, payment)
    invoices = (
        {
            i.id: i
            for i in db.session.query(Invoice).filter(
                Invoice.id.in_([a.invoice_id for a in allocations])
            )
        }
        if allocations
        else {}
    )
    return render_page(
        "payments/detail.html",
        status=status,
        payment=payment,
        client=client,
        rows=rows,
        allocations=allocations,
        invoices=invoices,
        error=error,
        void_error=void_error,
        unapplied=services.unapplied(db.session, payment),
        method_label=services.METHOD_LABELS.get(payment.method, payment.method),
        custom_section=section_context(
            "payments", payment, url=_custom_url(payment), may_edit=can("payments.record")
        ),
    )


def _custom_url(payment) -> str:
    return url_for("payments.custom_section", payment_id=payment.id)


@blueprint.route("/<int:payment_id>/custom-fields", methods=["GET", "POST"])
@require_permission("invoices.view")
def custom_section(payment_id: int):
    """The payment's own fields (Settings → Custom fields): shown, or edited in place (a void
    payment's too: they are the workspace's notes, not the money)."""
    payment = _payment_or_404(payment_id)
    return record_section(
        "payments",
        payment,
        url=_custom_url(payment),
        page_url=url_for("payments.detail", payment_id=payment.id),
        title=f"Payment of {payment.received_on:%d %b %Y}",
        may_edit=can("payments.record"),
    )


@blueprint.get("/<int:payment_id>")
@require_permission("invoices.view")
def detail(payment_id: int):
    return _detail(_payment_or_404(payment_id))


@blueprint.post("/<int:payment_id>/allocate")
@require_permission("payments.record")
def allocate(payment_id: int):
    payment = _payment_or_404(payment_id)
    form = request.form
    rows = [
        (
            invoice_id,
            form.get(f"cash_{invoice_id}"),
            form.get(f"tds_{invoice_id}"),
            form.get(f"section_{invoice_id}"),
            form.get(f"rate_{invoice_id}"),
        )
        for invoice_id in form.getlist("invoice_ids")
    ]
    try:
        created = services.allocate(db.session, payment, rows, user_id=current_user.id)
    except services.PaymentError as error:
        return _detail(payment, 422, str(error), form)
    toast(f"Allocated to {len(created)} invoice{'s' if len(created) != 1 else ''}.")
    return redirect(url_for("payments.detail", payment_id=payment.id), 303)


@blueprint.post("/<int:payment_id>/allocations/<int:allocation_id>/remove")
@require_permission("payments.record")
def unallocate(payment_id: int, allocation_id: int):
    payment = _payment_or_404(payment_id)
    allocation = _allocation_or_404(payment, allocation_id)
    try:
        services.unallocate(db.session, allocation, user_id=current_user.id)
    except services.PaymentError as error:
        toast(str(error), "error")
    else:
        toast("Allocation removed; the invoice owes that amount again.")
    return redirect(url_for("payments.detail", payment_id=payment.id), 303)


@blueprint.post("/<int:payment_id>/allocations/<int:allocation_id>/certificate")
@require_permission("payments.record")
def certificate(payment_id: int, allocation_id: int):
    payment = _payment_or_404(payment_id)
    allocation = _allocation_or_404(payment, allocation_id)
    raw = (request.form.get("received_on") or "").strip()
    try:
        day = date.fromisoformat(raw) if raw else tenant_today(db.session)
    except ValueError:
        toast("Enter the certificate's date as YYYY-MM-DD.", "error")
        return redirect(url_for("payments.detail", payment_id=payment.id), 303)
    try:
        services.mark_tds_certificate(db.session, allocation, day)
    except services.PaymentError as error:
        toast(str(error), "error")
    else:
        toast("TDS certificate marked as received.")
    return redirect(url_for("payments.detail", payment_id=payment.id), 303)


@blueprint.post("/<int:payment_id>/void")
@require_permission("payments.record")
def void(payment_id: int):
    payment = _payment_or_404(payment_id)
    try:
        services.void_payment(
            db.session, payment, request.form.get("reason", ""), user_id=current_user.id
        )
    except services.PaymentError as error:
        return _detail(payment, 422, void_error=str(error))
    toast("Payment voided; the invoices it settled owe that amount again.")
    return redirect(url_for("payments.detail", payment_id=payment.id), 303)
