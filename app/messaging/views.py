"""The Messages page: every message this workspace sent or tried to send, its status as the
provider reported it, what the recipient got, and "Retry" for dead letters."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from flask import Blueprint, abort, current_app, g, redirect, request, url_for
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.pages import render_page, toast
from app.core.prepared import prepared_statements
from app.extensions import db
from app.messaging import listing
from app.outbox.services import retry_message
from tenants.context import require_permission

blueprint = Blueprint("messages", __name__, url_prefix="/t/<tenant_slug>/messages")
CampaignNames = Callable[[Session, Iterable[int | None]], dict[int, str]]
# Campaigns sit above messaging: when the app is created they register how to name the
# campaigns the page shows (the filter's title, the Campaign column). Unnamed, a campaign
# shows as "Campaign #id".
_campaign_names: list[CampaignNames] = []


def register_campaign_names(names: CampaignNames) -> None:
    _campaign_names[:] = [names]


def _names_of_campaigns(ids: Iterable[int | None]) -> dict[int, str]:
    return _campaign_names[0](db.session, ids) if _campaign_names else {}


def client_timeline_messages(client: Client) -> list[tuple[str, datetime, dict]]:
    """The client page's timeline source: the messages sent to the client."""
    return [
        ("message", m["at"], m)
        for m in listing.messages_for_client(db.session, g.tenant.id, client.id)
    ]


def _message_or_404(message_id: int):
    # outbox_messages is shared: the bound tenant's id is part of every look-up.
    message = listing.get_message(db.session, g.tenant.id, message_id)
    if message is None:
        abort(404)
    return message


@blueprint.get("/")
@require_permission("messages.view")
def index():
    filters = listing.MessageFilters.from_args(request.args)
    # Prepared while it is not searching for a recipient (a LIKE's pattern is needed at
    # planning): the newest page and its counts by status, the same statements every view.
    with prepared_statements(db.session, enabled=not filters.q):
        page = listing.list_messages(
            db.session, g.tenant.id, filters, after=request.args.get("after")
        )
        campaigns = _names_of_campaigns(
            [filters.campaign_id, *(row.message.campaign_id for row in page.rows)]
        )
        return render_page(
            "messaging/index.html",
            block="message_results",
            page=page,
            filters=filters,
            status_labels=listing.STATUS_LABELS,
            channel_labels=listing.CHANNEL_LABELS,
            client_name=listing.client_name(db.session, filters.client_id),
            campaign_names=campaigns,
            campaign_name=campaigns.get(filters.campaign_id),
        )


@blueprint.get("/<int:message_id>")
@require_permission("messages.view")
def detail(message_id: int):
    message = _message_or_404(message_id)
    text, html = listing.shown_bodies(message)
    return render_page(
        "messaging/detail.html",
        message=message,
        text=text,
        has_html=bool(html),
        history=listing.status_history(message),
        details=listing.channel_details(message),
        status_group=listing.GROUP_OF.get(message.status, message.status),
        status_labels=listing.STATUS_LABELS,
        channel_labels=listing.CHANNEL_LABELS,
        retryable=message.status in listing.RETRYABLE and not message.secret_erased,
    )


@blueprint.get("/<int:message_id>/html")
@require_permission("messages.view")
def message_html(message_id: int):
    """The HTML the recipient got, served alone for a sandboxed iframe of the detail page: no
    scripts, no forms, no outside requests, framed by this site only."""
    html = listing.shown_bodies(_message_or_404(message_id))[1]
    if not html:
        abort(404)
    response = current_app.make_response(html)
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@blueprint.post("/<int:message_id>/retry")
@require_permission("messages.send")
def retry(message_id: int):
    if _message_or_404(message_id).secret_erased:
        toast(
            "This message's one-time link is not kept after sending, so it cannot be sent "
            "again. Send a new invitation instead.",
            "error",
        )
    elif retry_message(db.session, g.tenant.id, message_id) is None:
        toast("Only a message that failed can be sent again.", "error")
    else:
        toast("The message is back in the queue and will be sent again shortly.")
    return redirect(url_for("messages.detail", message_id=message_id), 303)
