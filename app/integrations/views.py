"""The integrations page (admins): the catalogue of connectors with their status and health;
connect or edit, test, enable, disable and disconnect."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.core.pages import render_page, toast
from app.extensions import db
from app.integrations import services
from app.integrations.catalogue import entry_for
from tenants.context import require_permission

blueprint = Blueprint("integrations", __name__, url_prefix="/t/<tenant_slug>/integrations")


def _connection_or_404(connection_id: int):
    connection = services.get_connection(db.session, connection_id)
    if connection is None:
        abort(404)
    return connection


def _title(provider: str) -> str:
    connector = services.connector_for(provider)
    entry = entry_for(provider)
    return connector.title if connector else (entry.title if entry else provider)


@blueprint.get("/")
@require_permission("integrations.manage")
def index():
    return render_page(
        "integrations/index.html",
        categories=services.catalogue_cards(db.session),
        test_job=services.shown_test(g.tenant.id, request.args.get("job_id", "")),
    )


def _connect_page(
    provider: str,
    connector,
    values: dict,
    errors: dict,
    status: int = 200,
    block: str | None = None,
    checked_domain: bool = False,
):
    """The connection's form; an SMTP connection's page also has the "Your domain" panel, which
    asks for its DNS check once shown (`checked_domain`: the check is run now, for that ask)."""
    connection = services.live_connection(db.session, provider)
    has_domain_panel = provider == "smtp" and connection is not None
    return render_page(
        "integrations/connect.html",
        block=block,
        status=status,
        domain_report=services.mail_domain_report(connection)
        if checked_domain and has_domain_panel
        else None,
        domain_check_url=url_for("integrations.check_domain", connection_id=connection.id)
        if has_domain_panel
        else None,
        provider=provider,
        connector=connector,
        connection=connection,
        values=values,
        errors=errors,
        stored_secrets=services.stored_secret_names(connection),
        form_error=services.FORM_ERROR,
    )


def _form_connector(provider: str):
    """The connector a form connects (credentials typed in), else 404: an accounting system is
    connected through its own consent page (the accounting sync's), not this form."""
    connector = services.connector_for(provider)
    if connector is None or getattr(connector, "channel", None) == "accounting":
        abort(404)
    return connector


@blueprint.get("/<provider>/connect")
@require_permission("integrations.manage")
def connect(provider):
    connector = _form_connector(provider)
    values = services.form_values(services.live_connection(db.session, provider))
    return _connect_page(provider, connector, values, {})


@blueprint.post("/<int:connection_id>/domain-check")
@require_permission("integrations.manage")
def check_domain(connection_id):
    """ "Check again" on the "Your domain" panel: the panel for htmx, else the whole page."""
    connection = _connection_or_404(connection_id)
    if connection.provider != "smtp":
        abort(404)
    connector = services.connector_for("smtp")
    values = services.form_values(connection)
    return _connect_page("smtp", connector, values, {}, block="mail_domain", checked_domain=True)


@blueprint.post("/<provider>/connect")
@require_permission("integrations.manage")
def save(provider):
    connector = _form_connector(provider)
    connection, errors = services.save_connection(
        db.session, provider, request.form, user_id=current_user.id
    )
    if errors:
        # Only the settings go back into the form: a secret is never echoed to the browser.
        values = {
            item.name: request.form.get(item.name, "")
            for item in connector.fields
            if not item.secret
        }
        return _connect_page(provider, connector, values, errors, status=422)
    if services.awaits_verification(connection):
        # Nothing is sent or received until the provider has confirmed the credentials.
        job_id = services.request_test(db.session, connection)
        toast(f"{connector.title}: saved. Checking the credentials with the provider…")
        return redirect(
            url_for("integrations.index", job_id=job_id, _anchor=f"integration-{provider}"), 303
        )
    toast(f"{connector.title}: saved. Use “Test connection” to check it.")
    return redirect(url_for("integrations.index", _anchor=f"integration-{provider}"), 303)


@blueprint.post("/<int:connection_id>/test")
@require_permission("integrations.manage")
def test(connection_id):
    connection = _connection_or_404(connection_id)
    job_id = services.request_test(db.session, connection)
    return redirect(
        url_for("integrations.index", job_id=job_id, _anchor=f"integration-{connection.provider}"),
        303,
    )


@blueprint.get("/<int:connection_id>/tests/<job_id>")
@require_permission("integrations.manage")
def test_result(connection_id, job_id):
    connection = _connection_or_404(connection_id)
    progress = services.test_progress(g.tenant.id, connection.id, job_id)
    if progress is None:
        abort(404)
    return render_page(
        "integrations/test_result.html",
        block="result",
        connection=connection,
        job_id=job_id,
        progress=progress,
        title=_title(connection.provider),
    )


@blueprint.post("/<int:connection_id>/enable")
@require_permission("integrations.manage")
def enable(connection_id):
    return _switch(connection_id, services.enable, "enabled")


@blueprint.post("/<int:connection_id>/disable")
@require_permission("integrations.manage")
def disable(connection_id):
    return _switch(connection_id, services.disable, "disabled")


def _switch(connection_id: int, action, done: str):
    connection = _connection_or_404(connection_id)
    title = _title(connection.provider)
    try:
        action(connection)
    except services.IntegrationError as error:
        toast(str(error), "error")
    else:
        toast(f"{title}: {done}.")
    return redirect(
        url_for("integrations.index", _anchor=f"integration-{connection.provider}"), 303
    )


@blueprint.route("/<int:connection_id>/disconnect", methods=["GET", "POST"])
@require_permission("integrations.manage")
def disconnect(connection_id):
    connection = _connection_or_404(connection_id)
    title = _title(connection.provider)
    if request.method == "GET":
        return render_page(
            "integrations/disconnect.html",
            connection=connection,
            title=title,
            channel=getattr(entry_for(connection.provider), "channel", None),
        )
    services.disconnect(db.session, connection)
    toast(f"{title}: disconnected. Its saved credentials are deleted.")
    return redirect(url_for("integrations.index"), 303)
