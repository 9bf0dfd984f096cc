"""A collector's pages: the work queue, logging calls and field visits, an activity, and the
managers' list of visits to verify."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.clients.models import Site
from app.clients.services import members_for_choice
from app.collections.models import CollectionNotice
from app.collections.work import forms as work_forms
from app.collections.work import services as work
from app.core.clock import tenant_today
from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.extensions import db
from tenants.context import can, require_permission

blueprint = Blueprint("work", __name__, url_prefix="/t/<tenant_slug>/work")


def manages_collectors() -> bool:
    """Finance, admins and owners supervise: they look at any collector's queue (their own
    first when they collect too) and verify flagged visits (never their own: the service
    refuses). A collector works their own queue and never verifies visits."""
    return can("collections.supervise")


blueprint.context_processor(
    lambda: {"manages_collectors": manages_collectors(), "labels": work_forms}
)


def _client_or_404(client_id: int):
    client = work.get_client(db.session, client_id)
    if client is None:
        abort(404)
    return client


def _activity_or_404(activity_id: int):
    activity = work.get_activity(db.session, activity_id)
    if activity is None:
        abort(404)
    return activity


def _people() -> dict[int, str]:

    return dict(members_for_choice(db.session, g.tenant.id))


# The queue ----------------------------------------------------------------------------------


@blueprint.get("/")
@require_permission("notices.view")
def index():
    if not (can("collections.work") or manages_collectors()):
        abort(403)
    collectors = work.collectors(db.session, g.tenant.id)
    collector_id = current_user.id
    if manages_collectors():
        chosen = request.args.get("collector", "")
        ids = [uid for uid, _ in collectors]
        collector_id = int(chosen) if chosen.isdigit() and int(chosen) in ids else None
        if collector_id is None and ids:  # a manager who collects too sees their own first
            collector_id = current_user.id if current_user.id in ids else ids[0]
    today = tenant_today(db.session)
    sections = work.queue(db.session, collector_id, today) if collector_id else []
    return render_page(
        "work/index.html",
        sections=sections,
        today=today,
        collectors=collectors,
        collector_id=collector_id,
        own=collector_id == current_user.id,
    )


# Calls and visits ---------------------------------------------------------------------------


def _form_page(kind: str, client, values: dict, errors: dict, status: int = 200):
    zone = ZoneInfo(g.tenant.time_zone)
    values.setdefault("occurred_at", datetime.now(zone).strftime("%Y-%m-%dT%H:%M"))
    context = {
        "client": client,
        "kind": kind,
        "values": values,
        "errors": errors,
        "outcomes": work_forms.outcome_choices(kind),
        "tasks": work.open_tasks_of_client(db.session, client.id, kind),
        "contacts": client.contacts,
    }
    if kind == "visit":
        context["radius"] = work.visit_radius_m(db.session)
        context["sites"] = list(
            db.session.scalars(
                select(Site)
                .where(Site.client_id == client.id, Site.deleted_at.is_(None))
                .order_by(Site.name)
            )
        )
    return render_page("work/log.html", status=status, **context)


def _log(kind: str, client_id: int):
    client = _client_or_404(client_id)
    if request.method == "GET":
        return _form_page(kind, client, {"notice_id": request.args.get("notice_id", "")}, {})
    log = work.log_call if kind == "call" else work.log_visit
    try:
        activity = log(
            db.session,
            g.tenant,
            current_user.id,
            client.id,
            **work_forms.submitted(request.form, kind),
        )
    except work.WorkInvalid as error:
        return _form_page(kind, client, request.form.to_dict(), error.errors, 422)
    if kind == "call":
        toast(f"Call to {client.short_name} logged.")
    elif activity.verification == "verified":
        toast(f"Visit to {client.short_name} logged and verified by its position.")
    else:
        toast(f"Visit to {client.short_name} logged; a manager will verify it.")
    return redirect(url_for("work.activity", activity_id=activity.id), 303)


@blueprint.route("/clients/<int:client_id>/calls/new", methods=["GET", "POST"])
@require_permission("collections.work")
@once_per_form_key
def new_call(client_id: int):
    return _log("call", client_id)


@blueprint.route("/clients/<int:client_id>/visits/new", methods=["GET", "POST"])
@require_permission("collections.work")
@once_per_form_key
def new_visit(client_id: int):
    return _log("visit", client_id)


@blueprint.get("/clients/<int:client_id>/activities")
@require_permission("notices.view")
def client_activities(client_id: int):
    """The client's calls and visits, for the client page (loaded by htmx)."""
    client = _client_or_404(client_id)
    return render_template(
        "work/_client_activities.html",
        client=client,
        activities=work.client_activities(db.session, client.id),
        people=_people(),
    )


def _activity_page(activity, errors=None, values=None, status=200):
    client = _client_or_404(activity.client_id)
    site = db.session.get(Site, activity.site_id) if activity.site_id else None
    notice = db.session.get(CollectionNotice, activity.notice_id) if activity.notice_id else None
    contact = next((c for c in client.contacts if c.id == activity.contact_id), None)
    radius = work.visit_radius_m(db.session)
    return render_page(
        "work/activity.html",
        status=status,
        activity=activity,
        client=client,
        site=site,
        notice=notice,
        contact=contact,
        people=_people(),
        flag_reason=work.flag_reason(activity, radius),
        offer_promise=activity.outcome in work.PROMISE_OUTCOMES,
        errors=errors or {},
        values=values or {},
    )


@blueprint.get("/activities/<int:activity_id>")
@require_permission("notices.view")
def activity(activity_id: int):
    return _activity_page(_activity_or_404(activity_id))


# Verifying visits ---------------------------------------------------------------------------


@blueprint.get("/visits/to-verify")
@require_permission("notices.manage")
def to_verify():
    if not manages_collectors():
        abort(403)
    radius = work.visit_radius_m(db.session)
    rows = [(a, c, work.flag_reason(a, radius)) for a, c in work.flagged_visits(db.session)]
    return render_page("work/to_verify.html", rows=rows, people=_people())


@blueprint.post("/activities/<int:activity_id>/verify")
@require_permission("notices.manage")
def verify(activity_id: int):
    activity = _activity_or_404(activity_id)
    if not manages_collectors():
        abort(403)
    try:
        work.verify_visit(
            db.session,
            activity,
            current_user.id,
            request.form.get("decision", ""),
            request.form.get("verification_note"),
        )
    except work.WorkRefused as refused:
        toast(str(refused), "error")
        return redirect(url_for("work.activity", activity_id=activity.id), 303)
    except work.WorkInvalid as error:
        return _activity_page(activity, error.errors, request.form.to_dict(), 422)
    word = "confirmed" if activity.verification == "confirmed" else "rejected"
    toast(f"Visit {word}.")
    back = request.form.get("back")
    if back == "list":
        return redirect(url_for("work.to_verify"), 303)
    return redirect(url_for("work.activity", activity_id=activity.id), 303)
