"""Duebook: the application factory, the composition root that wires the areas together.

The areas, their pages, hooks and commands are imported inside the register_* functions, not
at the top of this module: every module of the app is a submodule of this package, so an
import at the top here would load every area whenever any one module of
the app is imported, and would tie each area into one cycle with this file. The job modules
are not loaded here (they use this factory): each process's entry point loads them
(`wsgi.py`, `jobs/worker.py`, `jobs/scheduler.py`)."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as config_module
from app.core import handover, request_input
from app.extensions import csrf, db, htmx, limiter, login_manager

ROOT_TEMPLATES = "../templates"
ROOT_STATIC = "../static"


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder=ROOT_TEMPLATES, static_folder=ROOT_STATIC)
    app.config.update(config_module.from_environment() if config is None else config)
    if app.config.get("TRUSTED_PROXY_HOPS"):
        hops = app.config["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    register_extensions(app)
    register_blueprints(app)
    register_area_hooks(app)
    register_errorhandlers(app)
    register_commands(app)
    register_page_helpers(app)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the migrate command reports itself
    # One line per provider request would cost workers more than the request (and clutter).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return app


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (every model registered before the first query)
    from app.audit import services as audit_services  # noqa: F401  (the audit recorder)
    from app.auth import services as accounts
    from tenants import context as tenant_context
    from tenants.binding import recycle_connections_after

    # The tenant is resolved from the URL before any before_request handler (CSRF included)
    # runs, so a request for another tenant's URL is a 404 whatever else is wrong with it.
    tenant_context.init_app(app)
    request_input.init_app(app)  # before CSRFProtect reads a form, and before any URL rule
    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = None  # the server-side login session does this job
    login_manager.user_loader(accounts.load_user_from_session_token)
    accounts.init_app(app)
    handover.init_app(app)
    with app.app_context():
        recycle_connections_after(db.engine, app.config["DB_MAX_TENANTS_PER_CONNECTION"])


def register_blueprints(app: Flask) -> None:
    from app.aging.views import blueprint as aging
    from app.api.oauth import blueprint as api_oauth
    from app.api.odata import blueprint as odata
    from app.api.resources import cases as api_cases  # noqa: F401  (declares its routes)
    from app.api.resources import client_records as api_client_records  # noqa: F401
    from app.api.resources import clients as api_clients  # noqa: F401
    from app.api.resources import credit_notes as api_credit_notes  # noqa: F401
    from app.api.resources import events as api_events  # noqa: F401
    from app.api.resources import money as api_money  # noqa: F401
    from app.api.resources import notices as api_notices  # noqa: F401
    from app.api.resources import projects as api_projects  # noqa: F401
    from app.api.resources import templates as api_templates  # noqa: F401
    from app.api.rest import blueprint as api
    from app.api.views import blueprint as api_keys
    from app.api.views import reference as api_reference
    from app.audit.views import blueprint as audit
    from app.auth.views import blueprint as auth
    from app.banking.views import blueprint as banking
    from app.calendars.views import blueprint as calendars
    from app.calendars.views import callbacks as calendar_callbacks
    from app.calendars.views import feed_page as calendar_feed
    from app.campaigns.views import blueprint as campaigns
    from app.clients.document_views import blueprint as client_documents
    from app.clients.imports.views import blueprint as client_files
    from app.clients.views import blueprint as clients
    from app.collections.cases.views import blueprint as collection_cases
    from app.collections.engine.views import blueprint as collections
    from app.collections.notices.views import blueprint as notices
    from app.collections.work.views import blueprint as collector_work
    from app.custom_fields.views import blueprint as custom_fields
    from app.dashboard.views import blueprint as dashboard
    from app.gateways.reconciliation_views import blueprint as gateway_reconciliation
    from app.gateways.views import blueprint as gateway_hooks
    from app.health.views import blueprint as health
    from app.integrations.agent_views import blueprint as agent_api
    from app.integrations.views import blueprint as integrations
    from app.invoicing.pdf_views import blueprint as invoice_pdfs
    from app.invoicing.views import blueprint as invoicing
    from app.library.tenant.views import blueprint as my_templates
    from app.library.views import blueprint as library
    from app.message_templates.views import blueprint as message_templates
    from app.messaging.email_views import blueprint as email_links
    from app.messaging.sms_views import blueprint as sms_hooks
    from app.messaging.views import blueprint as messages
    from app.messaging.whatsapp_views import blueprint as whatsapp_hooks
    from app.notifications.views import blueprint as notifications
    from app.ops.views import blueprint as ops
    from app.paylinks.views import blueprint as paylinks
    from app.paylinks.views import pay_page
    from app.payments.opening.views import blueprint as opening_balances
    from app.payments.views import blueprint as payments
    from app.projects.views import blueprint as projects
    from app.reports.views import blueprint as reports
    from app.rules.views import blueprint as rules
    from app.sandbox.views import blueprint as sandbox
    from app.settings.branding_views import blueprint as branding
    from app.settings.views import blueprint as settings
    from app.setup.views import blueprint as setup
    from app.sync.views import blueprint as accounting_sync
    from app.sync.views import callbacks as sync_callbacks
    from app.sync.views import hooks as sync_hooks
    from app.team.views import blueprint as team
    from app.webhooks.views import blueprint as webhooks

    for blueprint in (messages, notifications, ops):
        app.register_blueprint(blueprint)
    for blueprint in (
        auth,
        dashboard,
        clients,
        client_documents,
        client_files,
        projects,
        team,
        audit,
        health,
        sandbox,
        library,
        my_templates,
        invoicing,
        invoice_pdfs,
        message_templates,
        payments,
        opening_balances,
        banking,
        settings,
        branding,
        custom_fields,
        setup,
        whatsapp_hooks,
    ):
        app.register_blueprint(blueprint)
    app.register_blueprint(sms_hooks)
    app.register_blueprint(gateway_hooks)
    app.register_blueprint(gateway_reconciliation)
    app.register_blueprint(integrations)
    app.register_blueprint(agent_api)
    app.register_blueprint(email_links)
    app.register_blueprint(campaigns)
    for blueprint in (aging, collections, notices, collection_cases, collector_work):
        app.register_blueprint(blueprint)
    app.register_blueprint(paylinks)
    app.register_blueprint(pay_page)
    for blueprint in (accounting_sync, sync_callbacks, sync_hooks):
        app.register_blueprint(blueprint)
    for blueprint in (calendars, calendar_callbacks, calendar_feed):
        app.register_blueprint(blueprint)
    for blueprint in (api, api_oauth, odata, api_keys, api_reference):
        app.register_blueprint(blueprint)
    app.register_blueprint(webhooks)
    app.register_blueprint(reports)
    app.register_blueprint(rules)


def register_area_hooks(app: Flask) -> None:
    """Areas that react to what lower areas do (`app.core.signals`), or fill the slots of lower
    areas' pages (a client page tab, an invoice page panel), connect here, so the lower areas
    never import them."""
    from app.calendars import hooks as calendars_hooks
    from app.campaigns import hooks as campaigns_hooks
    from app.clients import hooks as clients_hooks
    from app.collections import hooks as collections_hooks
    from app.core import event_sources
    from app.custom_fields import hooks as custom_fields_hooks
    from app.dashboard import hooks as dashboard_hooks
    from app.gateways import hooks as gateways_hooks
    from app.invoicing import hooks as invoicing_hooks
    from app.library import hooks as library_hooks
    from app.message_templates import hooks as message_templates_hooks
    from app.messaging import hooks as messaging_hooks
    from app.notifications import hooks as notifications_hooks
    from app.paylinks import hooks as paylinks_hooks
    from app.payments import hooks as payments_hooks
    from app.projects import hooks as projects_hooks
    from app.reports import hooks as reports_hooks
    from app.rules import hooks as rules_hooks
    from app.sync import hooks as sync_hooks
    from app.webhooks import hooks as webhooks_hooks

    for hooks in (
        event_sources,
        custom_fields_hooks,
        clients_hooks,
        invoicing_hooks,
        library_hooks,
        projects_hooks,
        payments_hooks,
        gateways_hooks,
        message_templates_hooks,
        messaging_hooks,
        campaigns_hooks,
        collections_hooks,
        notifications_hooks,
        paylinks_hooks,
        sync_hooks,
        calendars_hooks,
        webhooks_hooks,
        reports_hooks,
        rules_hooks,
        dashboard_hooks,
    ):
        hooks.init_app(app)


def register_errorhandlers(app: Flask) -> None:
    messages = {
        400: ("Bad request", "Something in that request was not right."),
        403: ("Not allowed", "Your role does not allow this. Ask an admin of this workspace."),
        404: ("Not found", "There is nothing here, or you do not have access to it."),
        405: ("Not allowed", "That action is not available here."),
        413: (
            "File too large",
            "That file is larger than this form accepts. Split it, or shrink it, and try again.",
        ),
        429: ("Too many attempts", "Please wait a little and try again."),
        500: (
            "Something went wrong",
            "We have been told and are looking into it. Nothing you saved was lost.",
        ),
    }

    def render_error(error):
        code = getattr(error, "code", 500) or 500
        if request.path.startswith("/api/v1/"):
            # An address under the API that no operation has (or a server error): a problem
            # document, as the API's other answers, never an HTML page.
            from app.api.rest import http_problem

            if code == 500:
                db.session.rollback()
            return http_problem(error)
        if request.path.startswith("/api/odata/") or request.path == "/api/odata":
            # The OData feed's clients read OData's error body.
            from app.api.odata import http_error

            if code == 500:
                db.session.rollback()
            return http_error(error)
        title, text = messages.get(code, messages[500])
        if isinstance(error, request_input.UnsavableCharacter):
            title, text = error.title, error.text
        if isinstance(error, CSRFError):
            title = "This form has expired"
            text = (
                "The form was open too long or was sent from somewhere else. "
                "Go back, reload the page and try again."
            )
        if code == 500:
            db.session.rollback()
        template = (
            "errors/fragment.html" if request.headers.get("HX-Request") else "errors/page.html"
        )
        response = app.make_response(
            (render_template(template, code=code, title=title, text=text), code)
        )
        retry_after = getattr(error, "retry_after", None) or (
            error.get_response().headers.get("Retry-After") if code == 429 else None
        )
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def refuse_data_the_database_refused(error):
        # A value that got past the forms' checks (a number out of range, say) and that the
        # database refused: the request was wrong, not the server.
        db.session.rollback()
        logging.getLogger(__name__).warning(
            "database refused a value from %s %s: %s", request.method, request.path, error.orig
        )
        return render_error(BadRequest())

    for code in messages:
        app.register_error_handler(code, render_error)
    app.register_error_handler(CSRFError, render_error)
    app.register_error_handler(DataError, refuse_data_the_database_refused)


def register_commands(app: Flask) -> None:
    from app.cli import demo_cli, users_cli
    from app.collections.engine.cli import collections_cli
    from app.gateways.cli import gateways_cli
    from app.integrations.cli import secrets_cli
    from app.library.cli import library_cli
    from app.tenants_cli import tenants_cli

    app.cli.add_command(tenants_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(library_cli)
    app.cli.add_command(secrets_cli)
    app.cli.add_command(collections_cli)
    app.cli.add_command(gateways_cli)


def register_page_helpers(app: Flask) -> None:
    from app.core import form_once, links, navigation, pages, terminology

    pages.init_app(app)
    form_once.init_app(app)
    navigation.init_app(app)
    terminology.init_app(app)
    links.init_app(app)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(self)")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if g.get("tenant") is not None or request.path.startswith(("/account", "/tenants")):
            headers.setdefault("Cache-Control", "no-store")
        headers.add("Vary", "HX-Request")
        return response
