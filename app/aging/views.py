"""Aging pages: the dashboard (buckets, top overdue clients, trend, DSO), the AR aging report
with filters, drill-down and exports, one client's buckets (a fragment for the client page),
and the admins' aging settings. Every page first brings the maintained summary to the
tenant's date (`services.ensure_current`)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, request, url_for
from sqlalchemy import select

from app.aging import exports, services
from app.aging.forms import AgingSettingsForm
from app.clients.models import Client
from app.core.clock import tenant_today
from app.core.pages import render_page, toast
from app.core.prepared import prepared_statements
from app.core.terminology import term
from app.extensions import db
from app.settings.services import workspace_settings
from tenants.context import require_permission
from tenants.models import User

blueprint = Blueprint("aging", __name__, url_prefix="/t/<tenant_slug>/aging")
EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _client_or_404(client_id: int) -> Client:
    # The session is bound to the URL's tenant: another tenant's id finds nothing here. A
    # deleted client is found: what it still owes is in the aging, so its drill-down is too.
    client = db.session.get(Client, client_id)
    if client is None:
        abort(404)
    return client


def _collectors() -> dict[int, str]:
    """The collectors named on clients, for the report's filter and its rows: one statement
    (the clients' collectors from their index, each looked up by id)."""
    named = select(Client.collector_user_id).where(Client.collector_user_id.is_not(None))
    users = db.session.execute(select(User.id, User.full_name).where(User.id.in_(named)))
    return dict(sorted(users, key=lambda u: u[1].lower()))


@blueprint.get("/")
@require_permission("invoices.view")
def index():
    today = tenant_today(db.session)
    # The dashboard's statements, of a fixed shape and none a search: planned once per
    # connection (the top clients' took 0.7 ms to plan and 0.3 ms to run).
    with prepared_statements(db.session):
        buckets, basis = services.ensure_current_with_basis(db.session, today)
        context = {
            "totals": services.bucket_totals(db.session, buckets, today),
            "top": services.top_overdue_clients(db.session, buckets),
            "trend": services.trend(db.session, today),
        }
    return render_page(
        "aging/index.html",
        today=today,
        buckets=buckets,
        basis=services.BASIS_LABELS[basis],
        **context,
    )


def _report(page_size: int | None = 50):
    today = tenant_today(db.session)
    buckets = services.ensure_current(db.session, today)
    filters = services.AgingFilters.from_args(request.args, buckets)
    report = services.client_rows(db.session, buckets, filters, page_size=page_size)
    return today, buckets, filters, report


@blueprint.get("/report")
@require_permission("invoices.view")
def report():
    # Prepared like the aging page's unless it searches for a client by name (the search's
    # trigram index needs the pattern at planning). The filters are read first: a search is
    # known from the URL alone.
    with prepared_statements(db.session, enabled=not (request.args.get("q") or "").strip()):
        today, buckets, filters, report = _report()
        return render_page(
            "aging/report.html",
            block="aging_results",
            today=today,
            buckets=buckets,
            filters=filters,
            report=report,
            collectors=_collectors(),
        )


def _filters_text(filters: services.AgingFilters, buckets: services.Buckets) -> str:
    parts = []
    if filters.currency:
        parts.append(f"currency {filters.currency}")
    if filters.q:
        parts.append(f"{term('client')} “{filters.q}”")
    if filters.min_overdue is not None:
        parts.append(f"overdue at least {filters.min_overdue}")
    if filters.bucket is not None:
        parts.append(f"owing in {buckets.long_labels[filters.bucket]}")
    if filters.collector_id is not None:
        parts.append(f"collector {_collectors().get(filters.collector_id, '?')}")
    return ", ".join(parts) or f"all {term('clients')}"


@blueprint.get("/report.<kind>")
@require_permission("invoices.view")
def export(kind: str):
    if kind not in EXPORT_TYPES:
        abort(404)
    today, buckets, filters, report = _report(page_size=None)
    if kind == "csv":
        body = exports.report_csv(report, buckets)
    elif kind == "xlsx":
        body = exports.report_xlsx(report, buckets, today)
    else:
        body = exports.report_pdf(
            g.tenant,
            workspace_settings(db.session, g.tenant.id),
            report,
            buckets,
            today,
            _filters_text(filters, buckets),
        )
    name = f"ar-aging-{today.isoformat()}.{kind}"
    return Response(
        body,
        mimetype=EXPORT_TYPES[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@blueprint.get("/clients/<int:client_id>/invoices")
@require_permission("invoices.view")
def client_invoices(client_id: int):
    """The drill-down: a client's invoices that owe money, in one bucket (or all); a fragment
    for htmx (expanded under the report's row), the whole page for a normal link."""
    client = _client_or_404(client_id)
    today = tenant_today(db.session)
    buckets = services.ensure_current(db.session, today)
    raw = request.args.get("bucket", "")
    bucket = int(raw) if raw.isdigit() and int(raw) < len(buckets) else None
    currency = (request.args.get("currency") or "").upper()[:3] or None
    rows = services.invoices_of(db.session, client.id, bucket, currency)
    return render_page(
        "aging/client_invoices.html",
        block="drill_down",
        client=client,
        rows=rows,
        bucket=bucket,
        currency=currency,
        buckets=buckets,
        today=today,
    )


@blueprint.get("/clients/<int:client_id>")
@require_permission("invoices.view")
def client_aging(client_id: int):
    """One client's buckets per currency: a fragment the client page includes."""
    client = _client_or_404(client_id)
    today = tenant_today(db.session)
    buckets = services.ensure_current(db.session, today)
    return render_page(
        "aging/_client_aging.html",
        client=client,
        buckets=buckets,
        agings=services.client_aging(db.session, client.id, buckets),
    )


@blueprint.route("/settings", methods=["GET", "POST"])
@require_permission("settings.manage")
def settings():
    current = services.settings_of(db.session)
    form = AgingSettingsForm(
        basis=current.aging_basis, buckets=", ".join(map(str, current.aging_buckets))
    )
    if request.method == "POST":
        form = AgingSettingsForm()
        if form.validate_on_submit():
            today = tenant_today(db.session)
            changed = services.update_settings(db.session, form.basis.data, form.bounds, today)
            toast("Aging settings saved; the aging is rebuilt." if changed else "Nothing changed.")
            return redirect(url_for("aging.index"))
        return render_page("aging/settings.html", form=form, status=422)
    return render_page("aging/settings.html", form=form)
