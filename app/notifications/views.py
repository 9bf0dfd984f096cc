"""The bell: a user's own notifications in this workspace, a live unread count, mark read; and
how each person (and, set by admins, each role) hears of each kind."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.core.pages import render_page, toast
from app.extensions import db
from app.notifications import preferences, services
from app.notifications.models import DEFAULT_DELIVERY, DELIVERIES, DIGEST_HOUR, KIND_LABELS
from tenants.context import can, require_permission
from tenants.roles import ROLE_LABELS

blueprint = Blueprint("notifications", __name__, url_prefix="/t/<tenant_slug>/notifications")

# Every member has dashboard.view: notifications are each user's own, whatever their role.
MEMBER = "dashboard.view"


@blueprint.get("/")
@require_permission(MEMBER)
def index():
    items = services.recent(db.session, current_user.id)
    return render_page(
        "notifications/index.html",
        block="notification_list",
        items=items,
        unread=sum(1 for n in items if n.read_at is None),
    )


@blueprint.get("/count")
@require_permission(MEMBER)
def count():
    """The bell's number, polled by htmx every 30 seconds."""
    response = render_template(
        "notifications/_count.html",
        count=services.unread_count(db.session, current_user.id),
        cap=services.COUNT_CAP,
    )
    return response, 200, {"Cache-Control": "no-store"}


@blueprint.post("/<int:notification_id>/read")
@require_permission(MEMBER)
def read(notification_id: int):
    if not services.mark_read(db.session, current_user.id, notification_id):
        abort(404)
    target = request.form.get("next", "")
    # Only a path of this site: "open" goes on to the notification's own link.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return redirect(target, 303)
    return redirect(url_for("notifications.index"), 303)


@blueprint.post("/read-all")
@require_permission(MEMBER)
def read_all():
    marked = services.mark_all_read(db.session, current_user.id)
    toast(
        f"{marked} notification{'' if marked == 1 else 's'} marked read."
        if marked
        else "Nothing unread."
    )
    return redirect(url_for("notifications.index"), 303)


@blueprint.route("/settings", methods=["GET", "POST"])
@require_permission(MEMBER)
def settings():
    """How the signed-in person hears of each kind; for admins, each role's default too."""
    error = None
    if request.method == "POST":
        try:
            if request.form.get("scope") == "roles":
                if not can("settings.manage"):
                    abort(403)
                preferences.save_role_defaults(db.session, request.form)
                toast("Each role's notifications saved.")
            else:
                preferences.save_own(db.session, current_user.id, request.form)
                toast("Your notifications saved.")
        except ValueError as refusal:
            error = str(refusal)
        else:
            return redirect(url_for("notifications.settings"), 303)
    return render_page(
        "notifications/settings.html",
        status=422 if error else 200,
        error=error,
        kinds=KIND_LABELS,
        deliveries=DELIVERIES,
        default_delivery=DEFAULT_DELIVERY,
        digest_hour=DIGEST_HOUR,
        own=preferences.own_choices(db.session, current_user.id),
        by_role=preferences.role_choices(db.session),
        roles=ROLE_LABELS,
        my_role=g.membership.role,
    )
