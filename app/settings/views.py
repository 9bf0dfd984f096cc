"""The workspace settings page (admins): identity and tax ids, payment details; the logo
itself (its upload is on Settings → Branding, `branding_views`); the regional, terminology
and workflow pages."""

from __future__ import annotations

from email.utils import parseaddr

from flask import Blueprint, abort, current_app, g, redirect, request, send_file, url_for

from app.core.clock import tenant_today
from app.core.language import language_label
from app.core.pages import render_page, toast
from app.core.regions import regions_of
from app.core.storage import get_storage
from app.core.terminology import NOUNS, vocabulary
from app.extensions import db
from app.settings import regional, services, terminology, workflow
from tenants.context import require_permission

blueprint = Blueprint("settings", __name__, url_prefix="/t/<tenant_slug>/settings")


def _page(values=None, errors=None, status=200):
    workspace = services.workspace_settings(db.session, g.tenant.id)
    return render_page(
        "settings/index.html",
        status=status,
        tenant=g.tenant,
        workspace=workspace,
        values=values or services.form_values(g.tenant, workspace),
        errors=errors or {},
        mail_address=parseaddr(current_app.config["MAIL_FROM"])[1],
    )


@blueprint.get("/")
@require_permission("settings.manage")
def index():
    return _page()


@blueprint.post("/")
@require_permission("settings.manage")
def save():
    errors = services.save_settings(db.session, g.tenant, request.form)
    if errors:
        return _page(values=request.form.to_dict(), errors=errors, status=422)
    toast("Settings saved. New invoices use them from now on.")
    return redirect(url_for("settings.index"), 303)


@blueprint.get("/logo")
@require_permission("dashboard.view")
def logo():
    key = services.workspace_settings(db.session, g.tenant.id).logo_key
    if not key:
        abort(404)
    try:
        stream = get_storage(current_app).open(key)
    except FileNotFoundError:
        abort(404)
    response = send_file(stream, mimetype=services.logo_content_type(key), max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _regional_page(values=None, errors=None, status=200):
    tenant = g.tenant
    year = regional.page_year(request.args.get("year"), tenant_today(db.session))
    return render_page(
        "settings/regional.html",
        status=status,
        tenant=tenant,
        values=values or {"region": regional.region_choice(tenant)},
        errors=errors or {},
        regions=regions_of(tenant.country),
        region_word=regional.region_word(tenant.country),
        year=year,
        holidays=regional.holidays_of(tenant.country, tenant.region, year),
        state_calendar=regional.knows_state_calendar(tenant.country, tenant.region),
        languages=[(code, language_label(code)) for code in regional.languages_of(tenant)],
        effects=regional.effects_of(db.session, tenant),
    )


@blueprint.get("/regional")
@require_permission("settings.manage")
def regional_settings():
    return _regional_page()


@blueprint.post("/regional")
@require_permission("settings.manage")
def save_regional_settings():
    errors = regional.save_region(db.session, g.tenant, request.form)
    if errors:
        return _regional_page(values=request.form.to_dict(), errors=errors, status=422)
    toast("Region saved. Due dates and reminders follow its holidays from now on.")
    return redirect(url_for("settings.regional_settings"), 303)


def _terminology_page(values=None, errors=None, status=200):
    return render_page(
        "settings/terminology.html",
        status=status,
        nouns=NOUNS,
        values=values or terminology.form_values(vocabulary()),
        errors=errors or {},
    )


@blueprint.get("/terminology")
@require_permission("settings.manage")
def terminology_settings():
    return _terminology_page()


@blueprint.post("/terminology")
@require_permission("settings.manage")
def save_terminology():
    errors = terminology.save_terminology(db.session, request.form)
    if errors:
        return _terminology_page(values=request.form.to_dict(), errors=errors, status=422)
    toast("Terminology saved. The pages use your words from now on.")
    return redirect(url_for("settings.terminology_settings"), 303)


def _workflow_page(values=None, errors=None, dashboard_values=None, dashboard_errors=None):
    workspace = services.workspace_settings(db.session, g.tenant.id)
    ladders = workflow.notice_ladders()
    return render_page(
        "settings/workflow.html",
        status=422 if errors or dashboard_errors else 200,
        values=values or workflow.form_values(db.session, workspace),
        errors=errors or {},
        auto_invoice_choices=services.AUTO_INVOICE_CHOICES,
        policies=ladders.choices(db.session) if ladders else None,
        widgets=workflow.widget_choices(),
        dashboard_values=dashboard_values or workflow.dashboard_form_values(workspace),
        dashboard_errors=dashboard_errors or {},
    )


@blueprint.get("/workflow")
@require_permission("settings.manage")
def workflow_settings():
    return _workflow_page()


@blueprint.post("/workflow")
@require_permission("settings.manage")
def save_workflow():
    errors = workflow.save_workflow(db.session, g.tenant.id, request.form)
    if errors:
        return _workflow_page(values=request.form.to_dict(), errors=errors)
    toast("Workflow settings saved.")
    return redirect(url_for("settings.workflow_settings"), 303)


@blueprint.post("/workflow/dashboard")
@require_permission("settings.manage")
def save_dashboard_widgets():
    errors = workflow.save_dashboard(db.session, g.tenant.id, request.form)
    if errors:
        return _workflow_page(dashboard_values=request.form.to_dict(), dashboard_errors=errors)
    toast("Dashboard saved. Everyone in the workspace sees these widgets in this order.")
    return redirect(url_for("settings.workflow_settings") + "#dashboard", 303)
