"""The workspace settings page (admins): identity and tax ids, payment details, branding,
billing defaults; the logo upload; the regional and terminology pages."""

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
from app.settings import regional, services, terminology
from tenants.context import require_permission

blueprint = Blueprint("settings", __name__, url_prefix="/t/<tenant_slug>/settings")


def _page(values=None, errors=None, logo_error=None, status=200):
    workspace = services.workspace_settings(db.session, g.tenant.id)
    return render_page(
        "settings/index.html",
        status=status,
        tenant=g.tenant,
        workspace=workspace,
        values=values or services.form_values(g.tenant, workspace),
        errors=errors or {},
        logo_error=logo_error,
        auto_invoice_choices=services.AUTO_INVOICE_CHOICES,
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


@blueprint.post("/logo")
@require_permission("settings.manage")
def upload_logo():
    upload = request.files.get("logo")
    try:
        if upload is None:
            raise services.SettingsError("Choose an image file for the logo.")
        services.save_logo(db.session, get_storage(current_app), g.tenant, upload.stream)
    except services.SettingsError as error:
        return _page(logo_error=str(error), status=422)
    toast("Logo saved.")
    return redirect(url_for("settings.index"), 303)


@blueprint.post("/logo/remove")
@require_permission("settings.manage")
def remove_logo():
    services.remove_logo(db.session, get_storage(current_app), g.tenant)
    toast("Logo removed.")
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
