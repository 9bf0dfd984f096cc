from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g, session
from flask_login import current_user

from app.clients import documents
from app.collections.cases import promises
from app.collections.work import services as work
from app.core.clock import tenant_today
from app.core.pages import render_page
from app.dashboard import services
from app.extensions import db
from app.payments import listing as payments
from app.setup import services as setup
from tenants.context import can, require_permission

blueprint = Blueprint("dashboard", __name__, url_prefix="/t/<tenant_slug>")
EXPIRING_SHOWN = 10


@blueprint.get("/")
@require_permission("dashboard.view")
def home():
    # Written only when it changes: a write re-signs and re-sends the session cookie.
    if session.get("last_tenant") != g.tenant.slug:
        session["last_tenant"] = g.tenant.slug
    today = tenant_today(db.session)
    counts = services.counts(db.session, today)
    context = {"today": today, "started": counts}
    if counts.has_invoices and can("invoices.view"):
        this_month, last_month = payments.month_starts(today)
        context.update(
            receivables=services.receivables(db.session, today),
            cash=payments.cash_by_month(db.session, today),
            this_month=this_month,
            last_month=last_month,
            last_month_end=this_month - timedelta(days=1),
        )
    if counts.has_invoices and can("notices.view"):
        context["collections"] = counts
        context["broken_lately_days"] = promises.BROKEN_LATELY_DAYS
        if can("collections.work"):
            context["my_work"] = work.queue_counts(db.session, current_user.id, today)
            context["work_titles"] = work.SECTION_TITLES
    if can("clients.view"):
        context.update(
            expiring=documents.expiring_documents(db.session, today),
            expiring_shown=EXPIRING_SHOWN,
            expiry_window_days=documents.EXPIRY_WINDOW_DAYS,
            expiry_badge=documents.expiry_badge,
        )
    if can("settings.manage"):
        context["setup_left"] = setup.progress(db.session, g.tenant.id, counts.has_clients).left
        context["setup_steps"] = len(setup.STEPS)
    return render_page("dashboard/home.html", **context)
