"""The webhooks pages (admins): endpoints, their signing secret, the delivery log, a test event
and replays."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.core.event_types import EVENT_TYPES, event_type_names
from app.core.pages import render_page, toast
from app.core.terminology import reworded
from app.extensions import db
from app.webhooks import services
from tenants.context import require_permission

blueprint = Blueprint("webhooks", __name__, url_prefix="/t/<tenant_slug>/webhooks")


def _endpoint_or_404(endpoint_id: int):
    endpoint = services.get_endpoint(db.session, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


def _event_choices() -> list[tuple[str, str]]:
    """(type, what it means) of every type an endpoint may choose (not the test event); the
    meaning in the workspace's words, the type as integrators receive it."""
    described = {name: reworded(schema["description"]) for (name, _), schema in EVENT_TYPES.items()}
    return [
        (name, described[name])
        for name in event_type_names()
        if name not in (services.TEST_EVENT, services.RULE_EVENT)
    ]


def _form_values(endpoint=None) -> dict:
    if endpoint is None:
        return {"url": "", "description": "", "all_events": "1", "event_types": []}
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "all_events": "1" if endpoint.event_types is None else "",
        "event_types": endpoint.event_types or [],
    }


def _posted_values() -> dict:
    return {
        "url": request.form.get("url", ""),
        "description": request.form.get("description", ""),
        "all_events": request.form.get("all_events", ""),
        "event_types": request.form.getlist("event_types"),
    }


@blueprint.get("/")
@require_permission("integrations.manage")
def index():
    return render_page("webhooks/index.html", endpoints=services.list_endpoints(db.session))


@blueprint.get("/new")
@require_permission("integrations.manage")
def new():
    return render_page(
        "webhooks/form.html",
        endpoint=None,
        values=_form_values(),
        errors={},
        choices=_event_choices(),
    )


@blueprint.post("/new")
@require_permission("integrations.manage")
def create():
    values = _posted_values()
    endpoint, errors = services.create_endpoint(db.session, values, current_user.id)
    if errors:
        return render_page(
            "webhooks/form.html",
            status=422,
            endpoint=None,
            values=values,
            errors=errors,
            choices=_event_choices(),
        )
    toast("Endpoint added. Its signing secret is on this page.")
    return redirect(url_for("webhooks.show", webhook_endpoint_id=endpoint.id), 303)


@blueprint.get("/<int:webhook_endpoint_id>")
@require_permission("integrations.manage")
def show(webhook_endpoint_id):
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    return render_page(
        "webhooks/show.html",
        endpoint=endpoint,
        secret=services.current_secret(endpoint),
        previous_until=services.previous_secret_until(endpoint),
        deliveries=services.recent_deliveries(db.session, endpoint.id),
        replay_errors={},
        replay_values={},
    )


@blueprint.get("/<int:webhook_endpoint_id>/edit")
@require_permission("integrations.manage")
def edit(webhook_endpoint_id):
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    return render_page(
        "webhooks/form.html",
        endpoint=endpoint,
        values=_form_values(endpoint),
        errors={},
        choices=_event_choices(),
    )


@blueprint.post("/<int:webhook_endpoint_id>/edit")
@require_permission("integrations.manage")
def update(webhook_endpoint_id):
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    values = _posted_values()
    errors = services.update_endpoint(db.session, endpoint, values)
    if errors:
        return render_page(
            "webhooks/form.html",
            status=422,
            endpoint=endpoint,
            values=values,
            errors=errors,
            choices=_event_choices(),
        )
    toast("Endpoint saved.")
    return redirect(url_for("webhooks.show", webhook_endpoint_id=endpoint.id), 303)


@blueprint.post("/<int:webhook_endpoint_id>/enable")
@require_permission("integrations.manage")
def enable(webhook_endpoint_id):
    services.enable(db.session, _endpoint_or_404(webhook_endpoint_id))
    toast("Endpoint enabled: deliveries waiting for it go out now.")
    return redirect(url_for("webhooks.show", webhook_endpoint_id=webhook_endpoint_id), 303)


@blueprint.post("/<int:webhook_endpoint_id>/disable")
@require_permission("integrations.manage")
def disable(webhook_endpoint_id):
    services.disable(db.session, _endpoint_or_404(webhook_endpoint_id), "Disabled by an admin.")
    toast("Endpoint disabled. Events are kept for it until you enable it again.")
    return redirect(url_for("webhooks.show", webhook_endpoint_id=webhook_endpoint_id), 303)


@blueprint.post("/<int:webhook_endpoint_id>/rotate-secret")
@require_permission("integrations.manage")
def rotate_secret(webhook_endpoint_id):
    services.rotate_secret(db.session, _endpoint_or_404(webhook_endpoint_id))
    toast("New signing secret made. The old one also signs for the next 24 hours.")
    return redirect(url_for("webhooks.show", webhook_endpoint_id=webhook_endpoint_id), 303)


@blueprint.post("/<int:webhook_endpoint_id>/test")
@require_permission("integrations.manage")
def send_test(webhook_endpoint_id):
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    services.send_test(db.session, endpoint, current_user.id)
    if endpoint.status == "enabled":
        toast("Test event sent. It shows in the log below once it has been delivered.")
    else:
        toast("Test event made. It goes out when you enable the endpoint.", "info")
    return redirect(url_for("webhooks.show", webhook_endpoint_id=webhook_endpoint_id), 303)


def _local_time(value: str, field: str, errors: dict) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        errors[field] = "Enter a date and time, e.g. 2026-12-05 09:00."
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(g.tenant.time_zone))
    return moment.astimezone(UTC)


@blueprint.post("/<int:webhook_endpoint_id>/replay")
@require_permission("integrations.manage")
def replay_range(webhook_endpoint_id):
    """Replay every delivery (or every failed one) made between two moments."""
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    errors: dict[str, str] = {}
    values = {name: request.form.get(name, "") for name in ("start", "end", "failed_only")}
    start = _local_time(values["start"], "start", errors)
    end = _local_time(values["end"], "end", errors)
    if start and end and end <= start:
        errors["end"] = "The end must come after the start."
    if errors:
        return render_page(
            "webhooks/show.html",
            status=422,
            endpoint=endpoint,
            secret=services.current_secret(endpoint),
            previous_until=services.previous_secret_until(endpoint),
            deliveries=services.recent_deliveries(db.session, endpoint.id),
            replay_errors=errors,
            replay_values=values,
        )
    ids = services.deliveries_between(
        db.session, endpoint.id, start, end, failed_only=bool(values["failed_only"])
    )
    count = services.replay(db.session, endpoint, ids)
    toast(
        f"{count} deliver{'y' if count == 1 else 'ies'} sent again."
        if count
        else "Nothing to replay in that time."
    )
    return redirect(url_for("webhooks.show", webhook_endpoint_id=endpoint.id), 303)


@blueprint.get("/<int:webhook_endpoint_id>/deliveries/<int:webhook_delivery_id>")
@require_permission("integrations.manage")
def delivery(webhook_endpoint_id, webhook_delivery_id):
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    found = services.get_delivery(db.session, endpoint.id, webhook_delivery_id)
    if found is None:
        abort(404)
    return render_page(
        "webhooks/delivery.html",
        endpoint=endpoint,
        delivery=found,
        attempts=services.attempts_of(db.session, found.id),
    )


@blueprint.post("/<int:webhook_endpoint_id>/deliveries/<int:webhook_delivery_id>/replay")
@require_permission("integrations.manage")
def replay_one(webhook_endpoint_id, webhook_delivery_id):
    endpoint = _endpoint_or_404(webhook_endpoint_id)
    found = services.get_delivery(db.session, endpoint.id, webhook_delivery_id)
    if found is None:
        abort(404)
    services.replay(db.session, endpoint, [found.id])
    toast("Delivery sent again, with the same webhook-id.")
    return redirect(
        url_for(
            "webhooks.delivery",
            webhook_endpoint_id=endpoint.id,
            webhook_delivery_id=found.id,
        ),
        303,
    )
