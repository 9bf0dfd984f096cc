"""The client's pay page (public: the signed token is its only key) and the workspace's side
of pay links (make, revoke, settings; the invoice page's panel).

Public routes: `/pay/<token>` (what is owed, the PDFs, bank details, the UPI QR, a Pay button
per connected gateway), `/pay/<token>/invoices/<id>.pdf`, `/pay/<token>/logo`,
`/pay/<token>/checkout/<provider>` (POST) and `/pay/<token>/done`. A forged or unknown token
answers the same 404 as any unknown page, naming no workspace; a revoked or expired one says
so, with the business's contact details. Rate-limited per address (PAY_PAGE_RATE_LIMIT)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from app.core.money import format_money
from app.core.pages import render_page, toast
from app.core.storage import get_storage
from app.extensions import db, limiter
from app.invoicing import pdf
from app.invoicing.models import Invoice
from app.invoicing.views import invoice_or_404
from app.paylinks import checkout, services, statement
from app.paylinks.forms import clean_amount
from app.paylinks.models import PayLink
from app.settings.services import logo_content_type, workspace_settings
from tenants.context import require_permission

pay_page = Blueprint("pay_page", __name__, url_prefix="/pay/<token>")
blueprint = Blueprint("paylinks", __name__, url_prefix="/t/<tenant_slug>/pay-links")

# The page's own policy: as the app's, but its forms may lead to a gateway's checkout (a form
# POST answered by a redirect to another origin is a form action to that origin).
PAY_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action"
)
# Where a Pay button's form may lead: the gateways' checkouts (https), and in the sandbox the
# local stand-ins (plain http on 127.0.0.1), which browsers would otherwise refuse to follow.
GATEWAY_BASES = ("RAZORPAY_API_BASE", "STRIPE_API_BASE")


def _policy() -> str:
    local = sorted(
        {
            f"{parts.scheme}://{parts.netloc}"
            for parts in (urlsplit(current_app.config.get(name) or "") for name in GATEWAY_BASES)
            if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        }
    )
    return " ".join([PAY_PAGE_POLICY, "'self'", "https:", *local])


def _rate_limit() -> str:
    return current_app.config["PAY_PAGE_RATE_LIMIT"]


def _address_key() -> str:
    return f"pay-page:{request.remote_addr}"


# Every public pay route counts against the address's one budget.
limiter.limit(_rate_limit, key_func=_address_key)(pay_page)


@pay_page.after_request
def _private(response: Response) -> Response:
    # What someone owes: never kept by a shared cache or a browser's history cache, and the
    # token never sent on as a referrer.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = _policy()
    return response


def _opened(token: str) -> services.OpenedLink:
    opened = services.open_link(db.session, token)
    if opened is None:
        abort(404)
    return opened


def _page_context(opened: services.OpenedLink) -> dict:
    tenant = opened.tenant
    workspace = workspace_settings(db.session, tenant.id)

    def money(amount, currency) -> str:
        return format_money(amount, currency, tenant.country or "IN")

    return {
        "tenant": tenant,
        "workspace": workspace,
        "business_name": workspace.legal_name or tenant.name,
        "money": money,
        "token": request.view_args["token"],
    }


def _closed_page(opened: services.OpenedLink):
    # Said in words, with whom to ask: 410 Gone, so that it is not mistaken for a working page.
    return render_page(
        "paylinks/closed.html", status=410, state=opened.state, **_page_context(opened)
    )


@pay_page.get("")
def page(token: str):
    opened = _opened(token)
    if opened.state != "open":
        return _closed_page(opened)
    return _pay_page(opened, amounts=request.args)


def _pay_page(opened: services.OpenedLink, amounts, errors=None, status: int = 200):
    """The page; `amounts` the part amounts asked for, by currency (`amount_INR`)."""
    context = _page_context(opened)
    owed = statement.what_is_owed(db.session, opened.link)
    settings = services.pay_page_settings(db.session)
    errors = dict(errors or {})
    groups = []
    for group in owed.due:
        field = f"amount_{group.currency}"
        amount, problem = clean_amount(
            amounts.get(field),
            group.total,
            context["money"](group.total, group.currency),
            settings.allow_partial_payment,
        )
        if problem:
            errors.setdefault(field, problem)
        paying = amount or group.total
        upi = statement.upi_request(opened.tenant, context["workspace"], opened.link, group, paying)
        groups.append(
            {
                "due": group,
                "field": field,
                "amount": paying,
                "typed": amounts.get(field, ""),
                "upi": upi,
                # The QR is an image of its own: drawing one takes ~15 ms (the encoder tries
                # every mask for the one phones read best), and the page need not wait for it.
                "upi_qr": url_for(
                    "pay_page.upi_qr",
                    token=context["token"],
                    currency=group.currency,
                    amount=f"{paying:.2f}",
                )
                if upi
                else None,
                "options": checkout.pay_options(db.session, currency=group.currency),
            }
        )
    return render_page(
        "paylinks/page.html",
        status=422 if errors and status == 200 else status,
        owed=owed,
        groups=groups,
        errors=errors,
        allow_partial=settings.allow_partial_payment,
        **context,
    )


@pay_page.get("/upi-qr.svg")
def upi_qr(token: str):
    """The UPI QR of the page for an amount in a currency, checked as the page checks it (never
    more than is owed now, a part amount only where the workspace allows part payments)."""
    opened = _opened(token)
    if opened.state != "open":
        abort(404)
    owed = statement.what_is_owed(db.session, opened.link)
    group = owed.in_currency(request.args.get("currency", ""))
    if group is None:
        abort(404)
    settings = services.pay_page_settings(db.session)
    amount, problem = clean_amount(
        request.args.get("amount"), group.total, "", settings.allow_partial_payment
    )
    workspace = workspace_settings(db.session, opened.tenant.id)
    upi = (
        None
        if problem
        else statement.upi_request(opened.tenant, workspace, opened.link, group, amount)
    )
    if upi is None:
        abort(404)
    return Response(statement.qr_svg(upi), mimetype="image/svg+xml")


@pay_page.get("/invoices/<int:invoice_id>.pdf")
def invoice_pdf(token: str, invoice_id: int):
    opened = _opened(token)
    if opened.state != "open":
        return _closed_page(opened)
    invoice = statement.own_invoice(db.session, opened.link, invoice_id)
    if invoice is None:
        abort(404)
    data = pdf.current_pdf(db.session, opened.tenant, invoice)
    response = Response(data, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "attachment", filename=pdf.pdf_filename(invoice))
    return response


@pay_page.get("/logo")
def logo(token: str):
    opened = _opened(token)
    key = workspace_settings(db.session, opened.tenant.id).logo_key
    if not key:
        abort(404)
    try:
        stream = get_storage(current_app).open(key)
    except FileNotFoundError:
        abort(404)
    response = send_file(stream, mimetype=logo_content_type(key), max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@pay_page.post("/checkout/<provider>")
def start_checkout(token: str, provider: str):
    """Pay online: what is owed is read now (never from the link or the form), the typed part
    amount checked against it, and the payer sent to the gateway's checkout."""
    opened = _opened(token)
    if opened.state != "open":
        return _closed_page(opened)
    currency = request.form.get("currency", "")
    owed = statement.what_is_owed(db.session, opened.link)
    group = owed.in_currency(currency)
    if group is None:
        # Paid meanwhile (or a currency the link does not owe in): the page says what is owed.
        return redirect(url_for("pay_page.page", token=token), 303)
    if provider not in {o.provider for o in checkout.pay_options(db.session, currency=currency)}:
        abort(404)
    settings = services.pay_page_settings(db.session)
    field = f"amount_{currency}"
    context = _page_context(opened)
    amount, problem = clean_amount(
        request.form.get(field),
        group.total,
        context["money"](group.total, currency),
        settings.allow_partial_payment,
    )
    if problem:
        return _pay_page(opened, request.form, {field: problem})
    split = statement.split_over_invoices(group, amount)
    try:
        url = checkout.start_gateway_checkout(
            db.session,
            provider=provider,
            client_id=opened.link.client_id,
            invoice_amounts=split.amounts,
            interest_amounts=split.interest,
            currency=currency,
            return_url=url_for("pay_page.done", token=token, _external=True),
            pay_link_id=opened.link.id,
        )
    except checkout.CheckoutUnavailable as refused:
        message = f"{refused} You can also pay by bank transfer or UPI."
        return _pay_page(opened, request.form, {"checkout": message}, status=503)
    return redirect(url, 303)


@pay_page.get("/done")
def done(token: str):
    """Where the gateway sends the payer back. Nothing is recorded here: the gateway's signed
    notification decides whether the money came."""
    opened = _opened(token)
    return render_page("paylinks/done.html", **_page_context(opened))


# The workspace's side ----------------------------------------------------------------------


def invoice_pay_link_panel(invoice: Invoice) -> dict:
    """The invoice page's pay links: the invoice's and its client's, each with Revoke."""
    if invoice.status in ("draft", "void"):
        return {}
    links = services.shown_links(db.session, invoice)
    return {
        "pay_link_panel": {
            "template": "paylinks/_invoice_panel.html",
            "links": [(link, services.pay_url(g.tenant.id, link)) for link in links],
            "has_invoice_link": any(
                link.kind == "invoice" and not link.is_revoked for link in links
            ),
            "has_client_link": any(link.kind == "client" and not link.is_revoked for link in links),
        }
    }


@blueprint.post("/invoices/<int:invoice_id>")
@require_permission("messages.send")
def make_link(invoice_id: int):
    invoice = invoice_or_404(invoice_id)
    if invoice.status in ("draft", "void"):
        abort(404)
    if request.form.get("kind") == "client":
        services.link_for_client(db.session, invoice.client_id, current_user.id)
    else:
        services.link_for_invoice(db.session, invoice, current_user.id)
    toast("Pay link ready: copy it from the list.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id) + "#pay-links", 303)


@blueprint.post("/invoices/<int:invoice_id>/links/<int:pay_link_id>/revoke")
@require_permission("messages.send")
def revoke_link(invoice_id: int, pay_link_id: int):
    invoice = invoice_or_404(invoice_id)
    link = db.session.get(PayLink, pay_link_id)
    if link is None or link not in services.shown_links(db.session, invoice):
        abort(404)
    services.revoke(db.session, link, current_user.id)
    toast("Pay link revoked: it now says so to whoever opens it.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id) + "#pay-links", 303)


@blueprint.route("/settings", methods=["GET", "POST"])
@require_permission("settings.manage")
def settings():
    errors = {}
    if request.method == "POST":
        errors = services.save_settings(db.session, request.form)
        if not errors:
            toast("Pay page settings saved.")
            return redirect(url_for("paylinks.settings"), 303)
    return render_page(
        "paylinks/settings.html",
        status=422 if errors else 200,
        settings=services.pay_page_settings(db.session),
        values=request.form if errors else None,
        errors=errors,
        workspace=workspace_settings(db.session, g.tenant.id),
    )
