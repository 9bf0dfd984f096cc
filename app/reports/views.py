"""The scheduled reports page: a member's schedules (an admin's: everyone's), a new schedule
for the report (and filters) the report page sent them from, pause, resume, delete and
*Send now*, with each schedule's last runs and their outcome."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.core.clock import tenant_today
from app.core.pages import render_page, toast
from app.extensions import db
from app.reports import services, tables
from app.reports.models import FORMATS, FREQUENCIES, REPORTS, ReportSchedule
from tenants.context import can, require_permission

blueprint = Blueprint("reports", __name__, url_prefix="/t/<tenant_slug>/reports")
# Every role may see some report; what each may schedule is checked per report.
PAGE_PERMISSION = "invoices.view"
# The report page's filters travel through the form as hidden fields with this prefix.
FILTER_PREFIX = "filter."


def _schedule_or_404(schedule_id: int) -> ReportSchedule:
    schedule = db.session.get(ReportSchedule, schedule_id)
    if schedule is None or not services.may_manage(schedule, current_user.id, g.membership.role):
        abort(404)
    return schedule


def _page(values: dict, filters: dict, errors: dict, status: int = 200):
    schedules = services.visible_schedules(db.session, current_user.id, g.membership.role)
    return render_page(
        "reports/index.html",
        status=status,
        schedules=schedules,
        runs=services.last_runs(db.session, [s.id for s in schedules]),
        filters_text={
            s.id: tables.describe_filters(s.report, s.filters, db.session) for s in schedules
        },
        members=services.members(db.session, g.tenant.id),
        reports={k: v for k, v in REPORTS.items() if can(tables.PERMISSIONS[k])},
        formats=FORMATS,
        frequencies=FREQUENCIES,
        weekdays=services.WEEKDAYS,
        may_send_outside=can(services.OUTSIDE_PERMISSION),
        values=values,
        filters=filters,
        new_filters_text=tables.describe_filters(values.get("report", ""), filters, db.session),
        errors=errors,
    )


def _filters_from(args) -> dict:
    report = args.get("report", "")
    if report not in REPORTS:
        return {}
    return tables.saved_filters(db.session, report, args, tenant_today(db.session))


@blueprint.get("/")
@require_permission(PAGE_PERMISSION)
def index():
    """The schedules, and the form for a new one: `?report=aging&currency=INR…` from a
    report's page pre-selects the report and carries its filters."""
    report = request.args.get("report", "")
    values = {
        "report": report if report in REPORTS else "",
        "format": "xlsx",
        "frequency": "weekly",
        "weekday": "0",
        "month_day": "1",
        "send_at": "08:00",
        "member_ids": [str(current_user.id)],
        "outside_addresses": "",
    }
    return _page(values, _filters_from(request.args), {})


@blueprint.post("/")
@require_permission(PAGE_PERMISSION)
def create():
    form = request.form
    values = {key: form.get(key, "") for key in form if not key.startswith(FILTER_PREFIX)}
    values["member_ids"] = form.getlist("member_ids")
    carried = {k[len(FILTER_PREFIX) :]: v for k, v in form.items() if k.startswith(FILTER_PREFIX)}
    filters = _filters_from({**carried, "report": values.get("report", "")})
    try:
        services.create_schedule(
            db.session, g.tenant.id, values, filters, current_user.id, g.membership.role
        )
    except services.ScheduleError as problem:
        return _page(values, filters, problem.errors, status=422)
    toast("Report scheduled.")
    return redirect(url_for("reports.index"))


@blueprint.post("/<int:report_schedule_id>/pause")
@require_permission(PAGE_PERMISSION)
def pause(report_schedule_id: int):
    schedule = _schedule_or_404(report_schedule_id)
    paused = request.form.get("paused") != "0"
    services.set_paused(db.session, schedule, paused)
    toast("Schedule paused: nothing is sent until you resume it." if paused else "Resumed.")
    return redirect(url_for("reports.index"))


@blueprint.post("/<int:report_schedule_id>/delete")
@require_permission(PAGE_PERMISSION)
def delete(report_schedule_id: int):
    services.delete_schedule(db.session, _schedule_or_404(report_schedule_id))
    toast("Schedule deleted.")
    return redirect(url_for("reports.index"))


@blueprint.post("/<int:report_schedule_id>/send")
@require_permission(PAGE_PERMISSION)
def send_now(report_schedule_id: int):
    schedule = _schedule_or_404(report_schedule_id)
    services.send_now(db.session, g.tenant.id, schedule)
    toast("The report is being built; it goes out within a minute.")
    return redirect(url_for("reports.index"))
