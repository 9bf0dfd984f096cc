from __future__ import annotations

from flask import Blueprint, g, session
from flask_login import current_user

from app.core.clock import tenant_today
from app.core.pages import render_page
from app.core.prepared import prepared_statements
from app.dashboard import services, widgets
from app.extensions import db
from app.settings.services import workspace_settings
from app.settings.workflow import shown_widgets
from app.setup import services as setup
from tenants.context import can, require_permission

blueprint = Blueprint("dashboard", __name__, url_prefix="/t/<tenant_slug>")


@blueprint.get("/")
@require_permission("dashboard.view")
def home():
    # Written only when it changes: a write re-signs and re-sends the session cookie.
    if session.get("last_tenant") != g.tenant.slug:
        session["last_tenant"] = g.tenant.slug
    today = tenant_today(db.session)
    workspace = workspace_settings(db.session, g.tenant.id)
    chosen = [
        widgets.BY_NAME[name]
        for name in shown_widgets(workspace, widgets.NAMES)
        if widgets.BY_NAME[name].allowed()
    ]
    # The widgets' statements are of a fixed shape and none is a search: planned once per
    # connection (2.5 ms of the visit at 1M invoices, the work queue's counts most of it).
    with prepared_statements(db.session):
        counts = services.counts(
            db.session, today, with_collections=any(w.name == "collections" for w in chosen)
        )
        if not counts.has_invoices:
            chosen = [widget for widget in chosen if not widget.needs_invoices]
        reading = widgets.Reading(db.session, today, counts, current_user.id)
        context = {"today": today, "started": counts, "widgets": [w.name for w in chosen]}
        for widget in chosen:
            context.update(widget.read(reading))
    if can("settings.manage"):
        context["setup_left"] = setup.progress(
            db.session, g.tenant.id, counts.has_clients, workspace
        ).left
        context["setup_steps"] = len(setup.STEPS)
    return render_page("dashboard/home.html", **context)
