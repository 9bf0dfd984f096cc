"""The accounting sync pages (admins): connect through the provider's consent screen, pick the
organisation, review the first matches, follow runs (the page polls while one is active),
"Sync now" and "Full refresh", conflicts side by side, the reconciliation report (and its
CSV), the connection's settings (who owns which field, how often). The provider's webhooks
arrive at `/hooks/accounting/<provider>`."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

from app.core import consent
from app.core.pages import render_page, toast
from app.extensions import csrf, db
from app.sync import services, tally, webhooks
from app.sync.books import connector_class
from app.sync.engine import source_label
from app.sync.mapping import CONTACT_FIELDS, CONTACT_LABELS
from app.sync.models import SyncRun
from app.sync.ownership import OWNER_LABELS, contact_owners
from app.sync.reconciliation import ENTITY_LABELS, latest_report, month_rows, report_csv
from tenants.context import require_permission

log = logging.getLogger(__name__)

blueprint = Blueprint("sync", __name__, url_prefix="/t/<tenant_slug>/sync")
callbacks = Blueprint("sync_oauth", __name__, url_prefix="/sync/oauth")
hooks = Blueprint("sync_hooks", __name__, url_prefix="/hooks/accounting")
csrf.exempt(hooks)
MANAGE = "integrations.manage"
CONSENT_KEY = "sync_consent"
# Xero's and QuickBooks' notifications are a few KB.
MAX_WEBHOOK_BYTES = 256 * 1024


# The sync pages' own policy: as the app's, but "Connect" and "Reconnect" lead to the
# provider's consent page (a form POST answered by a redirect to another origin is a form
# action to that origin): its https address, and in the sandbox the stand-in on 127.0.0.1.
SYNC_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self' https:"
)
CONSENT_BASES = ("XERO_LOGIN_BASE", "QBO_DISCOVERY_URL", "ZOHO_ACCOUNTS_BASE")


@blueprint.url_value_preprocessor
def _limit_upload_size(endpoint, values):
    if endpoint == "sync.tally_upload":
        request.max_content_length = tally.MAX_UPLOAD_BYTES * tally.MAX_FILES + 64 * 1024


@blueprint.errorhandler(RequestEntityTooLarge)
def upload_too_large(error):
    toast("Those files are too large: upload at most 64 MB per file, 4 files at a time.", "error")
    return redirect(url_for("sync.tally_page"), 303)


@blueprint.after_request
def _consent_policy(response):
    local = sorted(
        {
            f"{parts.scheme}://{parts.netloc}"
            for parts in (urlsplit(current_app.config.get(name) or "") for name in CONSENT_BASES)
            if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        }
    )
    response.headers["Content-Security-Policy"] = " ".join([SYNC_PAGE_POLICY, *local])
    return response


def _redirect_uri(provider: str) -> str:
    """The one callback address registered with the provider (the same for every workspace)."""
    base = (current_app.config.get("BASE_URL") or request.host_url).rstrip("/")
    return base + url_for("sync_oauth.callback", provider=provider)


def _connection_or_404(connection_id: int):
    connection = services.accounting_connection(db.session, connection_id)
    if connection is None:
        abort(404)
    return connection


@blueprint.get("/")
@require_permission(MANAGE)
def index():
    cards = [
        (provider, services.provider_title(provider)) for provider in services.ACCOUNTING_PROVIDERS
    ]
    connections = {c.provider: c for c in services.accounting_connections(db.session)}
    return render_page(
        "sync/index.html",
        cards=cards,
        health={
            provider: services.health(db.session, connection)
            for provider, connection in connections.items()
        },
        available={p: connector_class(p) is not None for p, _ in cards},
    )


@blueprint.post("/<provider>/connect")
@require_permission(MANAGE)
def connect(provider):
    if provider not in services.ACCOUNTING_PROVIDERS:
        abort(404)
    if provider == tally.PROVIDER:  # no consent screen: the agent pairs on Tally's page
        return redirect(url_for("sync.tally_page"), 303)
    try:
        url, pending = services.begin_consent(provider, g.tenant.slug, _redirect_uri(provider))
    except services.SyncError as error:
        toast(str(error), "error")
        return redirect(url_for("sync.index"), 303)
    session[CONSENT_KEY] = pending
    return redirect(url, 303)


@callbacks.get("/<provider>/callback")
@login_required
def callback(provider):
    """The provider sends the person back here; their own workspace page finishes it."""
    return consent.hand_back(CONSENT_KEY, provider, "sync.finish")


@blueprint.get("/<provider>/finish")
@require_permission(MANAGE)
def finish(provider):
    if provider not in services.ACCOUNTING_PROVIDERS or provider == tally.PROVIDER:
        abort(404)
    pending = session.pop(CONSENT_KEY, None)
    try:
        if pending and pending.get("tenant_slug") != g.tenant.slug:
            raise services.SyncError("This sign-in was started in another workspace.")
        services.check_consent_return(pending, provider, request.args.get("state", ""))
        connection, books = services.finish_consent(
            db.session,
            provider,
            pending,
            request.args.to_dict(),
            _redirect_uri(provider),
            current_user.id,
        )
        if len(books) == 1:
            services.choose_book(db.session, connection, books[0].remote_id, current_user.id)
            toast(f"Connected to {books[0].name}. Reading your books…")
            return redirect(url_for("sync.connection", connection_id=connection.id), 303)
    except services.SyncError as error:
        toast(str(error), "error")
        return redirect(url_for("sync.index"), 303)
    return redirect(url_for("sync.organisation", connection_id=connection.id), 303)


@blueprint.route("/<int:connection_id>/organisation", methods=["GET", "POST"])
@require_permission(MANAGE)
def organisation(connection_id):
    connection = _connection_or_404(connection_id)
    offered = (connection.settings or {}).get("books_offered") or []
    if not offered:
        return redirect(url_for("sync.connection", connection_id=connection.id), 303)
    error = None
    if request.method == "POST":
        try:
            services.choose_book(
                db.session, connection, request.form.get("book_id", ""), current_user.id
            )
        except services.SyncError as refusal:
            error = str(refusal)
        else:
            toast(f"Connected to {connection.settings['book_name']}. Reading your books…")
            return redirect(url_for("sync.connection", connection_id=connection.id), 303)
    return render_page(
        "sync/organisation.html",
        status=422 if error else 200,
        connection=connection,
        title=source_label(connection.provider),
        offered=offered,
        error=error,
    )


def _connection_page(connection, status: int = 200, block: str | None = None):
    health = services.health(db.session, connection)
    runs = services.recent_runs(db.session, connection.id)
    last = next((run for run in runs if not run.active and run.status != "review"), None)
    return render_page(
        "sync/connection.html",
        block=block,
        status=status,
        connection=connection,
        title=source_label(connection.provider),
        health=health,
        runs=runs,
        problems=services.run_problems(db.session, last.id, limit=50) if last else [],
        last=last,
        report=latest_report(db.session, connection.id),
        sandbox_books=_sandbox_books(connection.provider),
    )


def _sandbox_books(provider: str) -> str | None:
    """Under make run, the page of the Xero stand-in that shows the books (where a payment
    recorded here is seen arriving)."""
    if provider != "xero" or not current_app.config.get("SANDBOX_MESSAGES_DIR"):
        return None
    return current_app.config["XERO_API_BASE"].rstrip("/") + "/_standin/xero/"


@blueprint.get("/<int:connection_id>")
@require_permission(MANAGE)
def connection(connection_id):
    return _connection_page(_connection_or_404(connection_id))


@blueprint.get("/<int:connection_id>/progress")
@require_permission(MANAGE)
def progress(connection_id):
    return _connection_page(_connection_or_404(connection_id), block="progress")


@blueprint.post("/<int:connection_id>/sync")
@require_permission(MANAGE)
def sync_now(connection_id):
    connection = _connection_or_404(connection_id)
    full = request.form.get("full") == "1"
    try:
        run = services.start_run(
            db.session, connection, "full" if full else "manual", current_user.id, full=full
        )
    except services.SyncError as error:
        toast(str(error), "error")
    else:
        if run.trigger in ("manual", "full") and run.requested_by == current_user.id:
            toast("Full refresh started." if full else "Sync started.")
        else:
            toast("A sync is running already: its progress is below.")
    return redirect(url_for("sync.connection", connection_id=connection.id), 303)


@blueprint.get("/<int:connection_id>/runs/<int:sync_run_id>")
@require_permission(MANAGE)
def run(connection_id, sync_run_id):
    connection = _connection_or_404(connection_id)
    found = db.session.get(SyncRun, sync_run_id)
    if found is None or found.connection_id != connection.id:
        abort(404)
    return render_page(
        "sync/run.html",
        connection=connection,
        title=source_label(connection.provider),
        run=found,
        problems=services.run_problems(db.session, found.id),
    )


@blueprint.route("/<int:connection_id>/review", methods=["GET", "POST"])
@require_permission(MANAGE)
def review(connection_id):
    connection = _connection_or_404(connection_id)
    reviewed = bool((connection.settings or {}).get("matched_at"))
    if request.method == "POST" and not reviewed:
        decisions = {}
        for key, value in request.form.items():
            if key.startswith("decision_") and key.removeprefix("decision_").isdigit():
                decisions[int(key.removeprefix("decision_"))] = value
        try:
            services.confirm_matches(db.session, connection, decisions, current_user.id)
        except services.SyncError as error:
            toast(str(error), "error")
        else:
            toast("Saved. Syncing your books now…")
        return redirect(url_for("sync.connection", connection_id=connection.id), 303)
    return render_page(
        "sync/review.html",
        connection=connection,
        title=source_label(connection.provider),
        matches=services.matches(db.session, connection.id),
        labels=CONTACT_LABELS,
        reviewed=reviewed,
    )


@blueprint.get("/<int:connection_id>/conflicts")
@require_permission(MANAGE)
def conflicts(connection_id):
    connection = _connection_or_404(connection_id)
    return render_page(
        "sync/conflicts.html",
        connection=connection,
        title=source_label(connection.provider),
        conflicts=services.open_conflicts(db.session, connection.id),
        labels=CONTACT_LABELS,
    )


@blueprint.post("/<int:connection_id>/conflicts/<int:conflict_id>")
@require_permission(MANAGE)
def resolve(connection_id, conflict_id):
    connection = _connection_or_404(connection_id)
    conflict = services.get_conflict(db.session, connection.id, conflict_id)
    if conflict is None:
        abort(404)
    side = request.form.get("keep", "")
    try:
        services.resolve_conflict(db.session, connection, conflict, side, current_user.id)
    except services.SyncError as error:
        toast(str(error), "error")
    else:
        kept = "Duebook's" if side == "duebook" else f"{source_label(connection.provider)}'s"
        toast(f"{conflict.label}: {kept} values kept. Both sides agree after this sync.")
    return redirect(url_for("sync.conflicts", connection_id=connection.id), 303)


@blueprint.get("/<int:connection_id>/reconciliation")
@require_permission(MANAGE)
def reconciliation(connection_id):
    connection = _connection_or_404(connection_id)
    report = latest_report(db.session, connection.id)
    title = source_label(connection.provider)
    if report is not None and request.args.get("format") == "csv":
        return Response(
            report_csv(report, title),
            mimetype="text/csv",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="reconciliation-{connection.provider}-'
                    f'{report.created_at:%Y-%m-%d}.csv"'
                )
            },
        )
    return render_page(
        "sync/reconciliation.html",
        connection=connection,
        title=title,
        report=report,
        months=month_rows(report) if report else [],
        entity_labels=ENTITY_LABELS,
        running=services.active_run(db.session, connection.id),
    )


@blueprint.route("/<int:connection_id>/settings", methods=["GET", "POST"])
@require_permission(MANAGE)
def settings(connection_id):
    connection = _connection_or_404(connection_id)
    errors, values = {}, {}
    if request.method == "POST":
        errors = services.save_settings(db.session, connection, request.form)
        if not errors:
            toast("Sync settings saved.")
            return redirect(url_for("sync.connection", connection_id=connection.id), 303)
        values = request.form.to_dict()
    current = connection.settings or {}
    owners = contact_owners(current)
    return render_page(
        "sync/settings.html",
        status=422 if errors else 200,
        connection=connection,
        title=source_label(connection.provider),
        fields=[
            (name, CONTACT_LABELS[name], values.get(f"owner_{name}", owners[name]))
            for name in CONTACT_FIELDS
        ],
        owner_labels=OWNER_LABELS,
        intervals=services.INTERVAL_CHOICES,
        interval=int(values.get("interval_minutes") or current.get("interval_minutes") or 60),
        payment_account_code=values.get(
            "payment_account_code", current.get("payment_account_code", "")
        ),
        errors=errors,
    )


@blueprint.route("/<int:connection_id>/disconnect", methods=["GET", "POST"])
@require_permission(MANAGE)
def disconnect(connection_id):
    connection = _connection_or_404(connection_id)
    title = source_label(connection.provider)
    if request.method == "GET":
        return render_page("sync/disconnect.html", connection=connection, title=title)
    services.disconnect(db.session, connection)
    toast(f"{title}: disconnected. Nothing syncs any more; the records stay in Duebook.")
    return redirect(url_for("sync.index"), 303)


# Tally: the agent, the company, files ---------------------------------------------------------


def _tally_page(status: int = 200, block: str | None = None, **extra):
    connection = tally.tally_connection(db.session)
    settings = (connection.settings or {}) if connection else {}
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    return render_page(
        "sync/tally.html",
        block=block,
        status=status,
        connection=connection,
        settings=settings,
        agent=tally.agent_status(connection) if connection else None,
        health=services.health(db.session, connection)
        if connection and settings.get("book_id")
        else None,
        states=tally.state_choices(),
        ledger_fields=tally.ledger_fields(connection),
        server=(current_app.config.get("BASE_URL") or request.host_url).rstrip("/"),
        sandbox_tally=current_app.config.get("TALLY_STANDIN_URL")
        if current_app.config.get("SANDBOX_MESSAGES_DIR")
        else None,
        **extra,
    )


def _tally_or_404():
    connection = tally.tally_connection(db.session)
    if connection is None:
        abort(404)
    return connection


@blueprint.get("/tally")
@require_permission(MANAGE)
def tally_page():
    return _tally_page()


@blueprint.get("/tally/agent")
@require_permission(MANAGE)
def tally_agent():
    """The agent's part of the page, polled while the page waits for the agent to pair."""
    return _tally_page(block="agent")


@blueprint.post("/tally/code")
@require_permission(MANAGE)
def tally_code():
    """A one-time pairing code, shown once (only its digest is kept)."""
    connection = tally.set_up(db.session, current_user.id)
    replace = request.form.get("replace") == "1"
    code = tally.pairing_code(db.session, connection, replace)
    return _tally_page(code=code)


@blueprint.post("/tally/revoke")
@require_permission(MANAGE)
def tally_revoke():
    connection = _tally_or_404()
    tally.revoke_agent(db.session, connection)
    toast("The agent’s access is revoked: it stops at its next call.")
    return redirect(url_for("sync.tally_page"), 303)


@blueprint.post("/tally/companies")
@require_permission(MANAGE)
def tally_companies():
    connection = _tally_or_404()
    try:
        offered = tally.find_companies(db.session, connection)
    except services.SyncError as error:
        toast(str(error), "error")
        return redirect(url_for("sync.tally_page"), 303)
    if len(offered) == 1:
        services.choose_book(db.session, connection, offered[0]["id"], current_user.id)
        toast(f"Connected to {offered[0]['name']} in Tally. Reading its debtors…")
        return redirect(url_for("sync.connection", connection_id=connection.id), 303)
    return redirect(url_for("sync.organisation", connection_id=connection.id), 303)


@blueprint.post("/tally/files-only")
@require_permission(MANAGE)
def tally_files_only():
    connection = tally.set_up(db.session, current_user.id)
    errors = tally.use_files(db.session, connection, request.form, current_user.id)
    if errors:
        db.session.rollback()
        return _tally_page(status=422, errors=errors, values=request.form.to_dict())
    toast("Saved. Upload your Tally exports to bring in its debtors and bills.")
    return redirect(url_for("sync.tally_page"), 303)


@blueprint.post("/tally/upload")
@require_permission(MANAGE)
def tally_upload():
    connection = _tally_or_404()
    run, errors = tally.upload(
        db.session, connection, request.files.getlist("files"), current_user.id
    )
    if errors:
        db.session.rollback()
        return _tally_page(status=422, errors=errors)
    toast("Uploaded. Reading the files…")
    return redirect(url_for("sync.connection", connection_id=connection.id), 303)


@blueprint.post("/tally/ledgers")
@require_permission(MANAGE)
def tally_ledgers():
    connection = _tally_or_404()
    errors = tally.save_ledger_names(db.session, connection, request.form)
    if errors:
        db.session.rollback()
        return _tally_page(status=422, errors=errors, values=request.form.to_dict())
    toast("Ledger names saved: the next sync reads and writes Tally's vouchers with them.")
    return redirect(url_for("sync.tally_page"), 303)


@blueprint.get("/tally/import-file")
@require_permission(MANAGE)
def tally_import_file():
    connection = _tally_or_404()
    if not (connection.settings or {}).get("matched_at"):
        toast("Bring in Tally’s debtors first: then Duebook knows what Tally already has.", "error")
        return redirect(url_for("sync.tally_page"), 303)
    made = tally.import_file(db.session, connection)
    return Response(
        made.content,
        mimetype="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="{tally.import_file_name(connection)}"',
            "Cache-Control": "no-store",
        },
    )


# Webhooks ------------------------------------------------------------------------------------


@hooks.url_value_preprocessor
def _limit_body_size(endpoint, values):
    request.max_content_length = MAX_WEBHOOK_BYTES


@hooks.errorhandler(RequestEntityTooLarge)
def body_too_large(error):
    return "The body is too large.", 413, {"Content-Type": "text/plain; charset=utf-8"}


@hooks.post("/<provider>")
def webhook(provider):
    """No login and no CSRF token: the signature, over the exact bytes with the app's webhook
    key, proves the provider sent it. Xero wants 200 with an empty body (401 when the signature
    fails, its intent-to-receive check included); the changes are pulled by a run."""
    if provider not in webhooks.SIGNING_KEYS:
        abort(404)
    status = webhooks.receive(db.session, provider, request.get_data(cache=False), request.headers)
    return "", status
