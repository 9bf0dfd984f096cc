"""The pages of the API: admins' API keys and OAuth clients (Settings → API keys), the OpenAPI
document and its rendered reference."""

from __future__ import annotations

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, url_for

from app.api import services
from app.api.models import SCOPES
from app.api.openapi import document
from app.core.pages import render_page, toast
from app.extensions import db
from tenants.context import require_permission

blueprint = Blueprint("api_keys", __name__, url_prefix="/t/<tenant_slug>/settings/api-keys")
reference = Blueprint("api_reference", __name__)


def _page(values=None, errors=None, new_secret=None, status=200, kind="key"):
    return render_page(
        "api/keys.html",
        status=status,
        keys=services.workspace_keys(db.session, g.tenant.id),
        oauth_clients=services.workspace_keys(db.session, g.tenant.id, kind="oauth_client"),
        scopes=SCOPES,
        # The form the values and errors belong to: a key's or an OAuth client's.
        form_kind=kind,
        values=values or {},
        errors=errors or {},
        new_secret=new_secret,
    )


@blueprint.get("/")
@require_permission("settings.manage")
def index():
    return _page()


@blueprint.post("/")
@require_permission("settings.manage")
def create():
    name, scopes = request.form.get("name", ""), request.form.getlist("scopes")
    try:
        key, secret = services.create_key(
            db.session, g.tenant.id, name, scopes, g.membership.user_id
        )
    except services.KeyRefused as refused:
        return _page({"name": name, "scopes": scopes}, refused.errors, status=422)
    # Shown on this answer only (never redirected to, never stored): reloading loses it.
    return _page(new_secret=(key, secret), status=201)


@blueprint.post("/oauth-clients")
@require_permission("settings.manage")
def create_oauth_client():
    name, scopes = request.form.get("name", ""), request.form.getlist("scopes")
    try:
        client, secret = services.create_key(
            db.session, g.tenant.id, name, scopes, g.membership.user_id, kind="oauth_client"
        )
    except services.KeyRefused as refused:
        return _page(
            {"name": name, "scopes": scopes}, refused.errors, status=422, kind="oauth_client"
        )
    # As a key's: the secret is on this answer only.
    return _page(new_secret=(client, secret), status=201, kind="oauth_client")


@blueprint.post("/<int:api_key_id>/revoke")
@require_permission("settings.manage")
def revoke(api_key_id: int):
    key = services.get_key(db.session, g.tenant.id, api_key_id)
    if key is None:
        abort(404)
    services.revoke_key(db.session, key)
    toast(f"“{key.name}” is revoked: calls with it are refused from now on.")
    return redirect(url_for("api_keys.index"), 303)


@reference.get("/api/v1/openapi.json")
def openapi_document():
    return jsonify(document())


@reference.get("/api/docs")
def docs():
    response = render_template("api/docs.html")
    headers = {
        # Swagger UI sets style attributes as it draws; its scripts stay 'self' only.
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
            "form-action 'self'"
        )
    }
    return response, 200, headers
