from __future__ import annotations

from flask import Blueprint, g, session

from app.pages import render_page
from tenants.context import require_permission

blueprint = Blueprint("dashboard", __name__, url_prefix="/t/<tenant_slug>")


@blueprint.get("/")
@require_permission("dashboard.view")
def home():
    session["last_tenant"] = g.tenant.slug
    return render_page("dashboard/home.html")
