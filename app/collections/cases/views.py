"""Promises, disputes, holds and interest: the client page's Collections tab and its forms,
the Disputes and Promises lists, the bank-rate table. notices.view to see, notices.manage to
act, settings.manage for the bank rate. Every record is looked up in the bound tenant only."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.clients import services as clients
from app.clients.models import Client
from app.collections.cases import disputes, holds, interest, interest_claims, promises
from app.collections.cases import forms as case_forms
from app.collections.cases import services as cases
from app.collections.cases.services import CaseError, CaseInvalid
from app.collections.models import BankRate, CollectionPolicy
from app.core.clock import tenant_today
from app.core.form_once import once_per_form_key
from app.core.money import format_money
from app.core.pages import render_page, toast
from app.core.request_input import row_id
from app.extensions import db
from app.invoicing.models import Invoice
from app.invoicing.views import invoice_or_404, invoice_page
from app.payments.services import client_balance
from tenants.context import require_permission

blueprint = Blueprint("cases", __name__, url_prefix="/t/<tenant_slug>")


def _today() -> date:
    return datetime.now(ZoneInfo(g.tenant.time_zone)).date()


def _found(record):
    # The session is bound to the URL's tenant: another tenant's id finds nothing.
    if record is None:
        abort(404)
    return record


def _client_or_404(client_id: int) -> Client:
    return _found(clients.get_client(db.session, client_id))


def _members() -> list[tuple[int, str]]:
    return clients.members_for_choice(db.session, g.tenant.id)


def _policies() -> list[CollectionPolicy]:
    return list(
        db.session.scalars(
            select(CollectionPolicy)
            .where(CollectionPolicy.deleted_at.is_(None))
            .order_by(CollectionPolicy.is_default.desc(), CollectionPolicy.name)
        )
    )


# The client page's Collections tab ----------------------------------------------------------


def collections_context(client: Client, form: str | None = None, values=None, errors=None) -> dict:
    """What templates/clients/_collections.html needs; `form` names the form whose `values`
    and `errors` are shown (the others start empty)."""
    today = _today()
    balance = client_balance(db.session, client)
    open_ = [o.invoice for o in balance.open]
    invoices = list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.client_id == client.id, Invoice.status.not_in(("draft", "void")))
            .order_by(Invoice.issue_date.desc(), Invoice.id.desc())
            .limit(200)
        )
    )
    forms = {name: ({}, {}) for name in case_forms.TAB_FORMS}
    if form:
        forms[form] = (values or {}, errors or {})
    return {
        "client": client,
        "today": today,
        "balance": balance,
        "interest": interest_claims.interest_owed(db.session, open_, today),
        **_claims_context(client),
        "invoices": invoices,
        "promises": promises.client_promises(db.session, client.id),
        "disputes": disputes.client_disputes(db.session, client.id),
        "holds": holds.client_holds(db.session, client.id),
        "hold_active": lambda h: holds.is_active(h, today),
        "people": dict(_members()),
        "members": _members(),
        "policies": _policies(),
        "forms": forms,
        "terms": case_forms.terms_values(client),
        "interest_modes": cases.INTEREST_MODE_LABELS,
        "outcomes": disputes.ENDINGS,
    }


def _claims_context(client: Client) -> dict:
    """The interest notices claimed that is still unpaid (principal paid or not), with what
    the Interest claimed form offers."""
    claims = interest_claims.interest_claims(db.session, client_id=client.id)
    numbers = dict(
        db.session.execute(
            select(Invoice.id, Invoice.number).where(Invoice.id.in_(list(claims)))
        ).all()
    )
    return {
        "interest_claims": [(claim, numbers.get(claim.invoice_id)) for claim in claims.values()],
        "interest_claimed_unpaid": sum((c.unpaid for c in claims.values()), interest.ZERO),
        "interest_settlements": interest_claims.settlements_of(db.session, client.id),
        "settlement_kinds": interest_claims.SETTLEMENT_LABELS,
        "payment_choices": [
            (
                payment.id,
                f"{payment.received_on:%d %b %Y} · "
                f"{format_money(left, payment.currency, g.tenant.country)} left",
            )
            for payment, left in (
                interest_claims.payments_with_credit(db.session, client.id) if claims else []
            )
        ],
    }


def _tab(client: Client, form: str | None = None, values=None, errors=None, status: int = 200):
    return render_page(
        "cases/client.html",
        block="collections",
        status=status,
        **collections_context(client, form, values, errors),
    )


def _back_to_tab(client_id: int):
    return redirect(url_for("clients.detail", client_id=client_id, tab="collections"), 303)


@blueprint.get("/clients/<int:client_id>/collections")
@require_permission("notices.view")
def client_collections(client_id: int):
    return _tab(_client_or_404(client_id))


@blueprint.post("/clients/<int:client_id>/collection-terms")
@require_permission("notices.manage")
def collection_terms(client_id: int):
    client = _client_or_404(client_id)
    try:
        cases.update_collection_terms(
            db.session,
            client,
            request.form,
            {p.id for p in _policies()},
            {uid for uid, _ in _members()},
        )
    except CaseInvalid as invalid:
        return _tab(client, "terms", request.form.to_dict(), invalid.errors, 422)
    toast("Collection terms saved.")
    return _back_to_tab(client.id)


@blueprint.post("/invoices/<int:invoice_id>/acceptance")
@require_permission("notices.manage")
def acceptance(invoice_id: int):
    invoice = _found(db.session.get(Invoice, invoice_id))
    client = _client_or_404(invoice.client_id)
    try:
        cases.set_acceptance(db.session, invoice, request.form.get("accepted_on"), _today())
    except CaseInvalid as invalid:
        if request.form.get("back") == "invoice":
            toast(invalid.errors["accepted_on"], "error")
            return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)
        values = {**request.form.to_dict(), "invoice_id": invoice.id}
        return _tab(client, "acceptance", values, invalid.errors, 422)
    toast(f"Acceptance date of invoice {invoice.number} saved.")
    if request.form.get("back") == "invoice":
        return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)
    return _back_to_tab(client.id)


@blueprint.post("/invoices/<int:invoice_id>/interest-settlements")
@require_permission("notices.manage")
@once_per_form_key
def settle_interest(invoice_id: int):
    """Interest a notice claimed on the invoice: paid (from a payment), waived or written off."""
    invoice = _found(db.session.get(Invoice, invoice_id))
    client = _client_or_404(invoice.client_id)
    try:
        settlement = interest_claims.settle_claim(
            db.session, invoice, request.form, g.tenant.country, current_user.id
        )
    except CaseInvalid as invalid:
        values = {**request.form.to_dict(), "invoice_id": invoice.id}
        return _tab(client, "interest", values, invalid.errors, 422)
    except CaseError as error:
        toast(str(error), "error")
        return _back_to_tab(client.id)
    label = interest_claims.SETTLEMENT_LABELS[settlement.kind].lower()
    amount = format_money(settlement.amount, invoice.currency, g.tenant.country)
    toast(f"Interest on invoice {invoice.number}: {amount} {label}.")
    return _back_to_tab(client.id)


# Promises -----------------------------------------------------------------------------------


@blueprint.post("/clients/<int:client_id>/promises")
@require_permission("notices.manage")
@once_per_form_key
def new_promise(client_id: int):
    client = _client_or_404(client_id)
    values = {**request.form.to_dict(), "invoice_ids": request.form.getlist("invoice_ids")}
    try:
        promise = promises.create_promise(db.session, client, values, _today(), current_user.id)
    except CaseInvalid as invalid:
        return _tab(client, "promise", values, invalid.errors, 422)
    toast(
        f"Promise recorded: collection on its invoices waits until {promise.promised_on:%d %b %Y}."
    )
    return _back_to_tab(client.id)


@blueprint.post("/promises/<int:promise_id>/cancel")
@require_permission("notices.manage")
def cancel_promise(promise_id: int):
    promise = _found(promises.get_promise(db.session, promise_id))
    try:
        promises.cancel_promise(db.session, promise)
    except CaseError as error:
        toast(str(error), "error")
    else:
        toast("Promise cancelled: collection resumes.")
    return _back_to_tab(promise.client_id)


@blueprint.get("/promises/")
@require_permission("notices.view")
def promise_list():
    view = request.args.get("view", "open")
    if view not in promises.PROMISE_VIEWS:
        view = "open"
    today = _today()
    page = promises.list_promises(db.session, view, today, row_id(request.args.get("page")) or 1)
    return render_page(
        "cases/promises.html",
        block="promise_results",
        rows=page.rows,
        page=page,
        view=view,
        views=promises.PROMISE_VIEWS,
        today=today,
    )


# Disputes -----------------------------------------------------------------------------------


@blueprint.post("/clients/<int:client_id>/disputes")
@require_permission("notices.manage")
@once_per_form_key
def new_dispute(client_id: int):
    client = _client_or_404(client_id)
    values = request.form.to_dict()
    raw = values.get("invoice_id", "")
    invoice = db.session.get(Invoice, int(raw)) if raw.isdigit() else None
    if invoice is None or invoice.client_id != client.id:
        return _tab(client, "dispute", values, {"invoice_id": "Choose the invoice disputed."}, 422)
    try:
        disputes.open_dispute(
            db.session, invoice, values, current_user.id, {uid for uid, _ in _members()}
        )
    except CaseInvalid as invalid:
        return _tab(client, "dispute", values, invalid.errors, 422)
    except CaseError as error:
        return _tab(client, "dispute", values, {"invoice_id": str(error)}, 422)
    toast(f"Invoice {invoice.number} is disputed; collection on it waits until the dispute ends.")
    return _back_to_tab(client.id)


@blueprint.post("/disputes/<int:dispute_id>/resolve")
@require_permission("notices.manage")
def resolve_dispute(dispute_id: int):
    dispute = _found(disputes.get_dispute(db.session, dispute_id))
    client = _client_or_404(dispute.client_id)
    try:
        disputes.end_dispute(
            db.session,
            dispute,
            request.form.get("outcome", ""),
            request.form.get("resolution_note"),
            _today(),
            current_user.id,
        )
    except CaseInvalid as invalid:
        values = {**request.form.to_dict(), "dispute_id": dispute.id}
        return _tab(client, "resolve", values, invalid.errors, 422)
    except CaseError as error:
        toast(str(error), "error")
        return _back_to_tab(client.id)
    toast(
        f"Dispute {disputes.ENDINGS[dispute.status].lower()}; collection on the invoice "
        "resumes if it is still owed."
    )
    if request.form.get("back") == "disputes":
        return redirect(url_for("cases.dispute_list"), 303)
    return _back_to_tab(client.id)


# The invoice page's dispute (a panel of invoicing's page, registered by
# app.collections.hooks) -----------------------------------------------------------------------


def invoice_dispute_panel(invoice: Invoice) -> dict:
    """The open dispute of a disputed invoice, whose evidence the page shows."""
    disputed = invoice.status == "disputed"
    return {"open_dispute": disputes.open_dispute_of(db.session, invoice.id) if disputed else None}


@blueprint.post("/invoices/<int:invoice_id>/dispute")
@require_permission("invoices.edit")
@once_per_form_key
def dispute_invoice(invoice_id: int):
    """Dispute the invoice from its page: a dispute owned by whoever records it; the one way an
    invoice becomes disputed."""
    invoice = invoice_or_404(invoice_id)
    values = {
        "reason": request.form.get("dispute_reason", ""),
        "evidence": request.form.get("dispute_evidence", ""),
        "evidence_url": request.form.get("dispute_evidence_url", ""),
    }
    try:
        disputes.open_dispute(db.session, invoice, values, current_user.id)
    except CaseInvalid as invalid:
        errors = {f"dispute_{field}": message for field, message in invalid.errors.items()}
        return invoice_page(invoice, 422, errors, request.form.to_dict())
    except CaseError as error:
        toast(str(error), "error")
    else:
        toast(f"Invoice {invoice.number} is disputed; collection waits until it is resolved.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)


@blueprint.post("/invoices/<int:invoice_id>/resolve")
@require_permission("invoices.edit")
def resolve_invoice_dispute(invoice_id: int):
    """End the invoice's dispute from its page, resolved or rejected, with a note."""
    invoice = invoice_or_404(invoice_id)
    try:
        disputes.end_invoice_dispute(
            db.session,
            invoice,
            request.form.get("outcome", "resolved"),
            request.form.get("resolution_note"),
            tenant_today(db.session),
            current_user.id,
        )
    except CaseInvalid as invalid:
        return invoice_page(invoice, 422, invalid.errors, request.form.to_dict())
    except CaseError as error:
        toast(str(error), "error")
    else:
        toast(f"Dispute ended: invoice {invoice.number} is {invoice.status.replace('_', ' ')}.")
    return redirect(url_for("invoicing.detail", invoice_id=invoice.id), 303)


@blueprint.get("/disputes/")
@require_permission("notices.view")
def dispute_list():
    owner = row_id(request.args.get("owner"))
    rows = disputes.open_disputes(db.session, owner)
    zone, today = ZoneInfo(g.tenant.time_zone), _today()
    return render_page(
        "cases/disputes.html",
        block="dispute_results",
        rows=rows,
        owner=owner,
        members=_members(),
        people=dict(_members()),
        age_of=lambda d: (today - d.created_at.astimezone(zone).date()).days,
    )


# Holds --------------------------------------------------------------------------------------


@blueprint.post("/clients/<int:client_id>/holds")
@require_permission("notices.manage")
@once_per_form_key
def new_hold(client_id: int):
    client = _client_or_404(client_id)
    try:
        holds.place_hold(db.session, client, request.form, _today(), current_user.id)
    except CaseInvalid as invalid:
        return _tab(client, "hold", request.form.to_dict(), invalid.errors, 422)
    toast("Hold placed: no chasing while it lasts.")
    return _back_to_tab(client.id)


@blueprint.post("/holds/<int:hold_id>/release")
@require_permission("notices.manage")
def release_hold(hold_id: int):
    hold = _found(holds.get_hold(db.session, hold_id))
    try:
        holds.release_hold(db.session, hold, current_user.id, _today())
    except CaseError as error:
        toast(str(error), "error")
    else:
        toast("Hold released: collection resumes.")
    return _back_to_tab(hold.client_id)


# The bank rate ------------------------------------------------------------------------------


def _bank_rates(values=None, errors=None, status: int = 200):
    rates = list(db.session.scalars(select(BankRate).order_by(BankRate.effective_from.desc())))
    return render_page(
        "cases/bank_rates.html",
        status=status,
        rates=rates,
        values=values or {},
        errors=errors or {},
        today=_today(),
        in_force=interest.RateTable.of(rates).on(_today()),
    )


@blueprint.get("/bank-rates/")
@require_permission("notices.view")
def bank_rates():
    return _bank_rates()


@blueprint.post("/bank-rates/")
@require_permission("settings.manage")
@once_per_form_key
def add_bank_rate():
    try:
        rate = cases.add_bank_rate(db.session, request.form, current_user.id)
    except CaseInvalid as invalid:
        return _bank_rates(request.form.to_dict(), invalid.errors, 422)
    toast(f"Bank rate {rate.rate}% from {rate.effective_from:%d %b %Y} saved.")
    return redirect(url_for("cases.bank_rates"), 303)


@blueprint.post("/bank-rates/<int:bank_rate_id>/delete")
@require_permission("settings.manage")
def delete_bank_rate(bank_rate_id: int):
    rate = _found(db.session.get(BankRate, bank_rate_id))
    db.session.delete(rate)
    db.session.flush()
    toast(f"Bank rate from {rate.effective_from:%d %b %Y} deleted.")
    return redirect(url_for("cases.bank_rates"), 303)
