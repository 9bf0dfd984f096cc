"""The reconciliation page (`/t/<slug>/payments/reconciliation`): the daily runs against each
gateway and the differences they found, with the fixes that are safe in one click (apply a
missed payment again, mark a difference as explained); the gateways' payouts the bank has not
shown; and the webhook events that could not be placed (apply again, dismiss with a note)."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.core.handover import hand_over
from app.core.pages import render_page, toast
from app.extensions import db
from app.gateways import reconciliation
from app.gateways.services import GATEWAYS
from tenants.context import require_permission

blueprint = Blueprint(
    "gateway_reconciliation", __name__, url_prefix="/t/<tenant_slug>/payments/reconciliation"
)
SHOWN_STATES = {"open": "Open", "applied": "Recovered", "explained": "Explained"}


def _difference_or_404(difference_id: int):
    # The session is bound to the URL's tenant: another tenant's id finds nothing here.
    item = reconciliation.get_difference(db.session, difference_id)
    if item is None:
        abort(404)
    return item


@blueprint.get("/")
@require_permission("invoices.view")
def index():
    state = request.args.get("state", "open")
    state = state if state in SHOWN_STATES else "open"
    return render_page(
        "gateways/reconciliation.html",
        runs=reconciliation.recent_runs(db.session),
        differences=reconciliation.differences(db.session, state),
        parked=reconciliation.parked_events(db.session),
        missing_payouts=reconciliation.payouts_not_in_bank(db.session),
        state=state,
        states=SHOWN_STATES,
        gateway_names={provider: connector.title for provider, connector in GATEWAYS.items()},
    )


@blueprint.post("/run")
@require_permission("payments.record")
def run_now():
    """The nightly comparison, now, for this workspace (by the worker: it asks each gateway)."""
    hand_over(db.session, "reconcile_gateways", tenant_id=g.tenant.id)
    db.session.commit()
    toast("Asking each gateway now. The result shows under Runs in a moment: reload the page.")
    return redirect(url_for(".index"), 303)


@blueprint.post("/<int:difference_id>/apply")
@require_permission("payments.record")
def apply(difference_id: int):
    item = _difference_or_404(difference_id)
    try:
        reconciliation.apply_difference(db.session, item, current_user.id)
    except reconciliation.ReconciliationError as refused:
        db.session.rollback()
        toast(str(refused), "error")
    else:
        db.session.commit()
        toast("The payment is applied.")
    return redirect(url_for(".index"), 303)


@blueprint.post("/<int:difference_id>/explain")
@require_permission("payments.record")
def explain(difference_id: int):
    item = _difference_or_404(difference_id)
    try:
        reconciliation.explain_difference(
            db.session, item, request.form.get("note"), current_user.id
        )
    except reconciliation.ReconciliationError as refused:
        db.session.rollback()
        toast(str(refused), "error")
    else:
        db.session.commit()
        toast("Marked as explained.")
    return redirect(url_for(".index"), 303)


def _parked_or_404(gateway_event_id: int):
    row = reconciliation.get_parked(db.session, gateway_event_id)
    if row is None:
        abort(404)
    return row


@blueprint.post("/events/<int:gateway_event_id>/apply")
@require_permission("payments.record")
def apply_event(gateway_event_id: int):
    row = _parked_or_404(gateway_event_id)
    try:
        status = reconciliation.apply_parked(db.session, row)
    except reconciliation.ReconciliationError as refused:
        db.session.rollback()
        toast(str(refused), "error")
    else:
        db.session.commit()
        toast("The event is applied." if status == "applied" else "Nothing was left to apply.")
    return redirect(url_for(".index"), 303)


@blueprint.post("/events/<int:gateway_event_id>/dismiss")
@require_permission("payments.record")
def dismiss_event(gateway_event_id: int):
    row = _parked_or_404(gateway_event_id)
    try:
        reconciliation.dismiss_parked(db.session, row, request.form.get("note"), current_user.id)
    except reconciliation.ReconciliationError as refused:
        db.session.rollback()
        toast(str(refused), "error")
    else:
        db.session.commit()
        toast("The event is dismissed.")
    return redirect(url_for(".index"), 303)
