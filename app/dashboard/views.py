from __future__ import annotations

from flask import Blueprint, g, session

from app.clients import documents
from app.core.clock import tenant_today
from app.core.pages import render_page
from app.extensions import db
from tenants.context import can, require_permission

blueprint = Blueprint("dashboard", __name__, url_prefix="/t/<tenant_slug>")
EXPIRING_SHOWN = 10


@blueprint.get("/")
@require_permission("dashboard.view")
def home():
    session["last_tenant"] = g.tenant.slug
    context = {}
    if can("clients.view"):
        today = tenant_today(db.session)
        context.update(
            expiring=documents.expiring_documents(db.session, today),
            expiring_shown=EXPIRING_SHOWN,
            expiry_window_days=documents.EXPIRY_WINDOW_DAYS,
            expiry_badge=documents.expiry_badge,
            today=today,
        )
    return render_page("dashboard/home.html", **context)
